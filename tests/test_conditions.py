"""One condition formatter, and it prints exactly what sesearch prints."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from selnet.policy.conditions import eval_cond, infix
from selnet.policy.loader import load_policy


@pytest.mark.parametrize(("postfix", "text"), [
    (("a",), "a"),
    (("a", "!"), "! a"),
    (("a", "b", "&&"), "b && a"),  # setools prints the second operand first
    (("a", "b", "||", "!"), "! ( b || a )"),
    (("a", "b", "&&", "c", "||"), "c || b && a"),
    # setools' parentheses follow the previous operator, not the tree (its own comment:
    # "they may end up being overused"); sesearch users read exactly this.
    (("a", "b", "||", "c", "&&"), "( c && b || a )"),
    (("a", "b", "c", "&&", "&&"), "( c && b && a )"),
    (("a", "!", "b", "==",), "b == ! a"),
])
def test_infix_like_setools(postfix: tuple[str, ...], text: str) -> None:
    assert infix(postfix) == text


def test_eval() -> None:
    expr = ("a", "b", "||", "c", "&&")
    assert eval_cond(expr, {"a": False, "b": True, "c": True})
    assert not eval_cond(expr, {"a": True, "b": True, "c": False})


@pytest.mark.refpolicy
def test_rules_print_as_sesearch_prints_them(refpolicy_standard: Path) -> None:
    if shutil.which("sesearch") is None:
        pytest.skip("sesearch (setools) is not installed")
    classes = "tcp_socket,udp_socket,node,capability"
    out = subprocess.run(["sesearch", "-A", "-c", classes, str(refpolicy_standard)],
                         capture_output=True, text=True, check=True).stdout
    theirs = {line.strip() for line in out.splitlines() if "]:" in line}
    pol = load_policy([str(refpolicy_standard)])
    ours = {r.sesearch() for r in pol.snap.rules
            if r.cond is not None and r.ruletype == "allow" and r.tclass in classes.split(",")}
    assert len(theirs) > 100
    # some conditions with two or more booleans are among them
    assert sum(1 for t in theirs if "&&" in t or "||" in t) > 10
    assert ours == theirs
