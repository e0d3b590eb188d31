"""One check -> one decision with provenance.

The computation mirrors the kernel's (ss/services.c context_struct_compute_av):
TE allow rules (conditional ones by their boolean's current value), then
constraints, then typebounds; a class or permission the policy does not define
is decided by handle_unknown.  Around the verdict we record why: which rules
grant it and through which attribute, which booleans would change it, whether a
dontaudit rule hides the denial, and whether the subject domain is permissive.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field

from selnet.decide.constraints import ConstraintEvaluator
from selnet.policy.conditions import cond_booleans, eval_cond
from selnet.policy.index import Policy
from selnet.policy.snapshot import AVRule, Context


@dataclass(frozen=True, slots=True)
class Grant:
    """A rule that matches the check, and the names through which it matched."""

    rule: AVRule
    via_source: str  # the subject type itself or one of its attributes
    via_target: str
    active: bool  # its condition currently selects it


@dataclass(frozen=True, slots=True)
class BooleanFix:
    """Boolean settings that would make an allow rule apply."""

    settings: tuple[tuple[str, bool], ...]
    rule: AVRule


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool  # the policy's verdict
    reason: str  # allowed | no-rule | boolean | constraint | bounds | unknown-class | unknown-perm
    enforced: bool  # False when the subject domain is permissive
    silent: bool  # denied and a dontaudit rule hides the AVC
    audited: bool  # allowed and an auditallow rule logs "granted"
    grants: tuple[Grant, ...] = field(default=())
    boolean_fixes: tuple[BooleanFix, ...] = field(default=())
    dontaudit: tuple[AVRule, ...] = field(default=())
    constraint: str | None = None  # the failing constraint statement
    constraint_blocks_fix: bool = False  # a constraint would deny even with a TE rule

    @property
    def effective(self) -> bool:
        """Does the operation go through (allowed, or denied but not enforced)?"""
        return self.allowed or not self.enforced


class Decider:
    def __init__(self, policy: Policy, bools: Mapping[str, bool] | None = None) -> None:
        self.policy = policy
        self.bools = dict(bools) if bools is not None else dict(policy.snap.booleans)
        self._constraints = ConstraintEvaluator(policy.levels)

    # -- TE ------------------------------------------------------------------
    def _grants(self, stype: str, ttype: str, tclass: str, perm: str) -> dict[str, list[Grant]]:
        """allow/auditallow/dontaudit rules covering (stype, ttype, tclass, perm), in one pass."""
        out: dict[str, list[Grant]] = {"allow": [], "auditallow": [], "dontaudit": []}
        tnames = set(self.policy.names_of(ttype))
        # rules_from only yields rules whose source is stype or one of its attributes
        for rule in self.policy.rules_from(tclass, stype):
            if perm not in rule.perms or rule.target not in tnames:
                continue
            active = rule.cond is None or eval_cond(rule.cond, self.bools) == rule.branch
            out[rule.ruletype].append(Grant(rule, rule.source, rule.target, active))
        return out

    def te_allowed(self, stype: str, ttype: str, tclass: str, perm: str) -> bool:
        """Some active allow rule covers (stype, ttype, tclass, perm): ``_grants``'s allow
        list has an active grant, found without building it."""
        tnames = set(self.policy.names_of(ttype))
        bools = self.bools
        for rule in self.policy.rules_from(tclass, stype):
            if rule.ruletype == "allow" and perm in rule.perms and rule.target in tnames and (
                    rule.cond is None or eval_cond(rule.cond, bools) == rule.branch):
                return True
        return False

    def bounded_ok(self, stype: str, ttype: str, tclass: str, perm: str) -> bool:
        """typebounds: a bounded child may not exceed what its parent may do."""
        bounds = self.policy.snap.bounds
        if stype not in bounds and ttype not in bounds:
            return True
        ps = bounds.get(stype, stype)
        pt = bounds.get(ttype, ttype)
        return self.te_allowed(ps, pt, tclass, perm)

    def failing_constraint(
        self, scon: Context, tcon: Context, tclass: str, perm: str
    ) -> str | None:
        """The first constraint on (tclass, perm) that this pair does not satisfy."""
        for con in self.policy.constraints_for(tclass):
            if perm in con.perms and not self._constraints.holds(con, scon, tcon):
                return con.text
        return None

    def _boolean_fixes(self, grants: list[Grant]) -> tuple[BooleanFix, ...]:
        fixes: dict[tuple[tuple[str, bool], ...], BooleanFix] = {}
        for g in grants:
            if g.active or g.rule.cond is None:
                continue
            names = cond_booleans(g.rule.cond)
            best: list[tuple[tuple[str, bool], ...]] = []
            best_changes = None
            # Expressions are small (refpolicy's largest have a handful of booleans).
            for values in itertools.product((False, True), repeat=len(names)):
                trial = dict(self.bools)
                trial.update(zip(names, values, strict=True))
                if eval_cond(g.rule.cond, trial) != g.rule.branch:
                    continue
                changes = tuple((n, v) for n, v in zip(names, values, strict=True) if self.bools[n] != v)
                if best_changes is None or len(changes) < best_changes:
                    best, best_changes = [changes], len(changes)
                elif len(changes) == best_changes:
                    best.append(changes)
            for changes in best:
                key = tuple(sorted(changes))
                if key and key not in fixes:
                    fixes[key] = BooleanFix(key, g.rule)
        return tuple(sorted(fixes.values(), key=lambda f: (len(f.settings), f.settings)))

    # -- the decision -----------------------------------------------------------
    def allowed(self, scon: Context, tcon: Context, tclass: str, perm: str) -> bool:
        """``decide(scon, tcon, tclass, perm).allowed`` without the provenance (the rules,
        boolean fixes, dontaudit): what a measurement over thousands of checks needs."""
        class_perms = self.policy.snap.classes.get(tclass)
        if class_perms is None or perm not in class_perms:
            return self.policy.snap.handle_unknown == "allow"
        stype, ttype = scon.type, tcon.type
        return (self.te_allowed(stype, ttype, tclass, perm)
                and self.failing_constraint(scon, tcon, tclass, perm) is None
                and self.bounded_ok(stype, ttype, tclass, perm))

    def decide(self, scon: Context | str, tcon: Context | str, tclass: str, perm: str) -> Decision:
        """Decide one check.  Contexts may be given as text: a domain type or a context for
        the subject, an object type or a context for the target (checked against the policy)."""
        if isinstance(scon, str):
            scon = self.policy.context_for_domain(scon)
        if isinstance(tcon, str):
            tcon = self.policy.parse_context(tcon)
        snap = self.policy.snap
        stype, ttype = scon.type, tcon.type
        enforced = stype not in snap.permissive
        class_perms = snap.classes.get(tclass)
        if class_perms is None or perm not in class_perms:
            allowed = snap.handle_unknown == "allow"
            reason = "unknown-class" if class_perms is None else "unknown-perm"
            return Decision(
                allowed, "allowed" if allowed else reason, enforced, False, False
            )

        matching = self._grants(stype, ttype, tclass, perm)
        grants = matching["allow"]
        te_ok = any(g.active for g in grants)
        failing = self.failing_constraint(scon, tcon, tclass, perm)
        if te_ok and failing is None and self.bounded_ok(stype, ttype, tclass, perm):
            audited = any(g.active for g in matching["auditallow"])
            return Decision(True, "allowed", enforced, False, audited, tuple(grants))
        dontaudit = tuple(g.rule for g in matching["dontaudit"] if g.active)
        fixes: tuple[BooleanFix, ...] = ()
        if te_ok:
            reason = "constraint" if failing is not None else "bounds"
        else:
            fixes = self._boolean_fixes(grants)
            reason = "boolean" if fixes else "no-rule"
        return Decision(
            False, reason, enforced, bool(dontaudit), False, tuple(grants), fixes, dontaudit,
            failing, failing is not None,
        )
