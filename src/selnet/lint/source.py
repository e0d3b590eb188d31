"""Network statements read textually from TE (.te), interface (.if) and CIL (.cil) sources.

Nothing is compiled: rules, interface calls and attribute statements are found with a
small tokenizer that keeps each statement's line.  Refpolicy permission-set macros
(``create_stream_socket_perms``) are expanded from support/obj_perm_sets.spt when it is
installed (or when the linted tree has one).
"""

from __future__ import annotations

import bisect
import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from selnet.errors import InputError

RULE_KINDS = ("allow", "dontaudit", "auditallow")
SUFFIXES = (".te", ".if", ".cil")


@dataclass(frozen=True, slots=True)
class Rule:
    """One av rule, sets already split into words (``~``/``-``/``*`` words dropped)."""

    file: str
    line: int
    kind: str  # allow, dontaudit, auditallow
    sources: tuple[str, ...]
    targets: tuple[str, ...]
    classes: tuple[str, ...]
    perms: tuple[str, ...]  # perm-set macros expanded


@dataclass(frozen=True, slots=True)
class Call:
    """A refpolicy interface call ``name(args)``."""

    file: str
    line: int
    name: str
    args: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AttrSet:
    """``typeattribute T a, b;`` / ``(typeattributeset a (T ...))``: attribute -> members."""

    file: str
    line: int
    attribute: str
    members: tuple[str, ...]


@dataclass(frozen=True)
class SourceFile:
    path: str
    rules: tuple[Rule, ...]
    calls: tuple[Call, ...]
    attrsets: tuple[AttrSet, ...]


# -- perm-set macros ---------------------------------------------------------------------

PERM_SETS_SPT = Path("/usr/share/selinux/devel/include/support/obj_perm_sets.spt")
_DEFINE = re.compile(r"define\(\s*`(\w+)'\s*,\s*`([^']*)'\s*\)")


def read_perm_sets(path: Path = PERM_SETS_SPT) -> dict[str, tuple[str, ...]]:
    """``define(`name', `{ a b other_perms }')`` -> name -> its words (unexpanded)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    return {m.group(1): tuple(_words(m.group(2))) for m in _DEFINE.finditer(text)}


def expand_perms(words: Iterable[str], sets: dict[str, tuple[str, ...]],
                 depth: int = 0) -> tuple[str, ...]:
    out: list[str] = []
    for w in words:
        if w in sets and depth < 20:
            out.extend(expand_perms(sets[w], sets, depth + 1))
        else:
            out.append(w)
    return tuple(dict.fromkeys(out))


def _words(text: str) -> Iterator[str]:
    for w in re.split(r"[\s{},]+", text):
        if w and not w.startswith(("~", "-")) and w != "*":
            yield w


# -- TE / IF ------------------------------------------------------------------------------

_SET = r"(\{[^{}]*\}|[^\s{};:()]+)"
_TE_RULE = re.compile(
    rf"\b(allow|dontaudit|auditallow)\s+{_SET}\s+{_SET}\s*:\s*{_SET}\s+{_SET}\s*;")
_TE_CALL = re.compile(r"\b([a-z][a-z0-9]*_\w+)\s*\(([^()]*)\)")
_TE_TYPEATTR = re.compile(r"\btypeattribute\s+([^\s;]+)\s+([^;]+);")
_TE_TYPE = re.compile(r"\btype\s+([^\s,;]+)\s*,\s*([^;]+);")
_NOT_CALLS = frozenset({"interface", "template", "define", "gen_require", "require",
                        "optional_policy", "tunable_policy", "ifdef", "ifndef", "ifelse",
                        "gen_tunable", "gen_bool", "policy_module", "refpolicywarn",
                        "gen_context", "gen_user", "dnl"})


def _strip_te(text: str) -> str:
    """Comments and m4 quotes become spaces: positions (and so lines) are kept."""
    out = re.sub(r"#[^\n]*", lambda m: " " * len(m.group(0)), text)
    return out.replace("`", " ").replace("'", " ")


class _Lines:
    """Line of an offset by bisection over the newline offsets."""

    def __init__(self, text: str) -> None:
        self._nl = [m.start() for m in re.finditer("\n", text)]

    def __call__(self, _text: str, pos: int) -> int:
        return bisect.bisect_left(self._nl, pos) + 1


def parse_te(path: str, text: str, sets: dict[str, tuple[str, ...]]) -> SourceFile:
    body = _strip_te(text)
    _line_of = _Lines(body)
    rules = tuple(
        Rule(path, _line_of(body, m.start()), m.group(1), tuple(_words(m.group(2))),
             tuple(_words(m.group(3))), tuple(_words(m.group(4))),
             expand_perms(_words(m.group(5)), sets))
        for m in _TE_RULE.finditer(body)
    )
    calls = tuple(
        Call(path, _line_of(body, m.start()), m.group(1),
             tuple(a.strip() for a in m.group(2).split(",")))
        for m in _TE_CALL.finditer(body) if m.group(1) not in _NOT_CALLS
    )
    attrs: list[AttrSet] = []
    for m in _TE_TYPEATTR.finditer(body):
        for a in _words(m.group(2)):
            attrs.append(AttrSet(path, _line_of(body, m.start()), a, (m.group(1),)))
    for m in _TE_TYPE.finditer(body):
        for a in _words(m.group(2)):
            if a != "alias":
                attrs.append(AttrSet(path, _line_of(body, m.start()), a, (m.group(1),)))
    return SourceFile(path, rules, calls, tuple(attrs))


# -- CIL ----------------------------------------------------------------------------------

_CIL_TOKEN = re.compile(r'\(|\)|"[^"]*"|;[^\n]*|[^\s()";]+|\n')

Sexp = str | list["Sexp"]


def _cil_tree(text: str) -> list[tuple[int, list[Sexp]]]:
    """Top-level and nested lists, each with the line of its opening parenthesis."""
    line = 1
    stack: list[list[Sexp]] = [[]]
    lines: dict[int, int] = {}
    for m in _CIL_TOKEN.finditer(text):
        tok = m.group(0)
        if tok == "\n":
            line += 1
        elif tok.startswith(";"):
            continue
        elif tok == "(":
            new: list[Sexp] = []
            lines[id(new)] = line
            stack[-1].append(new)
            stack.append(new)
        elif tok == ")":
            if len(stack) > 1:
                stack.pop()
        else:
            stack[-1].append(tok.strip('"'))
    out: list[tuple[int, list[Sexp]]] = []

    def walk(items: list[Sexp]) -> None:
        for it in items:
            if isinstance(it, list):
                out.append((lines.get(id(it), 0), it))
                walk(it)

    walk(stack[0])
    return out


def _atoms(x: Sexp) -> tuple[str, ...]:
    if isinstance(x, str):
        return (x,)
    if x and x[0] in ("and", "or", "not", "all", "xor"):  # expressions: not a plain set
        return tuple(a for a in x[1:] if isinstance(a, str)) if x[0] != "not" else ()
    return tuple(a for a in x if isinstance(a, str))


def parse_cil(path: str, text: str) -> SourceFile:
    rules: list[Rule] = []
    attrs: list[AttrSet] = []
    for line, node in _cil_tree(text):
        if not node or not isinstance(node[0], str):
            continue
        head = node[0]
        if head in RULE_KINDS and len(node) == 4 and isinstance(node[3], list):
            cp = node[3]
            if len(cp) == 2 and isinstance(cp[0], str):
                perms = tuple(p for p in _atoms(cp[1]) if p not in ("all",))
                rules.append(Rule(path, line, head, _atoms(node[1]), _atoms(node[2]),
                                  (cp[0],), perms))
        elif head == "typeattributeset" and len(node) == 3 and isinstance(node[1], str):
            attrs.append(AttrSet(path, line, node[1], _atoms(node[2])))
    return SourceFile(path, tuple(rules), (), tuple(attrs))


# -- files --------------------------------------------------------------------------------

def expand_paths(paths: Iterable[str]) -> list[Path]:
    """Files as given; a directory gives its .te/.if/.cil files, sorted."""
    out: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            out.extend(sorted(f for f in path.rglob("*") if f.suffix in SUFFIXES and f.is_file()))
        else:
            out.append(path)
    return out


def read_source(path: Path, sets: dict[str, tuple[str, ...]]) -> SourceFile:
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = 0  # missing or unreadable: the read below says why
    if mode and not stat.S_ISREG(mode):
        # A FIFO would block the read until a writer comes, a device might never end.
        raise InputError(f"cannot read {path}: not a regular file")
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if path.suffix == ".cil":
        return parse_cil(str(path), text)
    return parse_te(str(path), text, sets)
