"""The m4 side of the interface index: reading refpolicy's ``*.if`` and ``*.spt`` files
and flattening each interface's body (see :mod:`selnet.fix.interfaces` for the subset of m4
understood).  Imported only to build the index: a warm run reads the cache and never
compiles these patterns or defines these classes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from selnet.fix.interfaces import InterfaceInfo, _Compact

_MAX_DEPTH = 40  # refpolicy nests calls ~10 deep; this only stops runaways

# Macros whose meaning we implement (or deliberately ignore) ourselves
# instead of expanding their .spt definition.
_BUILTINS = frozenset({
    "gen_require", "require", "optional_policy", "tunable_policy", "ifdef",
    "ifndef", "ifelse", "refpolicywarn", "refpolicyerr", "interface",
    "template", "define", "pushdef", "popdef", "undefine", "dnl", "errprint",
    "policy_module", "gen_tunable", "gen_bool", "gen_user", "gen_context",
    "gen_require_set", "declare_required_symbols", "dflt_or_overr",
    "policy_m4_comment", "shiftn", "decr", "incr", "regexp", "shift", "if",
})

_RULE_KINDS = frozenset({"allow", "dontaudit", "auditallow", "neverallow"})

# --------------------------------------------------------------------------
# m4 lexing helpers

_QUOTES = re.compile(r"[`']")
_ARG_SPECIAL = re.compile(r"[`'(),#]")
_TOKEN = re.compile(
    r"""
      (?P<ws>\s+)
    | (?P<comment>\#[^\n]*)
    | (?P<quote>`)
    | (?P<call>[A-Za-z_][A-Za-z0-9_]*)\(
    | (?P<word>[^\s{}:;,()`'\#]+)
    | (?P<punct>[{}:;,()'])
    """,
    re.X,
)
_PARAM = re.compile(r"\$(\d)")
_PARAM_WORD = re.compile(r"([-~]?)\$(\d)")
_ARG_WORDS = re.compile(r"[^\s{},]+")
_ATTR_DECL = re.compile(r"\battribute\s+([^;]*);")
_IF_DEF = re.compile(r"^(interface|template)\(\s*`([A-Za-z_]\w*)'\s*,", re.M)
_SPT_DEF = re.compile(r"^define\(\s*`([A-Za-z_]\w*)'\s*,", re.M)


def _skip_quoted(text: str, pos: int) -> int:
    """Index just past the apostrophe closing the backtick at ``pos``."""
    depth = 0
    for m in _QUOTES.finditer(text, pos):
        if m.group() == "`":
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                return m.end()
    return len(text)  # unterminated quote: m4 would swallow the rest too


def _unquote(arg: str) -> str:
    """m4 argument text: leading unquoted blanks dropped, one quote level removed."""
    arg = arg.lstrip()
    if "`" not in arg:
        return arg
    parts: list[str] = []
    depth = last = 0
    for m in _QUOTES.finditer(arg):
        if m.group() == "`":
            depth += 1
            if depth == 1:
                parts.append(arg[last:m.start()])
                last = m.end()
        elif depth:
            depth -= 1
            if depth == 0:
                parts.append(arg[last:m.start()])
                last = m.end()
    parts.append(arg[last:])
    return "".join(parts)


def _call_args(text: str, pos: int) -> tuple[list[str], int]:
    """Split the arguments of a call whose ``(`` ends just before ``pos``.

    Commas and parentheses only count outside quotes and comments, exactly as
    m4 collects arguments.  Returns the unquoted args and the index after ``)``.
    """
    raw: list[str] = []
    start = i = pos
    depth = 0
    while True:
        m = _ARG_SPECIAL.search(text, i)
        if m is None:
            raw.append(text[start:])
            return [_unquote(a) for a in raw], len(text)
        c, j = m.group(), m.start()
        i = j + 1
        if c == "`":
            i = _skip_quoted(text, j)
        elif c == "#":
            if j == 0 or text[j - 1] != "$":  # `$#' is an m4 argument count
                nl = text.find("\n", j)
                i = len(text) if nl < 0 else nl
        elif c == "(":
            depth += 1
        elif c == ")":
            if depth == 0:
                raw.append(text[start:j])
                return [_unquote(a) for a in raw], i
            depth -= 1
        elif c == "," and depth == 0:
            raw.append(text[start:j])
            start = i
        # a stray apostrophe outside quotes is plain text to m4


def _max_param(text: str) -> int:
    return max((int(d) for d in _PARAM.findall(text)), default=0)


# --------------------------------------------------------------------------
# Body evaluation


@dataclass(frozen=True, slots=True)
class _Rule:
    """A flattened statement; words may still hold symbolic ``$N``."""

    kind: str  # allow, dontaudit, auditallow, neverallow, typeattribute
    src: tuple[str, ...]
    tgt: tuple[str, ...]  # attributes for typeattribute
    cls: tuple[str, ...]
    perms: tuple[str, ...]
    cond: bool


@dataclass(frozen=True, slots=True)
class _Call:
    name: str
    args: tuple[str, ...]
    cond: bool


@dataclass(slots=True)
class _Macro:
    name: str
    module: str
    kind: str  # interface, template, define
    body: str
    doc_params: int | None = None  # required params per the ## docs
    items: list[_Rule | _Call] = field(default_factory=list)
    deprecated: bool = False
    parsed: bool = False


def _take_set(toks: list[str], i: int) -> tuple[list[str], int]:
    """One policy set at ``toks[i]``: a word, ``{ ... }`` or ``~``-complement."""
    neg = i < len(toks) and toks[i] == "~"
    if neg:
        i += 1
    if i >= len(toks):
        return [], i
    if toks[i] == "{":
        words: list[str] = []
        depth, i = 1, i + 1
        while i < len(toks):
            t = toks[i]
            i += 1
            if t == "{":  # a substituted `{ a b }' argument inside a set
                depth += 1
            elif t == "}":
                depth -= 1
                if depth == 0:
                    break
            elif t not in (",", "~"):
                words.append(t)
    else:
        words, i = [toks[i]], i + 1
    if neg:
        words = ["~" + w for w in words]
    return words, i


def _statement(toks: list[str], cond: bool) -> _Rule | None:
    kind = toks[0]
    if kind in _RULE_KINDS:
        src, i = _take_set(toks, 1)
        tgt, i = _take_set(toks, i)
        if i >= len(toks) or toks[i] != ":":
            return None
        cls, i = _take_set(toks, i + 1)
        perms, _ = _take_set(toks, i)
        if not (src and tgt and cls and perms):
            return None
        return _Rule(kind, tuple(src), tuple(tgt), tuple(cls), tuple(perms), cond)
    if kind == "typeattribute":
        src, i = _take_set(toks, 1)
        attrs = tuple(t for t in toks[i:] if t not in (",", "{", "}"))
        if src and attrs:
            return _Rule(kind, tuple(src), attrs, (), (), cond)
    return None  # type, role, type_transition, ...: not grants of $1


class _Parser:
    """Parses macro bodies and flattens them symbolically."""

    def __init__(self, macros: dict[str, _Macro]) -> None:
        self.macros = macros
        self.attributes: set[str] = set()
        self._flat: dict[str, tuple[_Rule, ...]] = {}
        self._active: set[str] = set()
        self._sets: dict[str, tuple[str, ...]] = {}

    # -- parsing ----------------------------------------------------------

    def items(self, macro: _Macro) -> list[_Rule | _Call]:
        if not macro.parsed:
            macro.parsed = True
            self._parse(macro.body, False, macro)
        return macro.items

    def _parse(self, text: str, cond: bool, macro: _Macro) -> None:
        """Append ``text``'s rules and calls to ``macro.items``."""
        pending: list[str] = []
        blocks: list[bool] = []  # raw `if/else { }' blocks: conditional
        in_cond = cond
        pos, n = 0, len(text)
        while pos < n:
            m = _TOKEN.match(text, pos)
            if m is None:  # cannot happen with the catch-all alternatives
                pos += 1
                continue
            pos = m.end()
            kind = m.lastgroup
            if kind in ("ws", "comment"):
                continue
            if kind == "quote":
                # Quoted text at statement level: m4 emits it unexpanded;
                # refpolicy only uses it around plain policy text.
                end = _skip_quoted(text, m.start())
                self._parse(text[m.start() + 1:end - 1], in_cond, macro)
                pos = end
                continue
            if kind == "call":
                name = m.group("call")
                args, pos = _call_args(text, pos)
                if name == "if":  # `if(bool) {' -- block follows
                    pending.clear()
                    continue
                if pending:  # a macro inside a statement: keep it opaque
                    pending.append(name)
                    continue
                self._call(name, args, in_cond, macro)
                continue
            tok = m.group()
            if not pending:
                if tok == "{":
                    blocks.append(in_cond)
                    in_cond = True
                    continue
                if tok == "}":
                    in_cond = blocks.pop() if blocks else cond
                    continue
                if tok == "else":
                    continue
                if tok == "if":  # `if (bool) {' with a blank before (
                    pos = self._skip_parens(text, pos)
                    continue
            if tok == ";":
                if pending:
                    rule = _statement(pending, in_cond)
                    if rule is not None:
                        macro.items.append(rule)
                    pending = []
                continue
            pending.append(tok)

    @staticmethod
    def _skip_parens(text: str, pos: int) -> int:
        start = text.find("(", pos)
        if start < 0:
            return pos
        depth = 0
        for i in range(start, len(text)):
            if text[i] == "(":
                depth += 1
            elif text[i] == ")":
                depth -= 1
                if depth == 0:
                    return i + 1
        return len(text)

    def _call(self, name: str, args: list[str], cond: bool, macro: _Macro) -> None:
        if name in ("gen_require", "require"):
            for decl in _ATTR_DECL.findall(args[0] if args else ""):
                self.attributes.update(w for w in re.split(r"[\s,]+", decl) if w)
        elif name == "optional_policy":
            for body in args[:2]:
                self._parse(body, True, macro)
        elif name in ("tunable_policy", "ifdef", "ifndef"):
            for body in args[1:3]:  # (condition, then, else)
                self._parse(body, True, macro)
        elif name == "ifelse":
            # ifelse(a,b,then, c,d,then2, ..., else): bodies at 2,5,.. and last
            bodies = args[2::3]
            if len(args) > 3 and len(args) % 3 == 1:
                bodies.append(args[-1])
            for body in bodies:
                self._parse(body, True, macro)
        elif name in ("refpolicywarn", "refpolicyerr"):
            macro.deprecated = True
        elif name in _BUILTINS or name not in self.macros:
            pass  # m4 plumbing, or text m4 would leave alone
        else:
            macro.items.append(_Call(name, tuple(args), cond))

    # -- flattening -------------------------------------------------------

    def flatten(self, name: str) -> tuple[_Rule, ...]:
        """All rules ``name`` expands to, with its own params left as ``$N``."""
        return self._flatten(name, 0)[0]

    def _flatten(self, name: str, depth: int) -> tuple[tuple[_Rule, ...], frozenset[str]]:
        """Rules of ``name`` plus the names of active macros whose recursion
        was cut below it; a result depending on a cut is incomplete for
        anyone but that macro, so it is not memoised."""
        done = self._flat.get(name)
        if done is not None:
            return done, frozenset()
        macro = self.macros.get(name)
        if macro is None:
            return (), frozenset()  # m4 leaves unknown names alone
        if name in self._active or depth > _MAX_DEPTH:
            return (), frozenset({name if depth <= _MAX_DEPTH else ""})
        self._active.add(name)
        out: dict[_Rule, None] = {}
        cuts: set[str] = set()
        for item in self.items(macro):
            if isinstance(item, _Rule):
                out[item] = None
                continue
            words = [_ARG_WORDS.findall(a) for a in item.args]
            rules, cut = self._flatten(item.name, depth + 1)
            cuts |= cut
            for rule in rules:
                out[_subst(rule, words, item.name, item.cond)] = None
        self._active.discard(name)
        cuts.discard(name)
        result = tuple(out)
        if not cuts:
            self._flat[name] = result
        return result, frozenset(cuts)

    def expand_set(self, words: Iterable[str], depth: int = 0) -> tuple[str, ...]:
        """Expand class/permission set macros (obj_perm_sets.spt) to words."""
        out: list[str] = []
        for w in words:
            macro = self.macros.get(w)
            if macro is None or macro.kind != "define" or depth > _MAX_DEPTH:
                out.append(w)
                continue
            got = self._sets.get(w)
            if got is None:
                got = self.expand_set(_ARG_WORDS.findall(_unquote(macro.body)), depth + 1)
                self._sets[w] = got
            out.extend(got)
        return tuple(dict.fromkeys(out))


def _subst_words(words: tuple[str, ...], args: list[list[str]], callee: str) -> tuple[str, ...]:
    out: list[str] = []
    for w in words:
        if "$" not in w:
            out.append(w)
            continue
        m = _PARAM_WORD.fullmatch(w)
        if m is not None:
            k = int(m.group(2))
            if k == 0:
                out.append(m.group(1) + callee)
            elif k <= len(args):  # a missing argument expands to nothing
                out.extend(m.group(1) + a for a in args[k - 1])
            continue

        def repl(mm: re.Match[str]) -> str:
            k = int(mm.group(1))
            if k == 0:
                return callee
            return args[k - 1][0] if k <= len(args) and args[k - 1] else ""

        out.append(_PARAM.sub(repl, w))  # `$1_t' style concatenation
    return tuple(out)


def _subst(rule: _Rule, args: list[list[str]], callee: str, cond: bool) -> _Rule:
    return _Rule(
        rule.kind,
        _subst_words(rule.src, args, callee),
        _subst_words(rule.tgt, args, callee),
        _subst_words(rule.cls, args, callee),
        _subst_words(rule.perms, args, callee),
        rule.cond or cond,
    )


# --------------------------------------------------------------------------
# Reading the include tree


def _doc_required_params(text: str, start: int) -> int | None:
    """Required ``<param>`` count from the ``##`` block right above ``start``."""
    lines = text[max(0, start - 6000):start].split("\n")
    lines.pop()  # the (empty) tail of the line holding interface(
    doc: list[str] = []
    for line in reversed(lines):
        if not line.startswith("#"):
            break
        doc.append(line)
    params = [d for d in doc if "<param " in d]
    if not params:
        return None
    return sum(1 for d in params if 'optional="true"' not in d)


def _read_macros(files: list[Path]) -> dict[str, _Macro]:
    macros: dict[str, _Macro] = {}
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        is_if = path.suffix == ".if"
        pattern = _IF_DEF if is_if else _SPT_DEF
        end = 0
        for m in pattern.finditer(text):
            if m.start() < end:  # inside the previous definition's body
                continue
            args, end = _call_args(text, m.start() + m.group().index("(") + 1)
            if len(args) < 2:
                continue
            if is_if:
                name, kind = m.group(2), m.group(1)
                doc = _doc_required_params(text, m.start())
            else:
                name, kind, doc = m.group(1), "define", None
            if name in _BUILTINS or name in macros:
                continue  # first definition wins, as refpolicy forbids duplicates
            macros[name] = _Macro(name, path.stem, kind, args[1], doc)
    return macros


def _info(parser: _Parser, macro: _Macro) -> InterfaceInfo:
    """Summarise one interface's flattened rules for ``$1``."""
    rules: dict[_Compact, None] = {}
    cond_rules: dict[_Compact, None] = {}
    joined: set[str] = set()
    cond_joined: set[str] = set()
    counts = {"dontaudit": 0, "auditallow": 0}
    broad = more_args = False
    attributes = parser.attributes
    for rule in parser.flatten(macro.name):
        if "$1" not in rule.src:
            continue
        if rule.kind == "typeattribute":
            (cond_joined if rule.cond else joined).update(rule.tgt)
            continue
        if rule.kind in counts:
            counts[rule.kind] += 1
            continue
        if rule.kind != "allow":
            continue
        # `allow $1 $1:...' is `self'; `-type' exclusions only narrow a set
        tgts = tuple(dict.fromkeys(
            "self" if t == "$1" else t for t in rule.tgt if not t.startswith("-")
        ))
        compact = (tgts, parser.expand_set(rule.cls), parser.expand_set(rule.perms))
        if not all(compact):
            continue
        if rule.cond:
            cond_rules[compact] = None
            continue
        rules[compact] = None
        words = (*compact[0], *compact[1], *compact[2])
        if any(_PARAM.search(w) and not w.startswith("$1") for w in words):
            more_args = True
        if any(t in attributes or "*" in t or t.startswith("~") for t in tgts):
            broad = True
    params = _max_param(macro.body)
    # docs know which params are optional; the body knows which are used
    doc = macro.doc_params
    return InterfaceInfo(
        name=macro.name,
        module=macro.module,
        kind=macro.kind,
        params=params,
        required_params=params if doc is None else min(doc, params),
        deprecated=macro.deprecated,
        broad=broad or bool(joined),
        has_conditionals=bool(cond_rules or cond_joined),
        needs_more_args=more_args,
        joined_attributes=frozenset(joined),
        conditional_attributes=frozenset(cond_joined),
        rules=tuple(rules),
        conditional_rules=tuple(cond_rules),
        n_dontaudit=counts["dontaudit"],
        n_auditallow=counts["auditallow"],
    )
