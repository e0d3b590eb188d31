"""Boolean functions of a policy's booleans, in a canonical form.

A grant that holds "when httpd_can_network_connect || httpd_can_network_relay" and one
written "when !(!httpd_can_network_relay && !httpd_can_network_connect)" are the same
access: a review must not report them as a change.  A :class:`BoolFn` is the truth
table over the booleans it really depends on (a boolean that changes nothing is
dropped), so equal functions compare equal however the policy spells them.
Policy conditions are small (refpolicy's largest name a handful of booleans), so truth
tables stay tiny.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from selnet.policy.conditions import CondExpr, cond_booleans, eval_cond


@dataclass(frozen=True, slots=True)
class BoolFn:
    names: tuple[str, ...]  # sorted; each one changes the value somewhere
    table: int  # bit i: the value when names[j] is (i >> j) & 1 for every j

    def at(self, values: Mapping[str, bool]) -> bool:
        i = 0
        for j, name in enumerate(self.names):
            if values.get(name, False):
                i |= 1 << j
        return bool(self.table >> i & 1)

    @property
    def constant(self) -> bool | None:
        """True or False when the function depends on no boolean, else None."""
        return bool(self.table) if not self.names else None

    def expression(self) -> str:
        """A short sum of products naming the booleans (deterministic for equal functions)."""
        return _expression(self)


@functools.lru_cache(maxsize=16384)
def _expression(fn: BoolFn) -> str:
    const = fn.constant
    if const is not None:
        return "true" if const else "false"
    terms = _cover(fn.names, fn.table)
    parts = []
    for term in terms:
        lits = [n if v else f"!{n}" for n, v in term]
        parts.append(" && ".join(lits))
    if len(parts) == 1:
        return parts[0]
    return " || ".join(f"({p})" if " && " in p else p for p in parts)


TRUE = BoolFn((), 1)
FALSE = BoolFn((), 0)


def _reduced(names: tuple[str, ...], table: int) -> BoolFn:
    """Drop every boolean the table does not depend on."""
    j = 0
    while j < len(names):
        size = 1 << len(names)
        independent = all(
            (table >> i & 1) == (table >> (i | 1 << j) & 1)
            for i in range(size) if not i >> j & 1
        )
        if independent:
            new = 0
            k = 0
            for i in range(size):
                if i >> j & 1:
                    continue
                new |= (table >> i & 1) << k
                k += 1
            table = new
            names = names[:j] + names[j + 1:]
        else:
            j += 1
    return BoolFn(names, table)


def of_conditions(conditions: Iterable[tuple[CondExpr | None, bool]]) -> BoolFn:
    """The disjunction of rule conditions: each (postfix expression or None, branch).
    An unconditional rule makes the function TRUE; no rule makes it FALSE."""
    conds: list[tuple[CondExpr, bool]] = []
    for cond, branch in conditions:
        if cond is None:
            return TRUE
        conds.append((cond, branch))
    if not conds:
        return FALSE
    names = tuple(sorted({n for c, _ in conds for n in cond_booleans(c)}))
    table = 0
    for i, values in enumerate(_assignments(names)):
        if any(eval_cond(c, values) == b for c, b in conds):
            table |= 1 << i
    return _reduced(names, table)


def _assignments(names: tuple[str, ...]) -> Iterable[dict[str, bool]]:
    for i in range(1 << len(names)):
        yield {n: bool(i >> j & 1) for j, n in enumerate(names)}


@functools.lru_cache(maxsize=65536)
def conj(a: BoolFn, b: BoolFn) -> BoolFn:
    if a.constant is not None:
        return b if a.constant else FALSE
    if b.constant is not None:
        return a if b.constant else FALSE
    names = tuple(sorted(set(a.names) | set(b.names)))
    table = 0
    for i, values in enumerate(_assignments(names)):
        if a.at(values) and b.at(values):
            table |= 1 << i
    return _reduced(names, table)


def conj_all(fns: Iterable[BoolFn]) -> BoolFn:
    out = TRUE
    for fn in fns:
        out = conj(out, fn)
    return out


@functools.lru_cache(maxsize=65536)
def implies(a: BoolFn, b: BoolFn) -> bool:
    """a <= b pointwise: every setting that allows a allows b."""
    names = tuple(sorted(set(a.names) | set(b.names)))
    return all(not a.at(v) or b.at(v) for v in _assignments(names))


def _cover(names: tuple[str, ...], table: int) -> list[tuple[tuple[str, bool], ...]]:
    """Prime implicants (Quine-McCluskey) and a greedy cover of the true rows."""
    n = len(names)
    ones = [i for i in range(1 << n) if table >> i & 1]
    # An implicant: (value bits, mask of the bits it fixes).
    full = (1 << n) - 1
    current = {(i, full) for i in ones}
    primes: set[tuple[int, int]] = set()
    while current:
        merged: set[tuple[int, int]] = set()
        used: set[tuple[int, int]] = set()
        for (v1, m1), (v2, m2) in itertools.combinations(sorted(current), 2):
            if m1 != m2:
                continue
            diff = (v1 ^ v2) & m1
            if diff and not diff & (diff - 1):
                merged.add((v1 & ~diff, m1 & ~diff))
                used.add((v1, m1))
                used.add((v2, m2))
        primes |= current - used
        current = merged
    remaining = set(ones)
    chosen: list[tuple[int, int]] = []

    def covers(imp: tuple[int, int], i: int) -> bool:
        return (i & imp[1]) == imp[0]

    # Fewest literals first, then the most rows covered; ties by value for determinism.
    while remaining:
        best = max(sorted(primes), key=lambda p: (sum(covers(p, i) for i in remaining),
                                                    -bin(p[1]).count("1")))
        chosen.append(best)
        remaining = {i for i in remaining if not covers(best, i)}
    out = []
    for v, m in sorted(chosen, key=lambda p: (bin(p[1]).count("1"), p)):
        out.append(tuple((names[j], bool(v >> j & 1)) for j in range(n) if m >> j & 1))
    return out
