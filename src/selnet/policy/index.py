"""A policy ready for questions: the snapshot plus lookup indexes built in memory.

The rule index maps (class, source name) to rules, and every type to itself
plus its attributes, so finding the rules that cover (S, T, class) costs a few
dictionary lookups instead of a scan ("attribute expansion in both directions":
``names_of`` goes type -> attributes, ``expand`` goes attribute -> types).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

from selnet.errors import InputError
from selnet.policy.conditions import eval_cond
from selnet.policy.mls import LevelParser
from selnet.policy.snapshot import (
    AVRule,
    Constraint,
    Context,
    PolicySnapshot,
    TypeTransition,
)
from selnet.policy.source import PolicySource

if TYPE_CHECKING:
    from selnet.policy.overlay import Change, Overlay

_R = TypeVar("_R")
_K = TypeVar("_K", bound=Hashable)


def _shown(text: str, limit: int = 60) -> str:
    """``repr`` of user input for a one-line message, cut when it is long."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text)} characters)"


def did_you_mean(name: str, names: Iterable[str]) -> str:
    """`` (did you mean a, b?)`` with the policy's nearest names, or ``""``."""
    if not name or len(name) > 200:
        return ""
    import difflib  # only for a name the policy lacks

    close = difflib.get_close_matches(name, list(names), n=3, cutoff=0.75)
    if not close:
        return ""

    def score(other: str) -> float:
        return difflib.SequenceMatcher(None, name, other).ratio()

    best = score(close[0])  # the nearest, and only those as near
    close = [c for c in close if score(c) >= best - 1e-9]
    return f" (did you mean {' or '.join(close)}?)"


def _grouped(records: Iterable[_R], key: Callable[[_R], _K]) -> dict[_K, list[_R]]:
    out: dict[_K, list[_R]] = defaultdict(list)
    for rec in records:
        out[key(rec)].append(rec)
    return dict(out)


class Policy:
    """A loaded policy, or a loaded policy with an :class:`~selnet.policy.overlay.Overlay` on it.

    ``base`` is the policy as loaded (itself when no overlay is applied) and
    ``overlay`` the changes applied to it (None for a loaded policy).  An
    overlaid Policy shares every unchanged part of its base: see
    :meth:`layered` and :mod:`selnet.policy.overlay`.
    """

    Snapshot = PolicySnapshot

    def __init__(self, snap: PolicySnapshot, source: PolicySource, from_cache: bool) -> None:
        self.snap = snap
        self.source = source
        self.from_cache = from_cache
        self.base: Policy = self
        self.overlay: Overlay | None = None
        # The rule indexes are built when a question first needs them: a label lookup
        # never does (and then never decodes the cached rules: see policy/cache.py).
        self._rules_index: dict[tuple[str, str], list[AVRule]] | None = None
        self._transitions_index: dict[tuple[str, str], list[TypeTransition]] | None = None
        self._constraints_index: dict[str, list[Constraint]] | None = None
        self._names: dict[str, tuple[str, ...]] = {}
        self._domains: tuple[str, ...] | None = None
        self.levels = (
            LevelParser(snap.sensitivities, snap.categories, snap.sens_aliases, snap.cat_aliases)
            if snap.mls
            else None
        )

    @classmethod
    def layered(
        cls,
        base: Policy,
        snap: PolicySnapshot,
        overlay: Overlay,
        *,
        new_rules: Sequence[AVRule] = (),
        new_transitions: Sequence[TypeTransition] = (),
    ) -> Policy:
        """``base`` (a loaded policy) with ``overlay`` applied, without re-indexing.

        ``snap`` is the base's snapshot with the changed fields replaced (see
        :meth:`Overlay.apply`); ``new_rules`` and ``new_transitions`` are the
        records it adds.  The indexes are the base's, layered with those: a key
        the overlay does not touch maps to the base's own list.  The MLS level
        parser is shared (an overlay declares no sensitivity or category).
        """
        if base.overlay is not None:
            raise ValueError("layered() takes the loaded policy, not an overlaid one")
        by = base._by_class_source
        if new_rules:
            by = dict(by)
            for key, rules in _grouped(new_rules, lambda r: (r.tclass, r.source)).items():
                by[key] = [*by.get(key, ()), *rules]
        trans = base._transitions
        if new_transitions:
            trans = dict(trans)
            for key, tts in _grouped(new_transitions, lambda t: (t.tclass, t.source)).items():
                trans[key] = [*trans.get(key, ()), *tts]
        cons = base._constraints
        if snap.constraints is not base.snap.constraints:
            cons = _grouped(snap.constraints, lambda c: c.tclass)
        pol = cls.__new__(cls)
        pol.snap = snap
        pol.source = base.source
        pol.from_cache = base.from_cache
        pol.base = base
        pol.overlay = overlay
        pol._rules_index = by
        pol._transitions_index = trans
        pol._constraints_index = cons
        pol._names = {}
        pol._domains = None
        pol.levels = base.levels
        return pol

    @property
    def _by_class_source(self) -> dict[tuple[str, str], list[AVRule]]:
        """(class, source name as written) -> the rules."""
        if self._rules_index is None:
            self._rules_index = _grouped(self.snap.rules, lambda r: (r.tclass, r.source))
        return self._rules_index

    @property
    def _transitions(self) -> dict[tuple[str, str], list[TypeTransition]]:
        if self._transitions_index is None:
            self._transitions_index = _grouped(self.snap.transitions,
                                               lambda t: (t.tclass, t.source))
        return self._transitions_index

    @property
    def _constraints(self) -> dict[str, list[Constraint]]:
        if self._constraints_index is None:
            self._constraints_index = _grouped(self.snap.constraints, lambda c: c.tclass)
        return self._constraints_index

    # -- what this policy is --------------------------------------------------
    def with_changes(self, *changes: Change) -> Policy:
        """This policy with more changes applied (one call: see :class:`Overlay`)."""
        from selnet.policy.overlay import Overlay

        return Overlay(tuple(changes)).apply(self)

    def name(self) -> str:
        """The loaded policy's file (the first source for a compiled CIL/policy.conf)."""
        src = self.source
        return str(src.inputs[0]) if src.inputs else str(src.binary)

    def describe(self) -> str:
        """One line naming the policy and the changes a decision was made on."""
        text = f"{self.name()} (sha256 {self.base.snap.sha256[:12]})"
        if self.overlay is not None and self.overlay.changes:
            n = len(self.overlay.changes)
            text += f" with {n} change{'s' if n > 1 else ''}: " + "; ".join(
                d.rstrip(";") for d in self.overlay.describe()
            )
        return text

    def provenance(self) -> dict[str, object]:
        """The same as :meth:`describe`, for JSON output."""
        return {
            "policy": self.name(),
            "sha256": self.base.snap.sha256,
            "changes": [] if self.overlay is None else self.overlay.describe(),
        }

    # -- types and attributes ------------------------------------------------
    def names_of(self, type_name: str) -> tuple[str, ...]:
        """The type itself followed by its attributes: every name a rule may use for it."""
        got = self._names.get(type_name)
        if got is None:
            got = (type_name, *sorted(self.snap.type_attrs.get(type_name, ())))
            self._names[type_name] = got
        return got

    def expand(self, name: str) -> frozenset[str]:
        """Attribute -> its types; a type -> itself."""
        if name in self.snap.attr_types:
            return self.snap.attr_types[name]
        return frozenset((name,))

    def domains(self) -> tuple[str, ...]:
        """Types a process can run as: those of some role other than object_r.

        A process context needs a role that admits the type, so no attribute
        name is assumed.  A policy whose roles list no types falls back to the
        expanded sources of its (network) rules.
        """
        if self._domains is None:
            types: set[str] = set()
            for role, members in self.snap.role_types.items():
                if role != "object_r":
                    types |= members
            if not types:
                for rule in self.snap.rules:
                    types |= self.expand(rule.source)
            self._domains = tuple(sorted(t for t in types if t in self.snap.type_attrs))
        return self._domains

    def require_type(self, name: str, what: str = "type") -> str:
        t = self.snap.resolve_type(name)
        if t is None:
            if name in self.snap.attr_types:
                hint = " (it is an attribute)"
            else:
                pool: Iterable[str] = (
                    self.domains() if what == "domain"
                    else (*self.snap.type_attrs, *self.snap.aliases)
                )
                hint = did_you_mean(name, pool)
            raise InputError(f"unknown {what} {_shown(name)} in this policy{hint}")
        return t

    # -- booleans -------------------------------------------------------------
    def bool_values(self, overrides: Mapping[str, bool] | None = None) -> dict[str, bool]:
        values = dict(self.snap.booleans)
        for name, val in (overrides or {}).items():
            if name not in values:
                raise InputError(
                    f"unknown boolean {_shown(name)} in this policy{did_you_mean(name, values)}")
            values[name] = val
        return values

    # -- rules ----------------------------------------------------------------
    def candidate_rules(
        self, tclass: str, stype: str, ttype: str, ruletypes: Iterable[str] = ("allow",)
    ) -> list[AVRule]:
        """Rules of these kinds whose source covers stype and target covers ttype."""
        kinds = set(ruletypes)
        tnames = set(self.names_of(ttype))
        out = []
        for sname in self.names_of(stype):
            for rule in self._by_class_source.get((tclass, sname), ()):
                if rule.ruletype in kinds and rule.target in tnames:
                    out.append(rule)
        return out

    def rules_from(self, tclass: str, stype: str) -> list[AVRule]:
        """Every rule of tclass whose source covers stype (all targets)."""
        out: list[AVRule] = []
        for sname in self.names_of(stype):
            out.extend(self._by_class_source.get((tclass, sname), ()))
        return out

    def rules_named(self, tclass: str, source: str) -> Sequence[AVRule]:
        """The rules of tclass written with exactly this source name (type or attribute)."""
        return self._by_class_source.get((tclass, source), ())

    def transition(
        self, stype: str, ttype: str, tclass: str, bools: Mapping[str, bool]
    ) -> TypeTransition | None:
        tnames = set(self.names_of(ttype))
        for sname in self.names_of(stype):
            for tt in self._transitions.get((tclass, sname), ()):
                if tt.target not in tnames:
                    continue
                if tt.cond is None or eval_cond(tt.cond, bools) == tt.branch:
                    return tt
        return None

    def constraints_for(self, tclass: str) -> list[Constraint]:
        return self._constraints.get(tclass, [])

    # -- contexts -------------------------------------------------------------
    def context_for_domain(self, text: str) -> Context:
        """A full context from a type or a context; builds a valid one for a bare type."""
        if ":" in text:
            try:
                ctx = Context.parse(text)
            except ValueError as exc:
                raise InputError(str(exc)) from exc
            return self._checked_context(ctx)
        t = self.require_type(text, "domain")
        roles = [r for r, types in self.snap.role_types.items() if t in types and r != "object_r"]
        if not roles and self._roles_list_types():
            # Only object_r admits the type: no process can run as it (a port, file or
            # socket type), and no context with it as the subject is valid.
            raise InputError(f"{t!r} is not a domain: no role other than object_r may have it"
                             f"{did_you_mean(t, self.domains())}")
        user_roles = {r: sorted(u for u, i in self.snap.users.items() if r in i.roles) for r in roles}
        usable = [r for r in roles if user_roles[r]]
        if usable:
            role = "system_r" if "system_r" in usable else sorted(usable)[0]
            users = user_roles[role]
            user = "system_u" if "system_u" in users else users[0]
        else:
            # No user/role pair admits the type (e.g. a domain only reached through
            # a role the build left out).  TE decisions do not depend on user or
            # role, so build an analysis context rather than refuse.
            if "system_r" in self.snap.role_types:
                role = "system_r"
            elif roles:
                role = sorted(roles)[0]
            else:
                raise InputError(f"policy has no role for {t!r}")
            user = "system_u" if "system_u" in self.snap.users else sorted(self.snap.users)[0]
        mls = self.snap.users[user].level if self.snap.mls else ""
        return Context(user, role, t, mls)

    def object_context(self, type_name: str) -> Context:
        """A context for an object type (e.g. a --secmark type): system_u:object_r:T:low."""
        t = self.require_type(type_name)
        user = "system_u" if "system_u" in self.snap.users else sorted(self.snap.users)[0]
        mls = self.snap.users[user].level if self.snap.mls else ""
        return Context(user, "object_r", t, mls)

    def _roles_list_types(self) -> bool:
        """Whether some role other than object_r lists types (a policy whose roles list
        none gets analysis contexts: see :meth:`domains`)."""
        return any(types for r, types in self.snap.role_types.items() if r != "object_r")

    def _checked_context(self, ctx: Context) -> Context:
        t = self.require_type(ctx.type)
        if ctx.user not in self.snap.users:
            raise InputError(f"unknown user {_shown(ctx.user)} in context {ctx}"
                             f"{did_you_mean(ctx.user, self.snap.users)}")
        if ctx.role not in self.snap.role_types:
            raise InputError(f"unknown role {_shown(ctx.role)} in context {ctx}"
                             f"{did_you_mean(ctx.role, self.snap.role_types)}")
        if ctx.role != "object_r" and self._roles_list_types():
            # policydb_context_isvalid: outside object_r, the role must have the type
            # and the user must have the role.
            if t not in self.snap.role_types[ctx.role]:
                raise InputError(f"role {ctx.role} may not have type {t} in context {ctx}")
            if ctx.role not in self.snap.users[ctx.user].roles:
                raise InputError(f"user {ctx.user} may not have role {ctx.role} in context {ctx}")
        mls = ctx.mls
        if self.snap.mls:
            if not mls:
                mls = self.snap.users[ctx.user].level
            assert self.levels is not None
            if not self.levels.valid_range(mls):
                raise InputError(f"invalid MLS level/range {mls!r} in context {ctx}")
        elif mls:
            raise InputError(f"context {ctx} has an MLS part but the policy is not MLS")
        return Context(ctx.user, ctx.role, t, mls)

    def parse_context(self, text: str) -> Context:
        """A full context, or a bare type made into an object context."""
        if ":" in text:
            try:
                return self._checked_context(Context.parse(text))
            except ValueError as exc:
                raise InputError(str(exc)) from exc
        return self.object_context(text)
