"""A check plan decided against the policy: verdicts, provenance, enforcing order."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from selnet.decide.decision import Decider, Decision
from selnet.kernel.classes import obsolete_reason
from selnet.model.plan import Check, CheckPlan, KernelModel, Scenario
from selnet.policy.conditions import cond_booleans, infix
from selnet.policy.index import Policy
from selnet.policy.snapshot import AVRule


@dataclass(frozen=True, slots=True)
class CheckResult:
    check: Check
    decision: Decision
    reached: bool  # would an enforcing kernel get this far?

    @property
    def passes(self) -> bool:
        return self.decision.allowed


@dataclass(slots=True)
class ChainResult:
    plan: CheckPlan
    results: list[CheckResult]
    bools: dict[str, bool]

    @property
    def allowed(self) -> bool:
        """Every reached check passes (a permissive domain's denials still count as denials)."""
        return all(r.decision.allowed for r in self.results if r.reached)

    @property
    def first_denial(self) -> CheckResult | None:
        for r in self.results:
            if r.reached and not r.decision.allowed:
                return r
        return None

    @property
    def effective(self) -> bool:
        """Does the operation succeed on the running kernel (permissive domains included)?"""
        return all(r.decision.effective for r in self.results if r.reached)


def evaluate(policy: Policy, scenario: Scenario, bools: Mapping[str, bool]) -> ChainResult:
    values = dict(bools)
    plan = KernelModel(policy, values).plan(scenario)
    decider = Decider(policy, values)
    results: list[CheckResult] = []
    stopped = False
    for chk in plan.checks:
        dec = decider.decide(chk.subject, chk.target, chk.tclass, chk.perm)
        results.append(CheckResult(chk, dec, not stopped))
        if not dec.allowed and dec.enforced:
            stopped = True  # the syscall fails (or the packet is dropped) here
    return ChainResult(plan, results, values)


def reason_text(res: CheckResult, bools: Mapping[str, bool]) -> str:
    """The deciding rule or the reason, in one line."""
    d = res.decision
    if d.allowed:
        active = [g for g in d.grants if g.active]
        if not active:
            return "allowed by handle_unknown=allow (the policy does not define it)"
        g = active[0]
        text = _short_rule(g.rule, res.check.perm)
        if g.rule.source != res.check.subject.type:
            text += f" (subject via attribute {g.rule.source})"
        if g.rule.target != res.check.target.type:
            text += f" (target via attribute {g.rule.target})"
        if len(active) > 1:
            text += f" (+{len(active) - 1} more)"
        return text
    parts: list[str] = []
    if d.reason == "boolean" and d.boolean_fixes:
        fix = d.boolean_fixes[0]
        sets = ", ".join(f"{n}={'on' if v else 'off'}" for n, v in fix.settings)
        cond = infix(fix.rule.cond) if fix.rule.cond else ""
        parts.append(f"needs {sets} (rule under [{cond}])")
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
        parts.append("silent: dontaudit " + d.dontaudit[0].sesearch())
    if not d.enforced:
        parts.append(f"{res.check.subject.type} is permissive: logged, not enforced")
    return "; ".join(parts)


def _short_rule(rule: AVRule, perm: str) -> str:
    """The rule with only the checked permission named, for one-line output."""
    more = len(rule.perms) - 1
    ptext = perm if not more else f"{{ {perm} +{more} }}"
    text = f"{rule.ruletype} {rule.source} {rule.target}:{rule.tclass} {ptext};"
    if rule.cond is not None:
        text += f" [{infix(rule.cond)}]:{rule.branch}"
    return text


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
        "errno": c.errno if not d.allowed and d.enforced else None,
        "note": c.note,
        "rules": [g.to_json(bools, c.subject.type, c.target.type) for g in d.grants],
        "booleans": booleans,
        "boolean_fixes": [f.to_json() for f in d.boolean_fixes],
        "dontaudit": [r.sesearch() for r in d.dontaudit],
        "constraint": d.constraint,
        "obsolete": obsolete_reason(c.tclass, c.perm),
    }


def chain_json(chain: ChainResult) -> dict[str, object]:
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
            "secmark": str(sc.env.secmark) if sc.env.secmark else None,
        },
        "first_denial": None if first is None else chain.results.index(first),
        "checks": [check_json(r, chain.bools) for r in chain.results],
        "notes": chain.plan.notes,
    }
