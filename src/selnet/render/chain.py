"""A decided chain of checks, for people (one line per check) and machines (JSON)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from selnet.decide.chain import ChainResult, CheckResult
from selnet.decide.decision import BooleanFix, Grant
from selnet.kernel.classes import obsolete_reason
from selnet.policy.conditions import cond_booleans, infix
from selnet.render.fixes import fix_json, fix_lines
from selnet.render.notes import notes_text, target_text

if TYPE_CHECKING:  # an allowed check computes no fix: it does not import the engine
    from selnet.fix.engine import Fix


def grant_json(g: Grant, bools: Mapping[str, bool], stype: str, ttype: str) -> dict[str, object]:
    out: dict[str, object] = {
        "rule": g.rule.sesearch(),
        "source": g.rule.source,
        "target": g.rule.target,
        # the attribute through which subject/target matched (None: the type itself)
        "subject_via": g.via_source if g.via_source != stype else None,
        "target_via": g.via_target if g.via_target != ttype else None,
        "active": g.active,
    }
    if g.rule.cond is not None:
        out["condition"] = infix(g.rule.cond)
        out["branch"] = g.rule.branch
        out["boolean_values"] = {b: bools[b] for b in cond_booleans(g.rule.cond)}
    return out


def boolean_fix_json(f: BooleanFix) -> dict[str, object]:
    return {"set": dict(f.settings), "rule": f.rule.sesearch()}


def verdict_text(r: CheckResult) -> str:
    """One check's outcome as the human output words it (chain and trace alike)."""
    d = r.decision
    if not r.reached:
        return "not reached"
    if d.allowed:
        return "allowed"
    return ("DENIED" if d.enforced else "DENIED (permissive)") + (" silent" if d.silent else "")


def reason_text(res: CheckResult, bools: Mapping[str, bool]) -> str:
    """The deciding rule or the reason, in one line."""
    d = res.decision
    if d.allowed:
        active = [g for g in d.grants if g.active]
        if not active:
            return "allowed by handle_unknown=allow (the policy does not define it)"
        g = active[0]
        # The rule narrowed to the permission checked (what `sesearch -A -s S -t T -c C
        # -p P` selects), as pasteable TE; JSON carries the whole rule.
        text = g.rule._replace(perms=frozenset({res.check.perm})).te()
        if g.rule.source != res.check.subject.type:
            text += f" (subject via attribute {g.rule.source})"
        if g.rule.target != res.check.target.type:
            text += f" (target via attribute {g.rule.target})"
        if len(active) > 1:
            n = len(active) - 1
            text += f" (and {n} more rule{'s' if n > 1 else ''})"
        return text
    parts: list[str] = []
    if d.reason == "boolean" and d.boolean_fixes:
        # Every boolean that would allow it, unranked: the fixes below rank them.
        names = sorted({n for f in d.boolean_fixes for n, _ in f.settings})
        parts.append(f"the rules that allow it are under booleans that are off: {', '.join(names)}")
    elif d.reason == "constraint":
        parts.append(f"constraint: {d.constraint}")
    elif d.reason == "bounds":
        parts.append("typebounds: the parent type lacks this permission")
    elif d.reason in ("unknown-class", "unknown-perm"):
        parts.append(f"the policy does not define {res.check.tclass} {res.check.perm}: handle_unknown=deny")
    else:
        parts.append("no allow rule")
        if d.constraint_blocks_fix:
            parts.append(f"and a constraint would deny it too: {d.constraint}")
    if d.silent:
        parts.append("silent: " + d.dontaudit[0].te())
    if not d.enforced:
        parts.append(f"{res.check.subject.type} is permissive: logged, not enforced")
    return "; ".join(parts)


def check_json(res: CheckResult, bools: Mapping[str, bool]) -> dict[str, object]:
    c, d = res.check, res.decision
    booleans: list[dict[str, object]] = []
    for g in d.grants:
        if g.rule.cond is not None:
            booleans.append({"condition": infix(g.rule.cond), "branch": g.rule.branch,
                             "active": g.active,
                             "values": {n: bools[n] for n in cond_booleans(g.rule.cond)}})
    return {
        "step": c.step,
        "hook": c.hook,
        "subject": str(c.subject),
        "target": str(c.target),
        "class": c.tclass,
        "perm": c.perm,
        "kind": c.kind,
        "allowed": d.allowed,
        "enforced": d.enforced,
        "reached": res.reached,
        "silent": d.silent,
        "audited": d.audited,
        "reason": d.reason,
        "explanation": reason_text(res, bools),
        "errno": (c.errno or None) if not d.allowed and d.enforced else None,
        "note": target_text(c),
        "rules": [grant_json(g, bools, c.subject.type, c.target.type) for g in d.grants],
        "booleans": booleans,
        "boolean_fixes": [boolean_fix_json(f) for f in d.boolean_fixes],
        "dontaudit": [r.sesearch() for r in d.dontaudit],
        "constraint": d.constraint,
        "obsolete": obsolete_reason(c.tclass, c.perm),
    }


def chain_json(chain: ChainResult, fixes: Mapping[int, list[Fix]] | None = None
               ) -> dict[str, object]:
    sc = chain.plan.scenario
    first = chain.first_denial
    return {
        "allowed": chain.allowed,
        "effective": chain.effective,
        "operation": sc.operation,
        "domain": str(sc.domain),
        "endpoint": str(sc.endpoint),
        "socket": {"context": str(chain.plan.sock), "class": chain.plan.sclass,
                   "labeled_by": chain.plan.sock_origin},
        "environment": {
            "ip_local_port_range": list(sc.env.local_port_range),
            "ip_unprivileged_port_start": sc.env.unprivileged_port_start,
            "labeled": sc.env.labeled,
            "peer": str(sc.env.peer) if sc.env.peer else None,
            "spd": str(sc.env.spd) if sc.env.spd else None,
            "secmark": str(sc.env.secmark) if sc.env.secmark else None,
        },
        "first_denial": None if first is None else chain.results.index(first),
        "checks": [{**check_json(r, chain.bools),
                    **({"fixes": [fix_json(f) for f in fixes[i]]} if fixes and i in fixes else {})}
                   for i, r in enumerate(chain.results)],
        "notes": notes_text(chain.plan.notes),
    }


def _t(ctx: object) -> str:
    s = str(ctx)
    parts = s.split(":")
    return parts[2] if len(parts) >= 3 else s


def chain_lines(chain: ChainResult, fixes: Mapping[int, list[Fix]] | None = None,
                more: int = 0) -> list[str]:
    """The chain, one line per check, the verdict, then the best fix of each denied
    check (and ``more`` alternatives)."""
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
        c = r.check
        verdict = verdict_text(r)
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
             else "succeeds: the kernel carries on without it (the denial is logged)"
             if not c.errno
             else f"fails with {c.errno} at {c.step}")
            if first.decision.enforced
            else "succeeds (permissive domain)"
        )
        lines.append(f"verdict: DENIED by {c.tclass} {c.perm} on {_t(c.target)}; the syscall {how}")
    for i, found in sorted((fixes or {}).items()):
        shown = [f for f in found if f.verified][: 1 + more]
        c = chain.results[i].check
        if not shown:
            lines.append(f"  no verified fix for {c.tclass} {c.perm}")
        for k, f in enumerate(shown):
            lines += fix_lines(f, "  ", first=k == 0)
        rest = len([f for f in found if f.verified]) - len(shown)
        if rest > 0:
            lines.append(f"  ({rest} more: --fixes {more + rest})")
    for note in notes_text(plan.notes):
        lines.append(f"  note: {note}")
    return lines


def demo_json(chains: list[tuple[str, ChainResult]]) -> list[dict[str, object]]:
    return [{"title": t, **chain_json(c)} for t, c in chains]


def demo_lines(chains: list[tuple[str, ChainResult]]) -> list[str]:
    out: list[str] = []
    for title, chain in chains:
        out += [f"== {title}", *chain_lines(chain), ""]
    out += [
        "A server may listen on its port without being able to connect out: name_bind and",
        "name_connect are separate permissions on the port type, and TCP connect() checks",
        "name_connect on the destination port's type.",
    ]
    return out
