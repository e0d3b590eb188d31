"""Compact human output."""

from __future__ import annotations

from selnet.decide.chain import ChainResult, reason_text


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
            ("blocks: the incoming packet is dropped (ETIMEDOUT in the end)" if c.step == "rx"
             else f"fails with {c.errno} at {c.step}")
            if first.decision.enforced
            else "succeeds (permissive domain)"
        )
        lines.append(f"verdict: DENIED by {c.tclass} {c.perm} on {_t(c.target)}; the syscall {how}")
    for note in plan.notes:
        lines.append(f"  note: {note}")
    return lines
