"""A decided trace (selnet trace): each step, its errno and its checks, for people and JSON."""

from __future__ import annotations

from selnet.decide.chain import TraceResult, TraceStepResult
from selnet.model.env import NetEnv
from selnet.render.chain import check_json, reason_text, verdict_text
from selnet.render.notes import notes_text


def _t(ctx: object) -> str:
    parts = str(ctx).split(":")
    return parts[2] if len(parts) >= 3 else str(ctx)


def env_json(env: NetEnv) -> dict[str, object]:
    return {
        "ip_local_port_range": list(env.local_port_range),
        "ip_unprivileged_port_start": env.unprivileged_port_start,
        "ping_group_range": list(env.ping_group_range) if env.ping_group_range else None,
        "gids": list(env.gids),
        "labeled": env.labeled,
        "peer": str(env.peer) if env.peer else None,
        "spd": str(env.spd) if env.spd else None,
        "secmark": str(env.secmark) if env.secmark else None,
    }


def _step_json(s: TraceStepResult, bools: dict[str, bool]) -> dict[str, object]:
    err = s.step.error  # the kernel's own errno at this step; "cause" says if it is the one
    return {
        "step": s.step.step.text,
        "op": s.step.step.op,
        "subject": str(s.step.subject),
        "reached": s.reached,
        "errno": s.errno,
        "cause": s.cause,
        "kernel_error": None if err is None else {
            "errno": err.errno, "function": err.function, "file": err.file, "line": err.line,
            "why": err.why},
        "checks": [check_json(r, bools) for r in s.results],
        "notes": notes_text(s.step.notes),
    }


def trace_json(tr: TraceResult) -> dict[str, object]:
    plan = tr.plan
    first = tr.first_denial
    return {
        "allowed": tr.allowed,
        "completes": tr.completes,
        "domain": str(plan.domain),
        "socket_from": str(plan.socket_from) if plan.socket_from else None,
        "sockets": [{"step": s.step, "kind": s.kind, "context": str(s.context),
                     "class": s.sclass, "labeled_by": s.labeled_by,
                     "created_by": str(s.created_by)} for s in plan.sockets],
        "environment": env_json(plan.env),
        "first_denial": None if first is None else {"step": first[0], "check": first[1]},
        "steps": [_step_json(s, tr.bools) for s in tr.steps],
        "notes": notes_text(plan.notes),
    }


def _verdict(s: TraceStepResult) -> str:
    if not s.reached:
        return "not reached"
    if s.errno is None and s.denial is not None:  # exec: the descriptor is closed
        c = s.results[s.denial].check
        return (f"ok, but the socket is closed: {c.tclass} {c.perm} denied on {_t(c.target)} "
                "(flush_unauthorized_files puts /dev/null in its place)")
    if s.errno is None:
        return "ok"
    if s.cause == "closed":
        return f"{s.errno}: the descriptor is /dev/null since the exec, not a socket"
    if s.cause == "kernel" and s.kernel_error is not None:
        e = s.kernel_error
        return f"{s.errno} from the kernel, not SELinux ({e.function}: {e.why})"
    assert s.denial is not None
    c = s.results[s.denial].check
    if c.step == "rx":
        return f"blocks: the incoming packet is dropped ({c.tclass} {c.perm} denied)"
    if c.step == "recvfd":
        return (f"no descriptor: recvmsg succeeds with MSG_CTRUNC, the socket is not installed "
                f"({c.tclass} {c.perm} denied on {_t(c.target)})")
    return f"{s.errno}: {c.tclass} {c.perm} denied on {_t(c.target)}"


def trace_lines(tr: TraceResult) -> list[str]:
    plan = tr.plan
    head = f"trace as {plan.domain}"
    if plan.socket_from is not None:
        head += f", socket from {plan.socket_from}"
    lines = [head]
    for n, s in enumerate(tr.steps, 1):
        who = "" if s.step.subject == plan.domain else f" [as {_t(s.step.subject)}]"
        lines.append(f"{n:>2}. {s.step.step.text}{who}: {_verdict(s)}")
        for r in s.results:
            c = r.check
            v = verdict_text(r)
            lines.append(f"      {c.step:<11} {c.hook:<31} {_t(c.subject)} -> {_t(c.target)} "
                         f"{c.tclass} {c.perm}: {v} | {reason_text(r, tr.bools)}")
        for text in notes_text(s.step.notes):
            lines.append(f"      note: {text}")
    failed = next((s for s in tr.steps if s.errno is not None), None)
    if failed is None:
        lines.append("verdict: every step succeeds")
    else:
        n = tr.steps.index(failed) + 1
        lines.append(f"verdict: step {n} ({failed.step.step.text}) fails: {_verdict(failed)}"
                     + ("; SELinux allows every check made" if tr.allowed else ""))
    for text in notes_text(plan.notes):
        lines.append(f"  note: {text}")
    return lines
