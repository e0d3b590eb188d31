"""Compact human output."""

from __future__ import annotations

from collections.abc import Mapping

from selnet.evaluate import ChainResult, reason_text
from selnet.labels import LabelResult
from selnet.policy.index import Policy


def _t(ctx: object) -> str:
    s = str(ctx)
    parts = s.split(":")
    return parts[2] if len(parts) >= 3 else s


def chain_lines(chain: ChainResult, *, width_reason: int = 0) -> list[str]:
    plan = chain.plan
    sc = plan.scenario
    head = (
        f"{sc.operation} {sc.endpoint} as {sc.domain} "
        f"(socket {plan.sclass} labeled {_t(plan.sock)}"
        + (f" by {plan.sock_origin}" if plan.sock_origin != "domain" else "")
        + ")"
    )
    lines = [head]
    for r in chain.results:
        c, d = r.check, r.decision
        if not r.reached:
            verdict = "not reached"
        elif d.allowed:
            verdict = "allowed"
        elif not d.enforced:
            verdict = "DENIED (permissive)"
        else:
            verdict = "DENIED"
        if d.silent and not d.allowed:
            verdict += " silent"
        lines.append(
            f"  {c.step:<7} {c.hook:<31} {_t(c.subject)} -> {_t(c.target)} "
            f"{c.tclass} {c.perm}: {verdict} | {reason_text(r, chain.bools)}"
        )
    first = chain.first_denial
    if first is None:
        lines.append("verdict: allowed")
    else:
        c = first.check
        how = (
            f"fails with {c.errno} at {c.step}"
            if first.decision.enforced
            else "succeeds (permissive domain)"
        )
        lines.append(f"verdict: DENIED by {c.tclass} {c.perm} on {_t(c.target)}; the syscall {how}")
    for note in plan.notes:
        lines.append(f"  note: {note}")
    return lines


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
