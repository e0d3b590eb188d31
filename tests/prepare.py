"""Set-up, not a test: the per-machine fixtures built from the reference policy.

scripts/test runs this after scripts/build-refpolicy, so that pytest's own time is the
tests': refpolicy-standard as CIL (checkpolicy -C), its REF_VARIANTS compiled with secilc
and their snapshots (tests/test_overlay.py).  ~35 s once per machine, nothing after; the
fixtures still build anything missing themselves (a plain `pytest` works without this).

    python -m tests.prepare DIR     # DIR: where build-refpolicy put refpolicy-standard
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.test_overlay import build_refpolicy_cil, load_refpolicy_pair


def main(argv: list[str]) -> int:
    standard = Path(argv[0]) / "refpolicy-standard.policy.33"
    if not standard.with_name("refpolicy-standard.policy.conf").exists():
        print(f"tests.prepare: no {standard.name} and its policy.conf in {argv[0]}", file=sys.stderr)
        return 2
    load_refpolicy_pair(standard, build_refpolicy_cil(standard))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
