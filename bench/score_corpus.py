"""The fix ranking's score on the corpus of real denials, for any policy (Fedora's too).

Usage: .venv/bin/python bench/score_corpus.py POLICY [POLICY...]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.corpus import score, summary

from selnet.policy.loader import load_policy

for path in sys.argv[1:]:
    scored = score(load_policy([path]))
    s = summary(scored)
    print(f"{path}: {s}")
    for x in scored:
        if x.decidable:
            print(f"  {x.id:40} rank {x.rank}")
