"""A module plan as files: NAME.te (checkmodule), NAME.cil (semodule/secilc), NAME.sh."""

from __future__ import annotations

from pathlib import Path

from selnet.fix.module import ModuleCheck, ModulePlan
from selnet.policy.index import Policy


def _perms(perms: frozenset[str]) -> str:
    """A TE permission set: one name, or ``{ a b }``."""
    ps = sorted(perms)
    return ps[0] if len(ps) == 1 else "{ " + " ".join(ps) + " }"


def te_text(plan: ModulePlan, policy: Policy) -> str:
    declared = {t.name for t in plan.types}
    types: set[str] = set()
    attrs: set[str] = set()
    classes: dict[str, set[str]] = {}
    for r in plan.rules:
        for name in (r.source, r.target):
            if name == "self" or name in declared:
                continue
            (attrs if name in policy.snap.attr_types else types).add(name)
        classes.setdefault(r.tclass, set()).update(r.perms)
    for t in plan.types:
        attrs.update(t.attributes)
    lines = [f"module {plan.name} 1.0;", ""]
    require = [f"\ttype {t};" for t in sorted(types)]
    require += [f"\tattribute {a};" for a in sorted(attrs)]
    require += [f"\tclass {c} {_perms(frozenset(p))};" for c, p in sorted(classes.items())]
    if require:  # checkmodule rejects an empty block
        lines += ["require {", *require, "}", ""]
    for t in plan.types:
        lines += t.te()
    if plan.from_interfaces:
        lines.append("# the grants of " + ", ".join(plan.from_interfaces) + ", spelled out")
    lines += [r.te() for r in plan.rules]
    return "\n".join(lines) + "\n"


def cil_text(plan: ModulePlan) -> str:
    lines = [f"; module {plan.name}: written and verified by selnet"]
    for t in plan.types:
        lines += t.cil()
    lines += [r.cil() for r in plan.rules]
    return "\n".join(lines) + "\n"


def script_text(plan: ModulePlan, pp: bool) -> str:
    load = f"semodule -i {plan.name}.pp" if pp else f"semodule -i {plan.name}.cil"
    lines = ["#!/bin/sh", f"# {plan.name}: the commands beside the module, written by selnet.",
             "set -e"]
    if plan.rules or plan.types:
        lines.append(load)
    lines += list(plan.commands)
    return "\n".join(lines) + "\n"


def _verdict_lines(result: ModuleCheck) -> list[str]:
    out = []
    for v in result.verdicts:
        n = v.need
        where = f" ({n.port}/{n.proto})" if n.port is not None else ""
        out.append(f"  {'allowed' if v.allowed else 'STILL DENIED'}: {n.scon.type} -> "
                   f"{n.tcon.type} {n.tclass} {n.perm}{where}")
    return out


def module_lines(plan: ModulePlan, result: ModuleCheck, outdir: Path, files: list[str],
                 pp_error: str | None) -> list[str]:
    out = [f"module {plan.name}: wrote " + ", ".join(str(outdir / f) for f in files)]
    if pp_error:
        out.append(f"  note: {pp_error}")
    out.append(f"  {len(plan.rules)} rule(s), {len(plan.types)} new type(s); commands beside it:")
    out += [f"    {c}" for c in plan.commands] or ["    (none)"]
    verdict = "every logged record is allowed" if result.ok else "NOT every record is allowed"
    out.append(f"verified (module layered on the policy, records decided again): {verdict}")
    out += _verdict_lines(result)
    out += [f"  unapplied: {u}" for u in result.unapplied]
    return out


def module_json(plan: ModulePlan, result: ModuleCheck, outdir: Path, files: list[str],
                pp_error: str | None) -> dict[str, object]:
    return {
        "module": plan.name,
        "files": [str(outdir / f) for f in files],
        "pp_error": pp_error,
        "rules": len(plan.rules),
        "types": [t.name for t in plan.types],
        "commands": list(plan.commands),
        "verified": result.ok,
        "records": [{"scontext": str(v.need.scon), "tcontext": str(v.need.tcon),
                     "class": v.need.tclass, "perm": v.need.perm, "port": v.need.port,
                     "allowed": v.allowed} for v in result.verdicts],
        "unapplied": list(result.unapplied),
    }
