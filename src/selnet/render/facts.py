"""`selnet label` and `selnet info`, as text and JSON (kept free of the model's imports)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from selnet.policy.snapshot import Nodecon, Portcon

if TYPE_CHECKING:  # a warm `label` or `connect` does not import the info analysis
    from selnet.analyses.info import NetworkFacts
    from selnet.model.labels import LabelResult, Record
    from selnet.policy.index import Policy


def label_lines(res: LabelResult) -> list[str]:
    how = res.matched.describe() if res.matched is not None else f"initial SID '{res.initial_sid}'"
    lines = [f"{res.kind} {res.query}: {res.context}  ({how})"]
    if res.attributes:
        lines.append(f"  attributes: {', '.join(res.attributes)}")
    for s in res.shadowed:
        lines.append(f"  shadowed: {s.record.describe()}: {s.reason}")
    return lines


def info_json(f: NetworkFacts) -> dict[str, object]:
    return {
        "path": f.path,
        "origin": f.origin,
        "sha256": f.sha256,
        "policy_version": f.version,
        "mls": f.mls,
        "handle_unknown": f.handle_unknown,
        "policy_capabilities": list(f.polcaps),
        "initial_sids": {k: str(v) for k, v in f.initial_sids.items()},
        "portcon_count": len(f.portcons),
        "nodecon_count": len(f.nodecons),
        "netifcon_count": len(f.netifcons),
        "portcons": [record_json(r) for r in f.portcons],
        "nodecons": [record_json(r) for r in f.nodecons],
        "netifcons": [record_json(r) for r in f.netifcons],
        "network_classes": {c: list(p) for c, p in f.network_classes.items()},
        "obsolete_permissions": [
            {"class": o.tclass, "perms": list(o.perms), "reason": o.reason} for o in f.obsolete
        ],
        "rule_count": f.rule_count,
        "conditional_rule_count": f.conditional_rule_count,
        "boolean_count": f.boolean_count,
        "permissive_types": list(f.permissive_types),
        "typebounds": f.typebounds,
        "cached": f.cached,
    }


def info_lines(f: NetworkFacts) -> list[str]:
    lines = [
        f"policy: {f.path} ({f.origin}), version {f.version}, "
        f"MLS {'on' if f.mls else 'off'}, handle_unknown {f.handle_unknown}",
        f"policy capabilities: {', '.join(f.polcaps) or '(none)'}",
        "network initial SIDs: " + ", ".join(f"{k}={v}" for k, v in f.initial_sids.items()),
        f"records: {len(f.portcons)} portcon, {len(f.nodecons)} nodecon, "
        f"{len(f.netifcons)} netifcon",
        f"network rules indexed: {f.rule_count} ({f.conditional_rule_count} conditional), "
        f"{f.boolean_count} booleans, {len(f.permissive_types)} permissive types",
    ]
    if f.obsolete:
        lines.append("declared but never checked by a current kernel:")
        for o in f.obsolete:
            lines.append(f"  {o.tclass} {' '.join(o.perms)}: {o.reason}")
    return lines


def record_json(rec: Record | None) -> dict[str, object] | None:
    if rec is None:
        return None
    if isinstance(rec, Portcon):
        return {
            "record": "portcon",
            "protocol": rec.protocol,
            "low": rec.low,
            "high": rec.high,
            "context": str(rec.context),
            "position": rec.position,
        }
    if isinstance(rec, Nodecon):
        return {
            "record": "nodecon",
            "family": f"ipv{rec.family}",
            "address": rec.address,
            "mask": rec.mask,
            "prefixlen": rec.prefixlen,
            "context": str(rec.context),
            "position": rec.position,
        }
    return {
        "record": "netifcon",
        "name": rec.name,
        "context": str(rec.context),
        "packet_context": str(rec.packet_context),
        "position": rec.position,
    }


def label_json(res: LabelResult) -> dict[str, object]:
    return {
        "kind": res.kind,
        "query": res.query,
        "context": str(res.context),
        "type": res.type,
        "attributes": list(res.attributes),
        "matched": record_json(res.matched),
        "initial_sid": res.initial_sid,
        "shadowed": [
            {"record": record_json(s.record), "reason": s.reason} for s in res.shadowed
        ],
    }


def policy_json(policy: Policy) -> dict[str, object]:
    """The policy an answer was decided on: file, sha256, modules, changes, unapplied."""
    return policy.provenance()


def policy_lines(policy: Policy) -> list[str]:
    """For a layered policy (modules or changes): which one, and what was not applied.
    Shown first: an answer about a module must say what the module did not bring."""
    if policy.overlay is None and not getattr(policy, "modules", ()):
        return []
    out = [f"policy: {policy.describe()}"]
    for u in getattr(policy, "unapplied", ()):
        if u.matters:
            out.append(f"  not applied (can matter for networking): {u.describe()}")
    return out


def policy_footer(policy: Policy) -> list[str]:
    """Every human answer names the policy it was decided on, last (a layered policy
    already said so first)."""
    if policy.overlay is not None or hasattr(policy, "modules"):
        return []
    return [f"decided on {policy.describe()}"]
