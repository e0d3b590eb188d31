"""A check plan decided against the policy: verdicts, provenance, enforcing order."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from selnet.decide.decision import Decider, Decision
from selnet.kernel.checks import NO_ERRNO
from selnet.model.plan import Check, CheckPlan, KernelModel, Scenario
from selnet.policy.index import Policy

if TYPE_CHECKING:  # a check command's chain never imports the trace model
    from selnet.model.trace import KernelError, TracePlan, TraceStep


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


def _refused(dec: Decision) -> bool:
    return not dec.allowed and dec.enforced


def _unmade(chk: Check, made: dict[int, CheckResult]) -> bool:
    """Is CHK left unmade because the check it needs was refused (or itself unmade)?"""
    need = made.get(id(chk.needs)) if chk.needs is not None else None
    return need is not None and (not need.reached or _refused(need.decision))


def _same_call(chk: Check, made: dict[int, CheckResult]) -> bool | None:
    """Whether CHK is made, when it is decided in one call with an earlier check: exactly
    when that one is (None: CHK has its own call)."""
    other = made.get(id(chk.same_call)) if chk.same_call is not None else None
    return None if other is None else other.reached


def evaluate(policy: Policy, scenario: Scenario, bools: Mapping[str, bool]) -> ChainResult:
    values = dict(bools)
    plan = KernelModel(policy, values).plan(scenario)
    decider = Decider(policy, values)
    results: list[CheckResult] = []
    made: dict[int, CheckResult] = {}
    stopped = False
    for chk in plan.checks:
        dec = decider.decide(chk.subject, chk.target, chk.tclass, chk.perm)
        res = CheckResult(chk, dec, not stopped and not _unmade(chk, made))
        results.append(res)
        made[id(chk)] = res
        if res.reached and _refused(dec) and chk.errno != NO_ERRNO:
            stopped = True  # the syscall fails (or the packet is dropped) here
    return ChainResult(plan, results, values)


@dataclass(slots=True)
class TraceStepResult:
    step: TraceStep
    results: list[CheckResult]
    reached: bool  # did the earlier steps all succeed?
    errno: str | None  # None: the step succeeds (or is not reached)
    # "avc", "capability" (a denied check), "kernel" (KernelError), "closed" (an earlier
    # step's denial closed the descriptor)
    cause: str | None
    # index in results of the enforced denial that fails it (or, errno None, closes the
    # descriptor: exec)
    denial: int | None = None

    @property
    def kernel_error(self) -> KernelError | None:
        return self.step.error if self.cause == "kernel" else None


@dataclass(slots=True)
class TraceResult:
    plan: TracePlan
    steps: list[TraceStepResult]
    bools: dict[str, bool]

    @property
    def allowed(self) -> bool:
        """SELinux allows every reached check (a kernel errno of its own is not a denial)."""
        return all(r.decision.allowed for s in self.steps for r in s.results if r.reached)

    @property
    def completes(self) -> bool:
        """Does every step succeed on an enforcing kernel?"""
        return all(s.errno is None for s in self.steps)

    @property
    def first_denial(self) -> tuple[int, int] | None:
        for i, s in enumerate(self.steps):
            for j, r in enumerate(s.results):
                if r.reached and not r.decision.allowed:
                    return i, j
        return None


def evaluate_trace(policy: Policy, plan: TracePlan, bools: Mapping[str, bool]) -> TraceResult:
    """Each step's checks decided in order; the first enforced denial or kernel error fails
    its step, and the later steps are not reached (the program stops, as sockop does).
    Their checks are still decided, as a permissive kernel would make them.  A denial that
    closes the descriptor (exec) fails nothing at its step: the next step fails with its
    errno (cause "closed") before any of its checks (sockfd_lookup)."""
    values = dict(bools)
    decider = Decider(policy, values)
    out: list[TraceStepResult] = []
    failed = False
    closed: str | None = None  # the errno a closed descriptor gives the next step
    made: dict[int, CheckResult] = {}
    for st in plan.steps:
        results: list[CheckResult] = []
        errno: str | None = None
        cause: str | None = None
        denial: int | None = None
        if closed is not None and not failed:
            errno, cause = closed, "closed"
        for chk in st.checks:
            dec = decider.decide(chk.subject, chk.target, chk.tclass, chk.perm)
            stop = _same_call(chk, made)
            if stop is None:
                stop = not failed and errno is None and not _unmade(chk, made)
            res = CheckResult(chk, dec, stop)
            results.append(res)
            made[id(chk)] = res
            if stop and _refused(dec) and chk.errno != NO_ERRNO and denial is None:
                denial = len(results) - 1
                if chk.spec.closes:
                    closed = chk.errno
                else:
                    errno, cause = chk.errno, chk.kind
        if not failed and errno is None and st.error is not None:
            errno, cause = st.error.errno, "kernel"
        out.append(TraceStepResult(st, results, not failed, None if failed else errno,
                                   None if failed else cause, denial))
        failed = failed or errno is not None
    return TraceResult(plan, out, values)
