"""Decisions memoised on what they depend on, and the port-range and condition helpers
the profiles, the matrix and the fix engine's measurements share.

Split from :mod:`selnet.analyses.profiles` so that a check command's fix engine
(:mod:`selnet.fix.opens`) does not import, and build the dataclasses of, every profile
record: dataclass creation is most of the import time of a warm run.
"""

from __future__ import annotations

import weakref
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from selnet.decide.decision import Decider, Decision
from selnet.policy.conditions import cond_booleans, infix
from selnet.policy.index import Policy
from selnet.policy.snapshot import AVRule, Context

Range = tuple[int, int]


# -- port ranges ---------------------------------------------------------------------------
def merge_ranges(ranges: Iterable[Range]) -> list[Range]:
    out: list[Range] = []
    for low, high in sorted(ranges):
        if out and low <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], high))
        else:
            out.append((low, high))
    return out


def subtract_ranges(ranges: Iterable[Range], cut: Range) -> list[Range]:
    out: list[Range] = []
    for low, high in ranges:
        if high < cut[0] or low > cut[1]:
            out.append((low, high))
            continue
        if low < cut[0]:
            out.append((low, cut[0] - 1))
        if high > cut[1]:
            out.append((cut[1] + 1, high))
    return out


def ranges_text(ranges: Iterable[Range]) -> str:
    """``80, 443, 8008-8009``."""
    return ", ".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in ranges)


def in_ranges(ranges: list[Range], port: int) -> bool:
    i = bisect_right(ranges, (port, 65536)) - 1
    return i >= 0 and ranges[i][0] <= port <= ranges[i][1]


# -- the port map ----------------------------------------------------------------------------
# -- conditions ------------------------------------------------------------------------------
def rule_condition(rule: AVRule) -> str:
    assert rule.cond is not None
    text = infix(rule.cond)
    return text if rule.branch else f"!({text})"


def grant_condition(rules: Iterable[AVRule]) -> str | None:
    """ "" when some rule is unconditional, else the disjunction of the rules' conditions
    (each with its branch), None when there is no rule."""
    conds: list[str] = []
    for rule in rules:
        if rule.cond is None:
            return ""
        text = rule_condition(rule)
        if text not in conds:
            conds.append(text)
    if not conds:
        return None
    if len(conds) == 1:
        return conds[0]
    return " || ".join(f"({c})" if " " in c and not c.startswith("!(") else c for c in conds)


@dataclass(frozen=True, slots=True)
class Access:
    """One decided permission, reduced to what a profile shows."""

    allowed: bool  # with the booleans as they are
    condition: str | None  # "" unconditional, an expression, None: no rule grants it
    reason: str  # Decision.reason
    constraint: str | None  # a constraint denies it even with the TE rule
    fixes: tuple[dict[str, bool], ...] = ()  # minimal boolean settings that allow it
    booleans: tuple[str, ...] = ()  # booleans the decision depends on

    @property
    def possible(self) -> bool:
        """Allowed now or under some boolean setting."""
        return self.allowed or (self.reason == "boolean" and self.constraint is None)


def access_of(d: Decision) -> Access:
    allow_rules = [g.rule for g in d.grants if g.rule.ruletype == "allow"]
    cond = grant_condition(allow_rules) if allow_rules else None
    if d.allowed and not allow_rules:
        cond = ""  # handle_unknown=allow
    names: list[str] = []
    for r in allow_rules:
        if r.cond is not None:
            names.extend(n for n in cond_booleans(r.cond) if n not in names)
    return Access(
        d.allowed,
        cond,
        d.reason,
        d.constraint if d.constraint_blocks_fix or d.reason == "constraint" else None,
        tuple(dict(f.settings) for f in d.boolean_fixes),
        tuple(names),
    )


# The target part of a key: (the names of the type its subject's rules target, the type or
# its membership of the constraints' t2 sets).
TargetPart = tuple[frozenset[str], object]
# What Decisions.key reads of the subject: (the key's subject prefix, whether the key names
# the target type itself, the target parts by type for the subject's rule targets, those
# targets, the constraints' t2 sets).
SubjectPart = tuple[tuple[object, ...], bool, dict[str, TargetPart], frozenset[str],
                    tuple[frozenset[str], ...]]


class _KeyParts:
    """What :meth:`Decisions.key` remembers about one policy."""

    __slots__ = ("rule_sets", "subjects", "tparts", "typed")

    def __init__(self) -> None:
        self.subjects: dict[tuple[str, str, str], tuple[tuple[object, ...], frozenset[str]]] = {}
        self.rule_sets: dict[tuple[AVRule, ...], int] = {}
        self.typed: dict[tuple[str, str], tuple[tuple[frozenset[str], ...],
                                                tuple[frozenset[str], ...], bool]] = {}
        # (the subject's rule targets, tclass, perm) -> target type -> the key's target part
        self.tparts: dict[tuple[frozenset[str], str, str], dict[str, TargetPart]] = {}


_KEY_PARTS: weakref.WeakKeyDictionary[Policy, _KeyParts] = weakref.WeakKeyDictionary()


class Decisions:
    """:class:`Decider` memoised on what a decision can depend on (issue 13).

    A decision reads the subject only through the rules from its type that name the
    permission (in their order), its user, role and level, whether it is permissive, and
    its type itself only when a constraint on the permission reads ``t1`` or the type is
    bounded; it reads the target only through the names of its type those rules target,
    its user, role and level, and its type only for ``t2`` or when either type is bounded
    (typebounds re-decide on the parent's rules).  Thousands of
    port types, and the many domains granted only through attributes, share a handful of
    such keys: a profile or the matrix makes one decision per key, not one per pair.

    A key depends on the policy alone, never on the booleans: the Decisions of one policy
    share the parts keys are made of, so a key of one is a key of every other (the fix
    engine decides before and after a boolean setting with one key).
    """

    def __init__(self, policy: Policy, bools: Mapping[str, bool]) -> None:
        self.policy = policy
        self.decider = Decider(policy, bools)
        self.bools = self.decider.bools
        parts = _KEY_PARTS.get(policy)
        if parts is None:
            parts = _KEY_PARTS[policy] = _KeyParts()
        # (tclass, perm, subject type) -> (subject part of the key, the rules' targets)
        self._subjects = parts.subjects
        self._rule_sets = parts.rule_sets  # a rule sequence -> a small id
        self._typed = parts.typed
        # (the rules' targets, tclass, perm, target type) -> the target part of the key
        self._tparts = parts.tparts
        self._memo: dict[tuple[object, ...], Decision] = {}
        self._access: dict[tuple[object, ...], Access] = {}
        self._verdicts: dict[tuple[object, ...], bool] = {}  # allowed_as without a Decision
        self._bounds = policy.snap.bounds
        # the matrix's grants per (subject key, protocol, perm): (port type, ranges, condition,
        # allowed now)
        self.grant_lists: dict[tuple[object, ...], list[tuple[str, tuple[Range, ...], str, bool]]] = {}

    def _type_sets(self, tclass: str, perm: str) -> tuple[tuple[frozenset[str], ...],
                                                          tuple[frozenset[str], ...], bool]:
        """The type sets constraints on the permission compare ``t1`` / ``t2`` with, and
        whether one compares ``t1`` with ``t2`` itself: a constraint reads a type only
        through its membership of those sets, unless it compares the two types."""
        pk = (tclass, perm)
        got = self._typed.get(pk)
        if got is None:
            t1: list[frozenset[str]] = []
            t2: list[frozenset[str]] = []
            direct = False
            for c in self.policy.constraints_for(tclass):
                if perm not in c.perms:
                    continue
                toks = c.postfix
                for i, tok in enumerate(toks[:-1]):
                    if tok not in ("t1", "t2"):
                        continue
                    nxt = toks[i + 1]
                    if nxt in ("t1", "t2"):
                        direct = True
                    elif isinstance(nxt, frozenset):
                        (t1 if tok == "t1" else t2).append(nxt)
                    else:  # a single name not wrapped in a set
                        (t1 if tok == "t1" else t2).append(frozenset((nxt,)))
            got = self._typed[pk] = (tuple(t1), tuple(t2), direct)
        return got

    def subject_key(self, scon: Context, tclass: str, perm: str) -> tuple[object, ...]:
        """The subject's part of :meth:`key`: subjects with equal parts decide alike on
        every target (and have the same candidate targets)."""
        return self.key(scon, scon, tclass, perm)[:4]

    def key(self, scon: Context, tcon: Context, tclass: str, perm: str) -> tuple[object, ...]:
        """Equal keys, equal decisions (for any boolean values)."""
        return self.key_with(self.subject_part(scon, tclass, perm), tcon)

    def subject_part(self, scon: Context, tclass: str, perm: str) -> SubjectPart:
        """What :meth:`key` reads of the subject, for :meth:`key_with`: a caller deciding
        one subject against many targets computes it once."""
        sk = (tclass, perm, scon.type)
        subj = self._subjects.get(sk)
        if subj is None:
            t1_sets, _, direct = self._type_sets(tclass, perm)
            rules = tuple(r for r in self.policy.rules_from(tclass, scon.type) if perm in r.perms)
            rid = self._rule_sets.setdefault(rules, len(self._rule_sets))
            bounded = scon.type in self._bounds
            ident: tuple[object, ...] = (
                rid, scon.type in self.policy.snap.permissive,
                scon.type if direct or bounded else tuple(scon.type in t for t in t1_sets),
                bounded or direct)
            subj = self._subjects[sk] = (ident, frozenset(r.target for r in rules))
        ident, targets = subj
        tk = (targets, tclass, perm)
        by_type = self._tparts.get(tk)
        if by_type is None:
            by_type = self._tparts[tk] = {}
        return ((ident, scon.user, scon.role, scon.mls, tclass, perm), bool(ident[3]), by_type,
                targets, self._type_sets(tclass, perm)[1])

    def key_with(self, part: SubjectPart, tcon: Context) -> tuple[object, ...]:
        """:meth:`key` of the subject and check ``part`` stands for, and ``tcon``."""
        prefix, typed, by_type, targets, t2_sets = part
        t = tcon.type
        tpart = by_type.get(t)
        if tpart is None:
            # the type's names (itself and its attributes, as names_of) that rules target
            names = targets.intersection(self.policy.snap.type_attrs.get(t, ()))
            if t in targets:
                names = names | {t}
            tpart = by_type[t] = (names, t if t in self._bounds else
                                  tuple(t in ts for ts in t2_sets) if t2_sets else ())
        return (*prefix, tpart[0], tcon.user, tcon.role, tcon.mls, t if typed else tpart[1])

    def decision(self, scon: Context, tcon: Context, tclass: str, perm: str) -> Decision:
        return self.decision_as(self.key(scon, tcon, tclass, perm), scon, tcon, tclass, perm)

    def access(self, scon: Context, tcon: Context, tclass: str, perm: str) -> Access:
        return self.access_as(self.key(scon, tcon, tclass, perm), scon, tcon, tclass, perm)

    def access_as(self, key: tuple[object, ...], scon: Context, tcon: Context, tclass: str,
                  perm: str) -> Access:
        """:meth:`access` with its :meth:`key` already computed."""
        got = self._access.get(key)
        if got is None:
            got = self._access[key] = access_of(self.decision_as(key, scon, tcon, tclass, perm))
        return got

    def allowed_as(self, key: tuple[object, ...], scon: Context, tcon: Context, tclass: str,
                   perm: str) -> bool:
        """The verdict alone: from the decision when there is one, else from
        :meth:`Decider.allowed` (no provenance built)."""
        got = self._verdicts.get(key)
        if got is None:
            d = self._memo.get(key)
            got = self._verdicts[key] = (d.allowed if d is not None else
                                         self.decider.allowed(scon, tcon, tclass, perm))
        return got

    def decision_as(self, key: tuple[object, ...], scon: Context, tcon: Context, tclass: str,
                    perm: str) -> Decision:
        """:meth:`decision` with its :meth:`key` already computed."""
        got = self._memo.get(key)
        if got is None:
            got = self._memo[key] = self.decider.decide(scon, tcon, tclass, perm)
        return got



def defined(policy: Policy, tclass: str, perm: str) -> bool:
    perms = policy.snap.classes.get(tclass)
    return perms is not None and perm in perms


def candidate_targets(policy: Policy, tclass: str, subject: str, perm: str) -> set[str]:
    """Types that some allow rule for (subject, tclass, perm) covers, attributes expanded."""
    out: set[str] = set()
    for rule in policy.rules_from(tclass, subject):
        if rule.ruletype == "allow" and perm in rule.perms:
            out |= policy.expand(rule.target)
    return out


def candidate_subjects(policy: Policy, tclass: str, target: str, perm: str) -> set[str]:
    tnames = set(policy.names_of(target))
    out: set[str] = set()
    for rule in policy.snap.rules:
        if (
            rule.tclass == tclass
            and rule.ruletype == "allow"
            and perm in rule.perms
            and rule.target in tnames
        ):
            out |= policy.expand(rule.source)
    return out
