"""Compact human output for `selnet label` and `selnet info` (kept free of the model's imports)."""

from __future__ import annotations

from collections.abc import Mapping

from selnet.model.labels import LabelResult
from selnet.policy.index import Policy


def label_lines(res: LabelResult) -> list[str]:
    how = res.matched.describe() if res.matched is not None else f"initial SID '{res.initial_sid}'"
    lines = [f"{res.kind} {res.query}: {res.context}  ({how})"]
    if res.attributes:
        lines.append(f"  attributes: {', '.join(res.attributes)}")
    for s in res.shadowed:
        lines.append(f"  shadowed: {s.record.describe()}: {s.reason}")
    return lines


def info_lines(policy: Policy, facts: Mapping[str, object]) -> list[str]:
    f = facts
    lines = [
        f"policy: {f['path']} ({f['origin']}), version {f['policy_version']}, "
        f"MLS {'on' if f['mls'] else 'off'}, handle_unknown {f['handle_unknown']}",
        f"policy capabilities: {', '.join(f['policy_capabilities']) or '(none)'}",  # type: ignore[arg-type]
        "network initial SIDs: "
        + ", ".join(f"{k}={v}" for k, v in f["initial_sids"].items()),  # type: ignore[attr-defined]
        f"records: {f['portcon_count']} portcon, {f['nodecon_count']} nodecon, "
        f"{f['netifcon_count']} netifcon",
        f"network rules indexed: {f['rule_count']} ({f['conditional_rule_count']} conditional), "
        f"{f['boolean_count']} booleans, {len(f['permissive_types'])} permissive types",  # type: ignore[arg-type]
    ]
    obs = f["obsolete_permissions"]
    if obs:
        lines.append("declared but never checked by a current kernel:")
        for item in obs:  # type: ignore[attr-defined]
            lines.append(f"  {item['class']} {' '.join(item['perms'])}: {item['reason']}")
    return lines
