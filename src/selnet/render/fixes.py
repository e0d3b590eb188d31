"""Fixes, for people and machines: the contract of docs/fixes.md."""

from __future__ import annotations

from typing import TYPE_CHECKING

from selnet.render.notes import note_text

if TYPE_CHECKING:  # an allowed check computes no fix: it does not import the engine
    from selnet.fix.engine import Fix
    from selnet.fix.opens import Opens

FLAG_WORDS = {
    "generic": "GENERIC port type",
    "other-domains": "opens it to other domains",
    "every-port": "EVERY PORT",
    "many-ports": "many ports",
    "loses-label": "the old label's users lose the port",
    "system-wide": "system-wide setting",
    "takes-service-port": "TAKES ANOTHER SERVICE'S PORT",
}


def opens_json(o: Opens | None) -> dict[str, object] | None:
    if o is None:
        return None
    return {
        "domains": len(o.domains),
        "port_numbers": o.port_numbers,
        "port_types": list(o.port_types),
        "generic": o.generic,
        "other_domains": list(o.excess_domains),
        "ports_beyond_denied": o.excess_port_numbers,
        "estimated": o.estimated,
        "gains": [{"domain": g.subject, "class": g.tclass, "perm": g.perm, "target": g.target,
                   "ports": [list(r) for r in g.ports]} for g in o.gains[:200]],
        "gains_total": len(o.gains),
        "losses": [{"domain": g.subject, "class": g.tclass, "perm": g.perm, "target": g.target,
                    "ports": [list(r) for r in g.ports]} for g in o.losses[:200]],
    }


def fix_json(f: Fix) -> dict[str, object]:
    return {
        "kind": f.kind,
        "commands": list(f.commands),
        "verified": f.verified,
        "opens": opens_json(f.opens),
        "why": note_text(f.why),
        "flags": list(f.flags),
        "broad": f.broad,
        "tier": f.tier,
        "booleans": {n: d for n, d in f.described},
    }


def opens_text(o: Opens | None) -> str:
    if o is None:
        return "opens no policy access"
    if not o.gains and not o.losses:
        return "opens: nothing beyond the denied access in this policy"
    parts = [f"{len(o.domains)} domain{'s' if len(o.domains) != 1 else ''}"]
    if o.port_numbers:
        pts = ", ".join(o.port_types[:4]) + (f" +{len(o.port_types) - 4}" if len(o.port_types) > 4
                                             else "")
        parts.append(f"{o.port_numbers} port number{'s' if o.port_numbers != 1 else ''} ({pts})")
    if o.excess_domains:
        more = f" +{len(o.excess_domains) - 3}" if len(o.excess_domains) > 3 else ""
        parts.append("also " + ", ".join(o.excess_domains[:3]) + more)
    if o.losses:
        lost = sorted({g.subject for g in o.losses})
        parts.append(f"{len(lost)} domain{'s lose' if len(lost) != 1 else ' loses'} "
                     f"{o.losses[0].target} there ({', '.join(lost[:3])}"
                     + (" ..." if len(lost) > 3 else "") + ")")
    return "opens: " + "; ".join(parts)


def fix_lines(f: Fix, indent: str = "    ", first: bool = True) -> list[str]:
    head = "fix" if first else "or"
    mark = "" if f.verified else " (NOT verified)"
    flags = f" [{'; '.join(FLAG_WORDS.get(x, x) for x in f.flags)}]" if f.flags else ""
    out = [f"{indent}{head} ({f.kind}{mark}){flags}: {note_text(f.why)}"]
    out += [f"{indent}    {c}" for c in f.commands]
    for name, desc in f.described:
        out.append(f"{indent}    # {name}: {desc}")
    out.append(f"{indent}    {opens_text(f.opens)}")
    return out
