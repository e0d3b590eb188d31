"""A check plan decided against the policy: verdicts, provenance, enforcing order."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from selnet.decide.decision import Decider, Decision
from selnet.model.plan import Check, CheckPlan, KernelModel, Scenario
from selnet.policy.index import Policy


@dataclass(frozen=True, slots=True)
class CheckResult:
    check: Check
    decision: Decision
    reached: bool  # would an enforcing kernel get this far?

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
