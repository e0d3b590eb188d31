"""The conformance suite's policy variants (policies.toml): CIL files under policies/, or a
monolithic reference policy plus policies/refpolicy-conformance.te.  Cached by input hash."""

from __future__ import annotations

import os
import re
from pathlib import Path

from selnet.verify.build import CACHE, file_sha, log, run

HERE = Path(__file__).resolve().parent.parent  # conformance/
REPO = HERE.parent

REFPOLICY_EXTRA = HERE / "policies" / "refpolicy-conformance.te"


def build_policy(name: str, spec: dict) -> Path:
    """Compile one policy variant described in policies.toml; cached by input hash."""
    (CACHE / "policy").mkdir(parents=True, exist_ok=True)
    if "cil" in spec:
        files = [HERE / "policies" / f for f in spec["cil"]]
        out = CACHE / "policy" / f"{name}-{file_sha(*files)}.33"
        if not out.exists():
            log(f"secilc {name}")
            mls = "true" if spec.get("mls") else "false"
            run(
                [
                    "secilc",
                    "-c",
                    "33",
                    "-M",
                    mls,
                    "-o",
                    str(out) + ".tmp",
                    "-f",
                    "/dev/null",
                    *map(str, files),
                ]
            )
            os.rename(str(out) + ".tmp", out)
        return out
    flavour = spec["refpolicy"]
    conf = refpolicy_conf(flavour)
    # the variant's own additions after the shared ones (MLS: the peers' network overrides)
    extras = [REFPOLICY_EXTRA, *(HERE / "policies" / f for f in spec.get("extra", []))]
    out = CACHE / "policy" / f"{name}-{file_sha(conf, *extras)}.33"
    if not out.exists():
        log(f"checkpolicy {name} (refpolicy {flavour} + {', '.join(e.name for e in extras)})")
        text = conf.read_text()
        # TE rules must go inside the te_rbac section: before the first "user" statement
        m = re.search(r"^user ", text, re.M)
        if not m:
            raise RuntimeError(f"{conf}: no 'user' statement found")
        types = re.findall(r"^type ([A-Za-z0-9_]+)", text[: m.start()], re.M)
        extra = ["# --- selnet conformance additions", "attribute selnet_any;"]
        extra += [f"typeattribute {t} selnet_any;" for t in types]
        extra += [e.read_text() for e in extras]
        conf2 = CACHE / "policy" / f"{name}.policy.conf"
        conf2.write_text(text[: m.start()] + "\n".join(extra) + "\n" + text[m.start() :])
        args = ["checkpolicy", "-c", "33", "-o", str(out) + ".tmp", str(conf2)]
        if flavour != "standard":
            args.insert(1, "-M")
        run(args)
        os.rename(str(out) + ".tmp", out)
    return out


def refpolicy_conf(flavour: str) -> Path:
    """policy.conf of refpolicy FLAVOUR, built by scripts/build-refpolicy if needed."""
    out = run(
        [str(REPO / "scripts" / "build-refpolicy")], env={**os.environ, "TYPES": flavour}
    ).stdout
    for line in out.splitlines():
        f, _, path = line.partition(" ")
        if f == flavour:
            conf = Path(path).parent / f"refpolicy-{flavour}.policy.conf"
            if conf.exists():
                return conf
    raise RuntimeError(f"build-refpolicy did not produce the {flavour} policy.conf")
