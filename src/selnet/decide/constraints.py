"""Evaluate constrain/mlsconstrain expressions the way the kernel does (services.c
constraint_expr_eval), on the postfix form setools reports."""

from __future__ import annotations

from typing import Any

from selnet.policy.mls import Level, LevelParser
from selnet.policy.snapshot import Constraint, Context

_ATTRS = {"u1", "u2", "r1", "r2", "t1", "t2", "l1", "l2", "h1", "h2"}
_CMP = {"==", "!=", "dom", "domby", "incomp", "eq", "neq"}


# A compiled expression: ("or"|"and", a, b), ("not", a), or (comparison, left, right).
_Node = tuple[Any, ...]


def _tree(postfix: tuple[str | frozenset[str], ...]) -> _Node:
    stack: list[object] = []
    for tok in postfix:
        if isinstance(tok, frozenset) or tok in _ATTRS:
            stack.append(tok)
        elif tok in _CMP:
            right = stack.pop()
            left = stack.pop()
            stack.append((tok, str(left), right))
        elif tok == "not":
            stack.append(("not", stack.pop()))
        elif tok in ("and", "or"):
            b = stack.pop()
            a = stack.pop()
            stack.append((tok, a, b))
        else:  # a single name not wrapped in a set
            stack.append(frozenset((tok,)))
    top = stack[0]
    assert isinstance(top, tuple)
    return top


_FIELDS = {
    "u1": lambda s, t: s.user, "u2": lambda s, t: t.user,
    "r1": lambda s, t: s.role, "r2": lambda s, t: t.role,
    "t1": lambda s, t: s.type, "t2": lambda s, t: t.type,
}


def _used(con: Constraint) -> tuple[str, ...]:
    """The context fields the expression reads (l/h: the MLS ranges, read whole)."""
    used = {tok for tok in con.postfix if isinstance(tok, str) and tok in _ATTRS}
    out = sorted(f for f in used if f in _FIELDS)
    if used - set(_FIELDS):
        out.append("mls")
    return tuple(out)


class ConstraintEvaluator:
    """Memoised on the fields each expression reads: a whole-policy question asks the same
    constraint about thousands of pairs that differ only in fields it never looks at."""

    def __init__(self, levels: LevelParser | None) -> None:
        self._levels = levels
        self._used: dict[int, tuple[str, ...]] = {}
        self._memo: dict[tuple[object, ...], bool] = {}
        self._trees: dict[int, _Node] = {}

    def holds(self, con: Constraint, scon: Context, tcon: Context) -> bool:
        used = self._used.get(id(con))
        if used is None:
            used = self._used[id(con)] = _used(con)
        key = (id(con), *(
            (scon.mls, tcon.mls) if f == "mls" else _FIELDS[f](scon, tcon) for f in used))
        got = self._memo.get(key)
        if got is None:
            got = self._memo[key] = self._holds(con, scon, tcon)
        return got

    def _bounds(self, ctx: Context) -> tuple[Level, Level] | None:
        if self._levels is None or not ctx.mls:
            return None
        return self._levels.range(ctx.mls)

    def _holds(self, con: Constraint, scon: Context, tcon: Context) -> bool:
        tree = self._trees.get(id(con))
        if tree is None:
            tree = self._trees[id(con)] = _tree(con.postfix)
        sb = self._bounds(scon)
        tb = self._bounds(tcon)
        values: dict[str, object] = {
            "u1": scon.user,
            "u2": tcon.user,
            "r1": scon.role,
            "r2": tcon.role,
            "t1": scon.type,
            "t2": tcon.type,
        }
        if sb is not None and tb is not None:
            values.update({"l1": sb[0], "h1": sb[1], "l2": tb[0], "h2": tb[1]})
        return self._eval(tree, values)

    def _eval(self, node: _Node, values: dict[str, object]) -> bool:
        # and/or short-circuit as the kernel's evaluation gives the same value: a
        # comparison has no side effect.
        op = node[0]
        if op == "or":
            return self._eval(node[1], values) or self._eval(node[2], values)
        if op == "and":
            return self._eval(node[1], values) and self._eval(node[2], values)
        if op == "not":
            return not self._eval(node[1], values)
        return self._compare(node[1], node[2], op, values)

    @staticmethod
    def _compare(left: str, right: object, op: str, values: dict[str, object]) -> bool:
        if isinstance(right, frozenset):  # u1 == { names }
            member = values.get(left) in right
            return member if op in ("==", "eq") else not member
        a = values.get(left)
        b = values.get(str(right))
        if isinstance(a, Level) and isinstance(b, Level):
            if op in ("==", "eq"):
                return a == b
            if op in ("!=", "neq"):
                return a != b
            if op == "dom":
                return a.dominates(b)
            if op == "domby":
                return b.dominates(a)
            return not a.dominates(b) and not b.dominates(a)  # incomp
        if a is None or b is None:  # MLS parts missing (non-MLS policy): nothing to compare
            return True
        # users/types/roles: equality (role dominance is not used by network policy)
        return (a == b) if op in ("==", "eq", "dom", "domby") else (a != b)
