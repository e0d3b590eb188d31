"""Conditional expressions (``booleanif``), kept in postfix as libsepol stores them.

One evaluator (libsepol ``cond_evaluate_expr``) and one formatter: :func:`infix` prints an
expression exactly as ``sesearch`` does (setools ``Conditional.__str__``), so a rule selnet
shows can be found with sesearch and pasted back.
"""

from __future__ import annotations

from collections.abc import Mapping

# Postfix tokens: boolean names and these operators (setools' precedences).
CondExpr = tuple[str, ...]
OPERATORS: dict[str, int] = {"!": 5, "==": 4, "!=": 4, "&&": 3, "^": 2, "||": 1}


def eval_cond(expr: CondExpr, bools: Mapping[str, bool]) -> bool:
    """Evaluate a postfix conditional expression (libsepol cond_evaluate_expr)."""
    stack: list[bool] = []
    for tok in expr:
        if tok == "!":
            stack.append(not stack.pop())
        elif tok in OPERATORS:
            b = stack.pop()
            a = stack.pop()
            if tok == "&&":
                stack.append(a and b)
            elif tok == "||":
                stack.append(a or b)
            elif tok in ("^", "!="):
                stack.append(a != b)
            else:
                stack.append(a == b)
        else:
            stack.append(bools[tok])
    return stack[0]


def cond_booleans(expr: CondExpr) -> list[str]:
    """The booleans of an expression, in order of first appearance."""
    seen: list[str] = []
    for tok in expr:
        if tok not in OPERATORS and tok not in seen:
            seen.append(tok)
    return seen


_Node = str | list["_Node"]


def _flatten(node: _Node, out: list[str]) -> None:
    if isinstance(node, str):
        out.append(node)
    else:
        for n in node:
            _flatten(n, out)


def infix(expr: CondExpr) -> str:
    """The expression as sesearch prints it: ``[ a && b ]`` shows ``a && b``.

    A transcription of setools' algorithm, quirks included: a binary operator prints
    its second operand first, and parentheses depend on the previous operator seen.
    """
    stack: list[_Node] = []
    prev = OPERATORS["!"]
    for tok in expr:
        prec = OPERATORS.get(tok)
        if prec is None:
            stack.append(tok)
        elif tok == "!":
            operand = stack.pop()
            stack.append([tok, "(", operand, ")"] if isinstance(operand, list) else [tok, operand])
            prev = prec
        else:
            first = stack.pop()
            second = stack.pop()
            stack.append([first, tok, second] if prev > prec else ["(", first, tok, second, ")"])
            prev = prec
    words: list[str] = []
    for node in stack:
        _flatten(node, words)
    return " ".join(words)
