"""Evaluate constrain/mlsconstrain expressions the way the kernel does (services.c
constraint_expr_eval), on the postfix form setools reports."""

from __future__ import annotations

from selnet.policy.mls import Level, LevelParser
from selnet.policy.snapshot import Constraint, Context

_ATTRS = {"u1", "u2", "r1", "r2", "t1", "t2", "l1", "l2", "h1", "h2"}
_CMP = {"==", "!=", "dom", "domby", "incomp", "eq", "neq"}


class ConstraintEvaluator:
    def __init__(self, levels: LevelParser | None) -> None:
        self._levels = levels

    def _bounds(self, ctx: Context) -> tuple[Level, Level] | None:
        if self._levels is None or not ctx.mls:
            return None
        return self._levels.range(ctx.mls)

    def holds(self, con: Constraint, scon: Context, tcon: Context) -> bool:
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
        stack: list[object] = []
        for tok in con.postfix:
            if isinstance(tok, frozenset) or tok in _ATTRS:
                stack.append(tok)
            elif tok in _CMP:
                right = stack.pop()
                left = stack.pop()
                stack.append(self._compare(str(left), right, tok, values))
            elif tok == "not":
                stack.append(not stack.pop())
            elif tok in ("and", "or"):
                b = bool(stack.pop())
                a = bool(stack.pop())
                stack.append((a and b) if tok == "and" else (a or b))
            else:  # a single name not wrapped in a set
                stack.append(frozenset((tok,)))
        return bool(stack[0])

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
