"""The network-relevant content of a CIL module, read into an :class:`Overlay`.

:func:`read_cil` (``Overlay.from_cil``) reads a CIL text against a loaded base
policy and returns the overlay plus every statement it could NOT apply, each
with the reason and whether it can matter for networking.  No statement is
dropped silently: a statement is either turned into changes, or used by the
reader itself (a definition: ``classpermission``, ``context``, ``ipaddr``,
``level``, ``levelrange``, ``typealias``, ``tunable``; a ``cil_gen_require``
requirement, checked), or listed as unapplied.

Applied: ``type``, ``typeattribute``, ``typeattributeset`` (names; attributes
as members), ``typealias``/``typealiasactual`` (within the module), ``boolean``,
``booleanif`` (and/or/not/xor/eq/neq) with allow/auditallow/dontaudit inside,
``tunableif`` on the module's own tunables, ``allow``/``auditallow``/``dontaudit``
on network classes (anonymous or named class permissions, ``all``),
``typepermissive``, ``roletype``, socket ``typetransition``, ``portcon``,
``nodecon``, ``netifcon`` and ``optional`` (disabled, as secilc would, when it
names something that does not exist).

A module's records are policy records, not semanage local ones: they go where
secilc's sort puts them (``AddPortcon(..., local=False)``).  Declarations come
first, as CIL's order does not matter.  An error secilc would also refuse (an
unknown type, class, permission or boolean outside an ``optional``) raises one
:class:`~selnet.errors.InputError` naming the line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from selnet.errors import InputError
from selnet.kernel.classes import NETWORK_CLASSES, SNAPSHOT_CLASSES
from selnet.policy.index import Policy
from selnet.policy.overlay import (
    AddAttribute,
    AddAttributeMember,
    AddBoolean,
    AddNetifcon,
    AddNodecon,
    AddPortcon,
    AddRoleType,
    AddRule,
    AddType,
    AddTypeTransition,
    Change,
    Overlay,
    SetPermissive,
    _Work,
)


@dataclass(frozen=True, slots=True)
class Unapplied:
    """A statement the overlay does not apply, and whether it can change a network answer."""

    statement: str
    line: int
    reason: str
    matters: bool

    def describe(self) -> str:
        tail = " (can matter for networking)" if self.matters else ""
        return f"line {self.line}: {self.statement}: {self.reason}{tail}"


@dataclass(slots=True)
class _Expr:
    items: list[_Expr | str]
    line: int
    start: int
    end: int = -1

    def head(self) -> str:
        return self.items[0] if self.items and isinstance(self.items[0], str) else ""


_TOKEN = re.compile(r'\s+|;[^\n]*|\(|\)|"[^"\n]*"|[^\s()";]+')
_COMMENT = re.compile(r'("[^"\n]*")|;[^\n]*')


def parse(text: str) -> list[_Expr]:
    """S-expressions, each with its line and source span."""
    stack = [_Expr([], 0, 0, len(text))]
    pos, line = 0, 1
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise InputError(f"CIL line {line}: unexpected character {text[pos]!r}")
        tok = m.group()
        if tok == "(":
            stack.append(_Expr([], line, pos))
        elif tok == ")":
            if len(stack) == 1:
                raise InputError(f"CIL line {line}: unbalanced ')'")
            e = stack.pop()
            e.end = m.end()
            stack[-1].items.append(e)
        elif tok[0] == '"':
            stack[-1].items.append(tok[1:-1])
        elif not tok.isspace() and tok[0] != ";":
            if len(stack) == 1:
                raise InputError(f"CIL line {line}: {tok!r} outside parentheses")
            stack[-1].items.append(tok)
        line += tok.count("\n")
        pos = m.end()
    if len(stack) != 1:
        raise InputError(f"CIL: unbalanced '(' opened at line {stack[-1].line}")
    return [e for e in stack[0].items if isinstance(e, _Expr)]


class _Skip(Exception):
    """This statement is not applied (reason, matters)."""

    def __init__(self, reason: str, matters: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.matters = matters


_UNSUPPORTED: dict[str, tuple[str, bool]] = {
    "neverallow": ("a neverallow is checked when the policy is compiled and is not part of the "
                   "kernel policy (not checked here)", False),
    "neverallowx": ("a neverallow is checked when the policy is compiled (not checked here)", False),
    "allowx": ("extended permissions (ioctl/netlink commands): selnet models no such check", False),
    "auditallowx": ("extended permissions: selnet models no such check", False),
    "dontauditx": ("extended permissions: selnet models no such check", False),
    "deny": ("deny rules (which remove permissions) are not supported", True),
    "filecon": ("file labeling takes no part in network checks", False),
    "genfscon": ("file labeling takes no part in network checks", False),
    "fsuse": ("file labeling takes no part in network checks", False),
    "typechange": ("type_change labels no socket", False),
    "typemember": ("type_member labels no socket", False),
    "expandtypeattribute": ("changes only how the compiler writes rules", False),
    "typebounds": ("typebounds are not supported by the overlay", True),
    "policycap": ("policy capabilities are not supported by the overlay", True),
    "mls": ("a module cannot change MLS", True),
    "handleunknown": ("handle_unknown is not supported by the overlay", True),
    "sidcontext": ("initial SID contexts label unlabeled peers, ports, nodes and interfaces: "
                   "not supported by the overlay", True),
    "macro": ("macros are not expanded", True),
    "call": ("macro calls are not expanded", True),
    "block": ("blocks (namespaces) are not supported", True),
    "blockinherit": ("blocks (namespaces) are not supported", True),
    "blockabstract": ("blocks (namespaces) are not supported", True),
    "in": ("blocks (namespaces) are not supported", True),
    "classmap": ("class maps are not supported", True),
    "classmapping": ("class maps are not supported", True),
    "categoryset": ("category sets are not supported (levels in contexts may use category lists)", False),
}
for _kw in ("user", "userrole", "userlevel", "userrange", "userbounds", "userprefix", "selinuxuser",
            "selinuxuserdefault", "userattribute", "userattributeset"):
    _UNSUPPORTED[_kw] = ("users are not changed by the overlay (TE decisions do not depend on them)", False)
for _kw in ("role", "roleattribute", "roleattributeset", "roleallow", "roletransition", "rolebounds"):
    _UNSUPPORTED[_kw] = ("roles are not changed by the overlay, except roletype", False)
for _kw in ("class", "common", "classcommon", "classorder", "sid", "sidorder", "sensitivity",
            "category", "sensitivityorder", "categoryorder", "sensitivitycategory", "sensitivityalias",
            "sensitivityaliasactual", "categoryalias", "categoryaliasactual"):
    _UNSUPPORTED[_kw] = ("a declaration the kernel's network checks do not use", False)
for _kw in ("devicetreecon", "iomemcon", "ioportcon", "pcidevicecon", "pirqcon", "ibpkeycon",
            "ibendportcon"):
    _UNSUPPORTED[_kw] = ("device labeling takes no part in network checks", False)

# Statements whose first argument is class permissions: they matter when a class is a network class.
_BY_CLASS = {"constrain": "constraints are not supported by the overlay",
             "mlsconstrain": "constraints are not supported by the overlay",
             "validatetrans": "validatetrans does not apply to sockets",
             "mlsvalidatetrans": "validatetrans does not apply to sockets"}
_COND_OPS = {"and": "&&", "or": "||", "xor": "^", "eq": "==", "neq": "!="}
_DEFINITIONS = frozenset({"type", "typeattribute", "typealias", "typealiasactual", "boolean", "tunable",
                          "classpermission", "classpermissionset", "context", "ipaddr", "level",
                          "levelrange"})
_REQUIRE = "cil_gen_require"


@dataclass(slots=True)
class _Reader:
    text: str
    base: Policy
    work: _Work
    changes: list[Change] = field(default_factory=list)
    unapplied: list[Unapplied] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)
    cpsets: dict[str, list[_Expr | str]] = field(default_factory=dict)
    contexts: dict[str, _Expr | str] = field(default_factory=dict)
    ipaddrs: dict[str, str] = field(default_factory=dict)
    levels: dict[str, _Expr | str] = field(default_factory=dict)
    levelranges: dict[str, _Expr | str] = field(default_factory=dict)
    tunables: dict[str, bool] = field(default_factory=dict)
    roles: set[str] = field(default_factory=set)

    # -- plumbing ---------------------------------------------------------------
    def source(self, e: _Expr) -> str:
        """The statement's text, comments dropped and white space collapsed, at most 160 characters."""
        raw = self.text[e.start:e.end]
        if ";" in raw:  # keep quoted strings, drop comments
            raw = _COMMENT.sub(lambda m: m.group(1) or "", raw)
        text = " ".join(raw.split())
        return text if len(text) <= 160 else text[:157] + "..."

    def skip(self, e: _Expr, reason: str, matters: bool) -> None:
        self.unapplied.append(Unapplied(self.source(e), e.line, reason, matters))

    def add(self, change: Change) -> None:
        self.work.change(change)
        self.changes.append(change)

    def alias(self, name: str) -> str:
        return self.aliases.get(name, name)

    def atom(self, node: _Expr | str, what: str) -> str:
        if not isinstance(node, str):
            raise _Skip(f"{what}: an expression where a name is expected is not supported", True)
        return node

    def args(self, e: _Expr, n: int) -> list[_Expr | str]:
        if len(e.items) != n + 1:
            raise InputError(f"{e.head()} takes {n} argument{'s' if n > 1 else ''}, got {len(e.items) - 1}")
        return e.items[1:]

    # -- blocks -------------------------------------------------------------------
    def block(self, stmts: list[_Expr | str]) -> None:
        exprs = [s for s in stmts if isinstance(s, _Expr)]
        for e in exprs:
            if e.head() in _DEFINITIONS:
                self.guarded(e, self.definition)
        for e in exprs:
            if e.head() not in _DEFINITIONS:
                self.guarded(e, self.statement)

    def guarded(self, e: _Expr, fn: Callable[[_Expr], None]) -> None:
        try:
            fn(e)
        except _Skip as skip:
            self.skip(e, skip.reason, skip.matters)
        except InputError as exc:
            msg = str(exc)
            raise InputError(msg if msg.startswith("CIL line") else f"CIL line {e.line}: {msg}") from None

    def optional(self, e: _Expr) -> None:
        saved = (self.work, list(self.changes), len(self.unapplied))
        self.work = _work_for(self.base, self.changes)
        try:
            self.block(e.items[2:])
        except InputError as exc:
            self.work, self.changes, n = saved
            del self.unapplied[n:]
            msg = re.sub(r"^CIL line \d+: ", "", str(exc))
            self.skip(e, f"optional block disabled, as secilc would disable it: {msg}", False)

    # -- definitions ----------------------------------------------------------------
    def definition(self, e: _Expr) -> None:
        kw = e.head()
        if kw == "type":
            (name,) = self.args(e, 1)
            self.add(AddType(self.atom(name, "type")))
        elif kw == "typeattribute":
            (name,) = self.args(e, 1)
            if name != _REQUIRE:
                self.add(AddAttribute(self.atom(name, "typeattribute")))
        elif kw == "typealias":
            self.args(e, 1)
        elif kw == "typealiasactual":
            alias, actual = self.args(e, 2)
            self.aliases[self.atom(alias, "typealiasactual")] = self.atom(actual, "typealiasactual")
        elif kw == "boolean":
            name, value = self.args(e, 2)
            self.add(AddBoolean(self.atom(name, "boolean"), self._truth(value)))
        elif kw == "tunable":
            name, value = self.args(e, 2)
            self.tunables[self.atom(name, "tunable")] = self._truth(value)
        elif kw == "classpermission":
            (name,) = self.args(e, 1)
            self.cpsets.setdefault(self.atom(name, "classpermission"), [])
        elif kw == "classpermissionset":
            name, cp = self.args(e, 2)
            self.cpsets.setdefault(self.atom(name, "classpermissionset"), []).append(cp)
        elif kw == "context":
            name, ctx = self.args(e, 2)
            self.contexts[self.atom(name, "context")] = ctx
        elif kw == "ipaddr":
            name, addr = self.args(e, 2)
            self.ipaddrs[self.atom(name, "ipaddr")] = self.atom(addr, "ipaddr")
        elif kw == "level":
            name, lvl = self.args(e, 2)
            self.levels[self.atom(name, "level")] = lvl
        elif kw == "levelrange":
            name, rng = self.args(e, 2)
            self.levelranges[self.atom(name, "levelrange")] = rng

    @staticmethod
    def _truth(node: _Expr | str) -> bool:
        if node not in ("true", "false"):
            raise InputError(f"expected true or false, got {node!r}")
        return node == "true"

    # -- statements -------------------------------------------------------------------
    def statement(self, e: _Expr) -> None:
        kw = e.head()
        if kw in ("allow", "auditallow", "dontaudit"):
            self.avrule(e, None, True)
        elif kw == "typeattributeset":
            self.typeattributeset(e)
        elif kw == "typepermissive":
            (t,) = self.args(e, 1)
            self.add(SetPermissive(self.alias(self.atom(t, "typepermissive"))))
        elif kw == "roletype":
            role, t = (self.atom(x, "roletype") for x in self.args(e, 2))
            if role in self.roles:
                raise _Skip(f"role {role} is declared by this module: roles are not changed by the overlay",
                            False)
            if role == _REQUIRE:
                return
            self.add(AddRoleType(role, self.alias(t)))
        elif kw == "typetransition":
            self.typetransition(e)
        elif kw == "portcon":
            self.portcon(e)
        elif kw == "nodecon":
            self.nodecon(e)
        elif kw == "netifcon":
            self.netifcon(e)
        elif kw == "booleanif":
            self.booleanif(e)
        elif kw == "tunableif":
            self.tunableif(e)
        elif kw == "optional":
            self.optional(e)
        elif kw in _BY_CLASS:
            self.by_class(e)
        elif kw in _UNSUPPORTED:
            if kw == "role" and len(e.items) == 2 and isinstance(e.items[1], str):
                self.roles.add(e.items[1])
            if kw in ("roleattribute", "roleattributeset") and len(e.items) > 1 and e.items[1] == _REQUIRE:
                return  # a requirement on roles: nothing to change
            reason, matters = _UNSUPPORTED[kw]
            raise _Skip(reason, matters)
        else:
            raise _Skip(f"statement {kw or '(...)'!r} is not understood", True)

    def classperms(
        self, node: _Expr | str, seen: frozenset[str] = frozenset()
    ) -> list[tuple[str, frozenset[str]]]:
        snap = self.base.snap
        if isinstance(node, str):
            if node not in self.cpsets:
                raise _Skip(f"class permission set {node!r} is defined outside this module", True)
            if node in seen:
                raise InputError(f"class permission set {node!r} includes itself")
            out: list[tuple[str, frozenset[str]]] = []
            for cp in self.cpsets[node]:
                out.extend(self.classperms(cp, seen | {node}))
            return out
        if len(node.items) != 2 or not isinstance(node.items[0], str):
            raise _Skip("class permissions must be (class (permissions))", True)
        cls, perms = node.items
        assert isinstance(cls, str)
        if cls not in snap.classes:
            raise InputError(f"unknown class {cls!r}")
        names = [perms] if isinstance(perms, str) else perms.items
        out_perms: set[str] = set()
        for p in names:
            if not isinstance(p, str) or p in ("and", "or", "not", "xor", "range"):
                raise _Skip("permission expressions (and/or/not) are not supported", True)
            out_perms |= snap.classes[cls] if p == "all" else {p}
        return [(cls, frozenset(out_perms))]

    def avrule(self, e: _Expr, cond: tuple[str, ...] | None, branch: bool) -> None:
        kw = e.head()
        src, tgt, cp = self.args(e, 3)
        s = self.alias(self.atom(src, f"{kw} source"))
        t = self.alias(self.atom(tgt, f"{kw} target"))
        pairs = self.classperms(cp)
        net = [(c, p) for c, p in pairs if c in SNAPSHOT_CLASSES]
        other = sorted({c for c, _ in pairs if c not in SNAPSHOT_CLASSES})
        for c, p in net:
            self.add(AddRule(kw, s, t, c, p, cond, branch))
        if other:
            plural = "es" if len(other) > 1 else ""
            reason = f"class{plural} {', '.join(other)}: selnet models network classes only"
            if not net:
                raise _Skip(reason, False)
            self.skip(e, f"partly applied; {reason}", False)

    def typeattributeset(self, e: _Expr) -> None:
        attr_node, expr = self.args(e, 2)
        attr = self.atom(attr_node, "typeattributeset")
        names = [expr] if isinstance(expr, str) else expr.items
        if any(not isinstance(n, str) for n in names) or (
            names and names[0] in ("and", "or", "not", "xor", "all")
        ):
            raise _Skip("attribute expressions (and/or/not/xor/all) are not evaluated", True)
        if attr == _REQUIRE:  # a requirement: every name must exist
            for n in names:
                assert isinstance(n, str)
                if not self.work.exists(self.alias(n)):
                    raise InputError(f"required type or attribute {n!r} does not exist")
            return
        for n in names:
            assert isinstance(n, str)
            self.add(AddAttributeMember(self.alias(n), attr))

    def typetransition(self, e: _Expr) -> None:
        if len(e.items) == 6:
            raise _Skip("a name-based type transition labels files, not sockets", False)
        src, tgt, cls, default = (self.atom(x, "typetransition") for x in self.args(e, 4))
        if cls not in self.base.snap.classes:
            raise InputError(f"unknown class {cls!r}")
        if cls not in NETWORK_CLASSES:
            raise _Skip(f"class {cls}: selnet models network classes only", False)
        self.add(AddTypeTransition(self.alias(src), self.alias(tgt), cls, self.alias(default)))

    def by_class(self, e: _Expr) -> None:
        reason = _BY_CLASS[e.head()]
        if len(e.items) < 2:
            raise _Skip(reason, True)
        try:
            classes = {c for c, _ in self.classperms(e.items[1])}
        except _Skip:
            raise _Skip(reason, True) from None
        raise _Skip(reason, bool(classes & NETWORK_CLASSES))

    # -- conditionals -------------------------------------------------------------------
    def cond(self, node: _Expr | str) -> tuple[str, ...]:
        if isinstance(node, str):
            return (node,)
        items = node.items
        op = node.head()
        if op in _COND_OPS and len(items) == 3:
            return (*self.cond(items[1]), *self.cond(items[2]), _COND_OPS[op])
        if op == "not" and len(items) == 2:
            return (*self.cond(items[1]), "!")
        if len(items) == 1:
            return self.cond(items[0])
        raise InputError("malformed boolean expression")

    def booleanif(self, e: _Expr) -> None:
        if len(e.items) < 3:
            raise InputError("booleanif needs a condition and a branch")
        cond = self.cond(e.items[1])
        for br in e.items[2:]:
            if not isinstance(br, _Expr) or br.head() not in ("true", "false"):
                raise InputError("booleanif branches are (true ...) and (false ...)")
            for stmt in br.items[1:]:
                if not isinstance(stmt, _Expr):
                    continue
                if stmt.head() in ("allow", "auditallow", "dontaudit"):
                    branch = br.head() == "true"

                    def rule(s: _Expr, b: bool = branch) -> None:
                        self.avrule(s, cond, b)

                    self.guarded(stmt, rule)
                elif stmt.head() == "typetransition":
                    self.skip(stmt, "conditional type transitions are not supported", True)
                else:
                    self.guarded(stmt, self.statement)

    def tunableif(self, e: _Expr) -> None:
        if len(e.items) < 3:
            raise InputError("tunableif needs a condition and a branch")
        value = self.tunable_value(self.cond(e.items[1]))
        for br in e.items[2:]:
            if isinstance(br, _Expr) and br.head() == ("true" if value else "false"):
                self.block(br.items[1:])
        # the other branch is compiled out by secilc: nothing to apply

    def tunable_value(self, postfix: tuple[str, ...]) -> bool:
        stack: list[bool] = []
        for tok in postfix:
            if tok == "!":
                stack.append(not stack.pop())
            elif tok in _COND_OPS.values():
                b, a = stack.pop(), stack.pop()
                stack.append({"&&": a and b, "||": a or b, "^": a != b, "==": a == b, "!=": a != b}[tok])
            elif tok in self.tunables:
                stack.append(self.tunables[tok])
            else:
                raise _Skip(f"tunable {tok!r} is not declared in this module", True)
        return stack[0]

    # -- records ----------------------------------------------------------------------------
    def context(self, node: _Expr | str) -> str:
        snap = self.base.snap
        if isinstance(node, str):
            if node not in self.contexts:
                raise _Skip(f"context {node!r} is defined outside this module", True)
            node = self.contexts[node]
        if isinstance(node, str) or len(node.items) != 4:
            raise InputError("a context is (user role type levelrange)")
        user, role, typ = (self.atom(x, "context") for x in node.items[:3])
        text = f"{user}:{role}:{self.alias(typ)}"
        return f"{text}:{self.levelrange(node.items[3])}" if snap.mls else text

    def levelrange(self, node: _Expr | str) -> str:
        if isinstance(node, str):
            if node not in self.levelranges:
                raise _Skip(f"level range {node!r} is defined outside this module", True)
            node = self.levelranges[node]
        if isinstance(node, str) or len(node.items) != 2:
            raise InputError("a level range is (low high)")
        low, high = self.level(node.items[0]), self.level(node.items[1])
        return low if low == high else f"{low}-{high}"

    def level(self, node: _Expr | str) -> str:
        snap = self.base.snap
        if isinstance(node, str):
            if node in self.levels:
                node = self.levels[node]
            elif node == "systemlow" and snap.sensitivities:
                return snap.sensitivities[0]
            elif node == "systemhigh" and snap.sensitivities:
                allcats = snap.categories
                return snap.sensitivities[-1] + (f":{allcats[0]}.{allcats[-1]}" if allcats else "")
            else:
                raise _Skip(f"level {node!r} is defined outside this module", True)
        if isinstance(node, str) or not node.items or not isinstance(node.items[0], str):
            raise InputError("a level is (sensitivity (categories))")
        sens = node.items[0]
        if len(node.items) == 1:
            return sens
        cats_node = node.items[1]
        parts: list[str] = []
        cats = [cats_node] if isinstance(cats_node, str) or cats_node.head() == "range" else cats_node.items
        for c in cats:
            if isinstance(c, str) and c not in ("and", "or", "not", "xor", "all", "range"):
                parts.append(c)
            elif isinstance(c, _Expr) and c.head() == "range" and len(c.items) == 3 and all(
                isinstance(x, str) for x in c.items
            ):
                parts.append(f"{c.items[1]}.{c.items[2]}")
            else:
                raise _Skip("category expressions are not supported", True)
        return f"{sens}:{','.join(parts)}" if parts else sens

    def portcon(self, e: _Expr) -> None:
        proto, ports, ctx = self.args(e, 3)
        proto = self.atom(proto, "portcon")
        if isinstance(ports, str):
            low = high = _port_number(ports)
        elif len(ports.items) == 2:
            low, high = (_port_number(self.atom(p, "portcon")) for p in ports.items)
        else:
            raise InputError("portcon ports are N or (LOW HIGH)")
        change = AddPortcon(proto, low, high, self.context(ctx), local=False)
        found = self.work.find_port(proto, low, high)
        if found is not None:
            raise _Skip(f"the policy already has {found.describe()}: secilc keeps the first record for "
                        "a key and drops this one", True)
        self.add(change)

    def nodecon(self, e: _Expr) -> None:
        addr, mask, ctx = self.args(e, 3)
        a, m = self.address(addr), self.address(mask)
        found = self.work.find_node(a, m)
        change = AddNodecon(a, m, self.context(ctx), local=False)
        if found is not None:
            raise _Skip(f"the policy already has {found.describe()}: secilc keeps the first record for "
                        "a key and drops this one", True)
        self.add(change)

    def address(self, node: _Expr | str) -> str:
        if isinstance(node, str):
            if node not in self.ipaddrs:
                raise _Skip(f"ipaddr {node!r} is defined outside this module", True)
            return self.ipaddrs[node]
        if len(node.items) != 1:
            raise InputError("an address is (ADDRESS)")
        return self.atom(node.items[0], "address")

    def netifcon(self, e: _Expr) -> None:
        name, ctx, pkt = self.args(e, 3)
        name = self.atom(name, "netifcon")
        change = AddNetifcon(name, self.context(ctx), self.context(pkt), local=False)
        found = self.work.find_netif(name)
        if found is not None:
            raise _Skip(f"the policy already has {found.describe()}: secilc keeps the first record for "
                        "a key and drops this one", True)
        self.add(change)


def _port_number(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise InputError(f"not a port number: {text!r}")
    return int(text)


def _work_for(policy: Policy, changes: list[Change]) -> _Work:
    """A workspace on the loaded policy with ``policy``'s overlay and ``changes`` applied."""
    work = _Work(policy.base)
    for c in [*(policy.overlay.changes if policy.overlay is not None else ()), *changes]:
        work.change(c)
    return work


def read_cil(text: str, base: Policy) -> tuple[Overlay, list[Unapplied]]:
    """Read a CIL module against ``base``: the overlay, and every statement not applied.

    ``base`` may itself be overlaid: the module is then read against it, and the
    overlay returned holds the module's changes only (apply it to ``base``).
    """
    reader = _Reader(text, base, _work_for(base, []))
    reader.block(list(parse(text)))
    return Overlay(tuple(reader.changes)), reader.unapplied
