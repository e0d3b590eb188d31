"""Reference-policy interfaces that grant a needed permission.

For a denial fix selnet proposes an interface call such as
``corenet_tcp_connect_postgresql_port(httpd_t)`` rather than a raw ``allow``
rule.  The candidates come from parsing the installed interface definitions
(selinux-policy-dev, ``/usr/share/selinux/devel/include``) -- never from a
hard-coded table, so the answer follows the policy actually installed.

The parser is a small, symbolic subset of m4 tailored to refpolicy:

* ``interface(`name',`body')`` / ``template(...)`` in ``*/*.if`` and
  ``define(`name',`body')`` in ``support/*.spt`` (patterns, perm sets);
* m4 quoting (nested backtick/apostrophe), ``#`` comments, ``##`` docs;
* ``allow``/``dontaudit``/``auditallow``/``typeattribute`` statements with
  ``{ }`` sets, ``~`` complements, ``-type`` exclusions and ``self``;
* calls to other interfaces/patterns, expanded transitively with ``$N``
  substitution (depth bounded, cycles cut);
* ``gen_require``, ``optional_policy``, ``tunable_policy``, ``ifdef``,
  ``ifndef``, ``ifelse`` and raw ``if (bool) { } else { }`` -- anything under
  a condition is recorded as conditional and never used for exact matching;
* ``refpolicywarn`` marks an interface deprecated (never proposed).

Each interface is evaluated once with symbolic parameters, and a call's
effect is the callee's flattened rules with ``$N`` replaced by the call's
arguments -- equivalent to m4's textual expansion for the refpolicy idioms
and far faster.  The result is cached on disk (marshal, checksummed) keyed by
the paths, mtimes and sizes of the input files.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from selnet.policy.source import caches_allowed, private_cache_dir

__all__ = [
    "DEFAULT_INCLUDE_DIR",
    "InterfaceIndex",
    "InterfaceInfo",
    "InterfaceMatch",
    "InterfacePlan",
    "Triple",
]

DEFAULT_INCLUDE_DIR = Path("/usr/share/selinux/devel/include")

#: (target, class, permission); a target equal to the source is ``"self"``.
Triple = tuple[str, str, str]

# One allow rule of $1, compact: (targets, classes, permissions).
_Compact = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]

# Bump whenever the parser or the cache layout changes (part of the key).
_FORMAT = 5
_MAGIC = b"selnet-ifidx\n"
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


def _policy_files(root: Path) -> list[Path]:
    return [root / rel for rel, _ in _policy_entries(root)]


def _policy_entries(root: Path) -> list[tuple[str, os.stat_result]]:
    """Each ``*/*.if`` and ``support/*.spt`` under ``root`` (path relative to it, stat), in
    the order of sorted paths: listed with scandir, because pathlib's glob and sort cost
    more than the 430 stats of the cache key on every fix."""
    def names(sub: str, suffix: str) -> list[str]:
        try:
            with os.scandir(root / sub) as it:
                return sorted(e.name for e in it if e.name.endswith(suffix) and e.is_file())
        except OSError:
            return []

    try:
        with os.scandir(root) as it:
            dirs = sorted(e.name for e in it if e.is_dir())
    except OSError:
        return []
    rels = [f"{d}/{n}" for d in dirs for n in names(d, ".if")]
    rels += [f"support/{n}" for n in names("support", ".spt")]
    out = []
    for rel in rels:
        try:
            out.append((rel, os.stat(root / rel)))
        except OSError:
            continue  # removed while listed
    return out


# --------------------------------------------------------------------------
# Public data


@dataclass(frozen=True)
class InterfaceInfo:
    """What one interface grants to its first (domain) parameter."""

    name: str
    module: str
    kind: str  # "interface" or "template"
    params: int  # highest $N used in the body
    required_params: int  # from the ## <param> docs when present
    deprecated: bool
    broad: bool  # joins $1 to attributes, or grants on attributes/wildcards
    has_conditionals: bool
    needs_more_args: bool  # unconditional $1 grants use $2 or later
    joined_attributes: frozenset[str]  # unconditional `typeattribute $1 x'
    conditional_attributes: frozenset[str]
    rules: tuple[_Compact, ...]  # unconditional allow rules of $1
    conditional_rules: tuple[_Compact, ...]
    n_dontaudit: int = 0
    n_auditallow: int = 0

    @cached_property
    def grants(self) -> frozenset[Triple]:
        """Unconditional (target, class, perm) allowed to ``$1``."""
        return _explode(self.rules)

    @cached_property
    def conditional_grants(self) -> frozenset[Triple]:
        """Grants only under ifdef/optional_policy/tunable/if, minus ``grants``."""
        return _explode(self.conditional_rules) - self.grants

    @property
    def one_arg(self) -> bool:
        """Usable as ``name(domain)``."""
        return self.required_params <= 1 and not self.needs_more_args

    def call(self, domain: str) -> str:
        return f"{self.name}({domain})"


def _explode(rules: Iterable[_Compact]) -> frozenset[Triple]:
    return frozenset((t, c, p) for tgts, clss, perms in rules
                     for t in tgts for c in clss for p in perms)


@dataclass(frozen=True)
class InterfaceMatch:
    """An interface that grants everything asked for."""

    name: str
    module: str
    grants: frozenset[Triple]
    extra: frozenset[Triple]  # grants beyond the needed ones
    exact: bool  # needed targets matched by name, not through an attribute
    via: tuple[str, ...] = ()  # attributes through which targets matched
    broad: bool = False
    joined_attributes: frozenset[str] = frozenset()
    conditional_grants: frozenset[Triple] = frozenset()

    def call(self, domain: str) -> str:
        return f"{self.name}({domain})"


@dataclass(frozen=True)
class InterfacePlan:
    """Interfaces covering several needed triples, and what none covers."""

    matches: tuple[InterfaceMatch, ...]
    uncovered: frozenset[Triple]


def _rank(
    m: InterfaceMatch, attr_order: Mapping[str, int]
) -> tuple[bool, bool, int, bool, int, int, str]:
    return (
        bool(m.joined_attributes),  # grants unknowable from the .if alone
        not m.exact,
        len(m.extra) + len(m.conditional_grants),
        m.broad,
        # callers list a target's attributes narrowest first
        max((attr_order.get(a, len(attr_order)) for a in m.via), default=0),
        len(m.name),
        m.name,
    )


# --------------------------------------------------------------------------
# The index

# A cache row holds only str/int so marshal loads ~9000 of them in a few ms;
# rules are encoded as "targets|classes|perms" lines of space-separated
# words and decoded only for interfaces actually looked at.
# (name, module, kind, params, required_params, flags, joined, cond_joined,
#  rules, cond_rules, n_dontaudit, n_auditallow)
_Row = tuple[str, str, str, int, int, int, str, str, str, str, int, int]
_DEPRECATED, _BROAD, _CONDITIONAL, _MORE_ARGS = 1, 2, 4, 8


def _encode(rules: Iterable[_Compact]) -> str:
    return "\n".join("|".join(" ".join(ws) for ws in rule) for rule in rules)


def _decode(text: str) -> tuple[_Compact, ...]:
    out: list[_Compact] = []
    for line in text.split("\n") if text else ():
        t, c, p = line.split("|")
        out.append((tuple(t.split(" ")), tuple(c.split(" ")), tuple(p.split(" "))))
    return tuple(out)


def _to_row(i: InterfaceInfo) -> _Row:
    flags = (
        (_DEPRECATED if i.deprecated else 0) | (_BROAD if i.broad else 0)
        | (_CONDITIONAL if i.has_conditionals else 0)
        | (_MORE_ARGS if i.needs_more_args else 0)
    )
    return (
        i.name, i.module, i.kind, i.params, i.required_params, flags,
        " ".join(sorted(i.joined_attributes)), " ".join(sorted(i.conditional_attributes)),
        _encode(i.rules), _encode(i.conditional_rules), i.n_dontaudit, i.n_auditallow,
    )


def _from_row(r: _Row) -> InterfaceInfo:
    return InterfaceInfo(
        name=r[0], module=r[1], kind=r[2], params=r[3], required_params=r[4],
        deprecated=bool(r[5] & _DEPRECATED), broad=bool(r[5] & _BROAD),
        has_conditionals=bool(r[5] & _CONDITIONAL), needs_more_args=bool(r[5] & _MORE_ARGS),
        joined_attributes=frozenset(r[6].split()), conditional_attributes=frozenset(r[7].split()),
        rules=_decode(r[8]), conditional_rules=_decode(r[9]),
        n_dontaudit=r[10], n_auditallow=r[11],
    )


def _pair_index(rows: Iterable[_Row]) -> dict[str, tuple[int, ...]]:
    """"target class" -> rows with such an unconditional grant (proposable only)."""
    pairs: dict[str, list[int]] = {}
    for n, r in enumerate(rows):
        if r[5] & (_DEPRECATED | _MORE_ARGS) or r[4] > 1:
            continue  # never proposed, so never looked up
        for tgts, clss, _ in _decode(r[8]):
            for t in tgts:
                for c in clss:
                    ids = pairs.setdefault(f"{t} {c}", [])
                    if not ids or ids[-1] != n:
                        ids.append(n)
    return {k: tuple(v) for k, v in pairs.items()}


# (format, attributes, interface names, each row marshalled on its own, pairs): a warm
# load decodes only the rows of the interfaces a fix looks at.
_CacheData = tuple[int, tuple[str, ...], tuple[str, ...], tuple[bytes, ...],
                   dict[str, tuple[int, ...]]]


class InterfaceIndex:
    """All interfaces of an include tree, searchable by what they grant."""

    def __init__(
        self,
        rows: Iterable[_Row],
        attributes: Iterable[str],
        pairs: dict[str, tuple[int, ...]] | None = None,
    ) -> None:
        built = list(rows)
        # A row, or its marshal bytes from the cache until first read (see _row).
        self._rows: list[_Row | bytes] = list(built)
        self._infos: list[InterfaceInfo | None] = [None] * len(self._rows)
        self._by_name = {r[0]: n for n, r in enumerate(built)}
        self.attributes = frozenset(attributes)
        self._pairs = _pair_index(built) if pairs is None else pairs

    # -- construction -----------------------------------------------------

    @classmethod
    def load(
        cls, include_dir: Path | None = None, *, cache_dir: Path | None = None
    ) -> InterfaceIndex | None:
        """Index of ``include_dir``; None when selinux-policy-dev is absent.

        Uses a disk cache (``cache_dir``, default ``$XDG_CACHE_HOME/selnet``)
        keyed by the input files' paths, mtimes and sizes; an unreadable or
        corrupt cache is rebuilt silently.
        """
        root = include_dir if include_dir is not None else DEFAULT_INCLUDE_DIR
        if not root.is_dir():
            return None
        entries = _policy_entries(root)
        if not any(rel.endswith(".if") for rel, _ in entries):
            return None
        files = [root / rel for rel, _ in entries]
        if cache_dir is None and not caches_allowed():
            return cls.build(root, files)  # --no-cache: nothing read or written
        # selnet's own directory only when it is the user's and nobody else can write it
        cdir = private_cache_dir("") if cache_dir is None else cache_dir
        if cdir is None:
            return cls.build(root, files)
        key = _cache_key(root, entries)
        path = cdir / f"interfaces-{key}.bin"
        data = _read_cache(path)
        if data is not None:
            try:
                return cls._from_data(data)
            except (TypeError, ValueError, IndexError, KeyError, AttributeError):
                pass  # well-formed but foreign payload: rebuild
        index = cls.build(root, files)
        _write_cache(cdir, path, index._to_data())
        return index

    @classmethod
    def build(cls, include_dir: Path, files: list[Path] | None = None) -> InterfaceIndex:
        """Parse ``include_dir`` from scratch (no cache)."""
        files = _policy_files(include_dir) if files is None else files
        macros = _read_macros(files)
        parser = _Parser(macros)
        for macro in macros.values():  # learn every attribute before judging breadth
            parser.items(macro)
        infos = [_info(parser, m) for m in macros.values() if m.kind != "define"]
        index = cls((_to_row(i) for i in infos), parser.attributes)
        index._infos = list(infos)  # already materialised
        return index

    def _to_data(self) -> _CacheData:
        rows = [self._row(n) for n in range(len(self._rows))]
        return (_FORMAT, tuple(sorted(self.attributes)), tuple(r[0] for r in rows),
                tuple(marshal.dumps(r, 4) for r in rows), self._pairs)

    def _row(self, n: int) -> _Row:
        r = self._rows[n]
        if isinstance(r, bytes):  # from the verified cache file
            r = self._rows[n] = marshal.loads(r)
            if not isinstance(r, tuple) or len(r) != 12:
                raise ValueError("cache format")
        return r

    @classmethod
    def _from_data(cls, data: object) -> InterfaceIndex:
        if not isinstance(data, tuple) or len(data) != 5 or data[0] != _FORMAT:
            raise ValueError("cache format")
        _, attrs, names, blobs, pairs = data
        if (not isinstance(names, tuple) or not isinstance(blobs, tuple)
                or len(names) != len(blobs) or not isinstance(pairs, dict)):
            raise ValueError("cache format")
        index = cls((), attrs, pairs)
        index._rows = list(blobs)
        index._infos = [None] * len(blobs)
        index._by_name = {name: n for n, name in enumerate(names)}
        return index

    # -- queries ----------------------------------------------------------

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[InterfaceInfo]:
        return (self._info(n) for n in range(len(self._rows)))

    def get(self, name: str) -> InterfaceInfo | None:
        n = self._by_name.get(name)
        return None if n is None else self._info(n)

    def _info(self, n: int) -> InterfaceInfo:
        info = self._infos[n]
        if info is None:
            info = self._infos[n] = _from_row(self._row(n))
        return info

    def find(
        self,
        target: str,
        tclass: str,
        perms: Iterable[str],
        *,
        target_attrs: Iterable[str] = (),
    ) -> list[InterfaceMatch]:
        """One-argument interfaces granting ``target:tclass perms``, best first.

        ``target`` is ``"self"`` when the denial's source and target types
        are the same; ``target_attrs`` are the attributes the target type
        has, narrowest first, so ``corenet_tcp_connect_all_ports`` (on
        ``port_type``) can match, ranked after interfaces naming the target.
        """
        needed = [(target, tclass, p) for p in dict.fromkeys(perms)]
        if not needed:
            return []
        return self._find(needed, {target: tuple(target_attrs)})

    def find_for_rules(
        self,
        needed: Iterable[Triple],
        *,
        target_attrs: Mapping[str, Iterable[str]] | None = None,
    ) -> InterfacePlan:
        """Cover several triples: one interface for all if possible, else
        greedily one per (target, class) group, then one per triple."""
        want = list(dict.fromkeys(needed))
        attrs = {t: tuple(a) for t, a in (target_attrs or {}).items()}
        if not want:
            return InterfacePlan((), frozenset())
        best = self._find(want, attrs)
        if best:
            return InterfacePlan((best[0],), frozenset())
        chosen: list[InterfaceMatch] = []
        uncovered: set[Triple] = set()
        groups: dict[tuple[str, str], list[Triple]] = {}
        for t in want:
            groups.setdefault((t[0], t[1]), []).append(t)
        for group in groups.values():
            rest = [t for t in group if not _covered(t, chosen, attrs)]
            found = self._find(rest, attrs) if rest else []
            if found:
                chosen.append(found[0])
                continue
            for t in rest:  # no single interface for the group: per triple
                if _covered(t, chosen, attrs):
                    continue
                single = self._find([t], attrs)
                if single:
                    chosen.append(single[0])
                else:
                    uncovered.add(t)
        return InterfacePlan(tuple(chosen), frozenset(uncovered))

    def _find(
        self, needed: list[Triple], attrs: Mapping[str, tuple[str, ...]]
    ) -> list[InterfaceMatch]:
        # Candidates must grant something on every needed (target, class).
        cand: set[int] | None = None
        for tgt, tclass in dict.fromkeys((t, c) for t, c, _ in needed):
            ids: set[int] = set()
            for name in (tgt, *attrs.get(tgt, ())):
                ids.update(self._pairs.get(f"{name} {tclass}", ()))
            cand = ids if cand is None else cand & ids
            if not cand:
                return []
        found = (_match(self._info(n), needed, attrs) for n in sorted(cand or ()))
        matches = [m for m in found if m is not None]
        # typeattribute grants whatever the attribute has: last resort only
        plain = [m for m in matches if not m.joined_attributes]
        matches = plain or matches
        order: dict[str, int] = {}
        for names in attrs.values():
            for pos, a in enumerate(names):
                order.setdefault(a, pos)
        matches.sort(key=lambda m: _rank(m, order))
        return matches


def _covered(t: Triple, chosen: list[InterfaceMatch], attrs: Mapping[str, tuple[str, ...]]) -> bool:
    names = (t[0], *attrs.get(t[0], ()))
    return any((n, t[1], t[2]) in m.grants for m in chosen for n in names)


def _match(
    info: InterfaceInfo, needed: list[Triple], attrs: Mapping[str, tuple[str, ...]]
) -> InterfaceMatch | None:
    """``info`` as a match if it grants every needed triple unconditionally."""
    if info.deprecated or not info.one_arg:
        return None
    grants = info.grants
    used: set[Triple] = set()
    via: dict[str, None] = {}
    for tgt, tclass, perm in needed:
        if (tgt, tclass, perm) in grants:
            used.add((tgt, tclass, perm))
            continue
        attr = next((a for a in attrs.get(tgt, ()) if (a, tclass, perm) in grants), None)
        if attr is None:
            return None
        used.add((attr, tclass, perm))
        via[attr] = None
    return InterfaceMatch(
        info.name, info.module, grants, grants - used, not via, tuple(via), info.broad,
        info.joined_attributes, info.conditional_grants,
    )


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


# --------------------------------------------------------------------------
# Disk cache


def _cache_key(root: Path, entries: list[tuple[str, os.stat_result]]) -> str:
    h = hashlib.sha256(f"{_FORMAT}\n{sys.version_info[:2]}\n{root.resolve()}\n".encode())
    for rel, st in entries:
        h.update(f"{rel}\0{st.st_mtime_ns}\0{st.st_size}\n".encode())
    return h.hexdigest()[:24]


def _read_cache(path: Path) -> object | None:
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    head = len(_MAGIC) + 32
    if len(blob) < head or not blob.startswith(_MAGIC):
        return None
    payload = blob[head:]
    # The checksum catches truncation/corruption before marshal sees it.
    if hashlib.sha256(payload).digest() != blob[len(_MAGIC):head]:
        return None
    try:
        data: object = marshal.loads(payload)
    except (EOFError, ValueError, TypeError):
        return None
    return data


def _write_cache(cdir: Path, path: Path, data: _CacheData) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        payload = marshal.dumps(data, 4)
        cdir.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(_MAGIC + hashlib.sha256(payload).digest() + payload)
        os.replace(tmp, path)  # atomic: readers never see a partial file
        for old in cdir.glob("interfaces-*.bin"):
            if old != path:
                old.unlink(missing_ok=True)
    except (OSError, ValueError):
        tmp.unlink(missing_ok=True)  # a read-only home only costs a rebuild


