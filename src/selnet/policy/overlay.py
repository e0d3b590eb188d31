"""One change overlay: a typed, immutable set of changes applied to a loaded policy.

``Overlay((AddPortcon("tcp", 8082, 8082, "http_port_t"),)).apply(policy)`` returns a
new :class:`~selnet.policy.index.Policy` that labels, the kernel model and the
Decider read exactly like a loaded one.  Nothing is re-indexed: the new
policy's snapshot is ``base.snap.replace(...)`` sharing every
unchanged field, and its rule/transition/constraint indexes are the base's,
layered with the deltas (:meth:`Policy.layered`).  Applying a small overlay to
the full reference policy takes well under a millisecond (docs/overlay.md).

Every change is validated against the base policy as changed by the changes
before it, and a bad one raises one :class:`~selnet.errors.InputError` that
names the change.  Applying an overlay to an overlaid policy applies both, in
order, to the loaded policy.

Semantics, change by change:

* :class:`SetBoolean` sets a boolean's default (``setsebool -P``): the value
  ``policy.bool_values()`` and a default ``Decider`` start from.
  :class:`AddBoolean` declares a new one (a CIL module's ``boolean``).
* Port, node and interface records follow ``semanage port|node|interface``
  (kernel-network-checks.md 6.4).  The kernel takes the FIRST matching record
  in binary order, and libsemanage prepends local records to the policy's, so:

  - ``-a`` (:class:`AddPortcon`, :class:`AddNodecon`, :class:`AddNetifcon`)
    adds a local record that the kernel sees before every policy record, and is
    refused when a record with exactly that key exists (protocol+low+high;
    address+mask; interface name).  A later local port record comes before an
    earlier one; local node records are ordered most specific mask first.
  - ``-m`` (``Modify*``) gives the record with exactly that key a new context,
    refused when there is none.  A local record changes in place.  A policy
    port or node record stays where it is, shadowed by a new first-seen local
    record (so ``label`` still lists it as losing, as on a real system).  An
    interface record is replaced in place (libsepol ``sepol_iface_modify``).
  - ``-d`` (``Delete*``) removes the record with exactly that key, refused when
    there is none: a local record first (the policy's record with that key, if
    any, is then seen again), otherwise the policy's own record.  (``semanage``
    itself refuses to delete a record the policy defines; selnet answers the
    what-if "the policy without that record".)

  Overlay records carry negative ``position`` values (-n .. -1), before every
  policy record's 0-based binary position, so order and positions agree.
  A context is a type (``system_u:object_r:TYPE`` with system_u's default level
  when the policy is MLS) or a full context; an interface's packet context
  defaults to its context, as semanage writes it.

  Comparing with a recompiled policy: secilc (cil_post.c) SORTS portcons and
  nodecons by specificity, narrowest range / longest mask first, so a
  single-port record lands before a wider range whether it is "local" or not,
  while checkpolicy keeps source order.  A local ``-a`` record always comes
  first.  The two agree whenever the added record is the narrowest one covering
  its ports (the usual ``semanage port -a`` of one port inside a range); they
  differ for a local record WIDER than a policy record it overlaps, where the
  local record wins on a real system and in selnet.
* :class:`AddRule` adds an allow / auditallow / dontaudit rule on a network
  class (source and target: a type, an attribute, or ``self`` for the target),
  optionally under a condition in postfix (``("a", "b", "&&")``) with the
  branch it sits in.  ``self`` is expanded to one rule per type of the source,
  after every membership change of the overlay, as compilers do.
* :class:`AddType` (optionally with attributes), :class:`AddAttribute`,
  :class:`AddAttributeMember` (a type joins an attribute; an attribute as the
  member adds all of its types, resolved after every change), :class:`SetPermissive`,
  :class:`AddRoleType` (so a new domain gets a context), :class:`AddTypeTransition`
  (a socket type_transition).  Constraints whose type sets name an attribute
  are extended with the attribute's new members, as a recompile would.

What the overlay cannot know, because the compiled base no longer holds it
(the compiler expanded it): a rule written ``allow ATTR self`` in the base's
sources is stored as one rule per member type, role and attribute statements
naming attributes are stored expanded, and attributes defined by expressions
(``all``, ``not``, ``and``) are not re-evaluated.  A new type therefore gets
exactly the attributes and roles given to it, and the base's rules on those
attributes; give it explicitly anything else it should have.
"""

from __future__ import annotations

import ipaddress
import re
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from selnet.errors import InputError
from selnet.kernel.classes import SNAPSHOT_CLASSES
from selnet.policy.conditions import OPERATORS, CondExpr, infix
from selnet.policy.index import Policy
from selnet.policy.snapshot import (
    AVRule,
    Constraint,
    Context,
    Netifcon,
    Nodecon,
    Portcon,
    TypeTransition,
)

if TYPE_CHECKING:
    from selnet.policy.cilmodule import Unapplied

PORT_PROTOCOLS = ("tcp", "udp", "dccp", "sctp")
RULE_KINDS = ("allow", "auditallow", "dontaudit")
_NAME = re.compile(r"[A-Za-z0-9_.\-]+\Z")


def _ports_text(low: int, high: int) -> str:
    return str(low) if low == high else f"{low}-{high}"


def _check_port_key(protocol: str, low: int, high: int) -> None:
    if protocol not in PORT_PROTOCOLS:
        raise InputError(f"unknown port protocol {protocol!r} (expected one of {', '.join(PORT_PROTOCOLS)})")
    if not (isinstance(low, int) and isinstance(high, int)) or not 0 <= low <= high <= 65535:
        raise InputError(f"bad port range {low}-{high} (0 <= low <= high <= 65535)")


def _check_name(name: str, what: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name) or name == "self":
        raise InputError(f"not a valid {what} name: {name!r}")


def _semanage_ctx(context: str) -> str:
    """``-t TYPE`` (and ``-r RANGE``) for a type or a full context."""
    if ":" not in context:
        return f"-t {context}"
    parts = context.split(":", 3)
    text = f"-t {parts[2]}" if len(parts) > 2 else f"-t {context}"
    if len(parts) == 4:
        text += f" -r {parts[3]}"
    if parts[:2] != ["system_u", "object_r"]:
        text += f" (context {context})"
    return text


# -- nodes: address and mask ----------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Net:
    family: int
    address: str
    mask: str
    prefixlen: int
    addr_int: int
    mask_int: int

    @property
    def key(self) -> tuple[int, int, int]:
        return (self.family, self.addr_int, self.mask_int)


def _network(address: str, mask: str) -> _Net:
    """An address and a netmask (``255.255.0.0``, ``ffff::``) or a prefix length (``16``)."""
    try:
        addr = ipaddress.ip_address(address.strip().strip("[]"))
    except (ValueError, AttributeError):
        raise InputError(f"not an IPv4 or IPv6 address: {address!r}") from None
    m = str(mask).strip().lstrip("/")
    try:
        net = ipaddress.ip_network(f"{addr}/{m}", strict=True)
    except ValueError as exc:
        if "host bits" in str(exc):
            raise InputError(
                f"{address}/{mask}: the address has bits set outside the mask "
                "(the kernel could never match such a record)"
            ) from None
        raise InputError(f"not a netmask for {address}: {mask!r} (a contiguous mask is needed)") from None
    fam = 4 if isinstance(net, ipaddress.IPv4Network) else 6
    return _Net(fam, str(net.network_address), str(net.netmask), net.prefixlen,
                int(net.network_address), int(net.netmask))


# -- the changes ----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SetBoolean:
    """``setsebool -P NAME on|off``: the boolean's default value."""

    name: str
    value: bool

    def describe(self) -> str:
        return f"setsebool -P {self.name} {'on' if self.value else 'off'}"


@dataclass(frozen=True, slots=True)
class AddBoolean:
    """Declare a new boolean with its default (CIL ``boolean``)."""

    name: str
    value: bool

    def __post_init__(self) -> None:
        _check_name(self.name, "boolean")

    def describe(self) -> str:
        return f"(boolean {self.name} {'true' if self.value else 'false'})"


@dataclass(frozen=True, slots=True)
class AddPortcon:
    """``semanage port -a``: a local record, seen before every policy portcon.

    ``local=False``: a policy record (a CIL module's ``portcon``), placed where
    secilc's sort puts it: narrowest range first, then lowest port.
    """

    protocol: str
    low: int
    high: int
    context: str  # a type, or a full context
    local: bool = True

    def __post_init__(self) -> None:
        _check_port_key(self.protocol, self.low, self.high)

    def describe(self) -> str:
        if not self.local:
            return f"(portcon {self.protocol} {_ports_text(self.low, self.high)} {self.context})"
        return (f"semanage port -a {_semanage_ctx(self.context)} -p {self.protocol} "
                f"{_ports_text(self.low, self.high)}")


@dataclass(frozen=True, slots=True)
class ModifyPortcon:
    """``semanage port -m``: a new context for the record with exactly this key."""

    protocol: str
    low: int
    high: int
    context: str

    def __post_init__(self) -> None:
        _check_port_key(self.protocol, self.low, self.high)

    def describe(self) -> str:
        return (f"semanage port -m {_semanage_ctx(self.context)} -p {self.protocol} "
                f"{_ports_text(self.low, self.high)}")


@dataclass(frozen=True, slots=True)
class DeletePortcon:
    """``semanage port -d``: remove the record with exactly this key."""

    protocol: str
    low: int
    high: int

    def __post_init__(self) -> None:
        _check_port_key(self.protocol, self.low, self.high)

    def describe(self) -> str:
        return f"semanage port -d -p {self.protocol} {_ports_text(self.low, self.high)}"


@dataclass(frozen=True, slots=True)
class AddNodecon:
    """``semanage node -a``: a local record for address/mask.

    ``local=False``: a policy record (a CIL module's ``nodecon``), placed where
    secilc's sort puts it: IPv4 first, longest mask first, then lowest address.
    """

    address: str
    mask: str  # a netmask or a prefix length
    context: str
    local: bool = True

    def __post_init__(self) -> None:
        _network(self.address, self.mask)

    def describe(self) -> str:
        n = _network(self.address, self.mask)
        if not self.local:
            return f"(nodecon {n.address} {n.mask} {self.context})"
        return f"semanage node -a {_semanage_ctx(self.context)} -M {n.mask} -p ipv{n.family} {n.address}"


@dataclass(frozen=True, slots=True)
class ModifyNodecon:
    """``semanage node -m``."""

    address: str
    mask: str
    context: str

    def __post_init__(self) -> None:
        _network(self.address, self.mask)

    def describe(self) -> str:
        n = _network(self.address, self.mask)
        return f"semanage node -m {_semanage_ctx(self.context)} -M {n.mask} -p ipv{n.family} {n.address}"


@dataclass(frozen=True, slots=True)
class DeleteNodecon:
    """``semanage node -d``."""

    address: str
    mask: str

    def __post_init__(self) -> None:
        _network(self.address, self.mask)

    def describe(self) -> str:
        n = _network(self.address, self.mask)
        return f"semanage node -d -M {n.mask} -p ipv{n.family} {n.address}"


@dataclass(frozen=True, slots=True)
class AddNetifcon:
    """``semanage interface -a``; the packet context defaults to the context.

    ``local=False``: a policy record (a CIL module's ``netifcon``), placed in
    name order as secilc sorts them.
    """

    name: str
    context: str
    packet_context: str | None = None
    local: bool = True

    def __post_init__(self) -> None:
        _check_netif(self.name)

    def describe(self) -> str:
        if not self.local:
            return f"(netifcon {self.name} {self.context} {self.packet_context or self.context})"
        return f"semanage interface -a {_semanage_ctx(self.context)} {self.name}"


@dataclass(frozen=True, slots=True)
class ModifyNetifcon:
    """``semanage interface -m``."""

    name: str
    context: str
    packet_context: str | None = None

    def __post_init__(self) -> None:
        _check_netif(self.name)

    def describe(self) -> str:
        return f"semanage interface -m {_semanage_ctx(self.context)} {self.name}"


@dataclass(frozen=True, slots=True)
class DeleteNetifcon:
    """``semanage interface -d``."""

    name: str

    def __post_init__(self) -> None:
        _check_netif(self.name)

    def describe(self) -> str:
        return f"semanage interface -d {self.name}"


def _check_postfix(cond: CondExpr) -> None:
    depth = 0
    for tok in cond:
        need = 1 if tok == "!" else 2 if tok in OPERATORS else 0
        if depth < need or not tok:
            break
        depth += 1 - need if tok != "!" else 0
    else:
        if depth == 1:
            return
    raise InputError(f"malformed condition {' '.join(cond)!r} (a postfix expression is expected)")


def _check_netif(name: str) -> None:
    if not isinstance(name, str) or not name or len(name) > 15 or any(
        c.isspace() or c in "/()" for c in name
    ):
        raise InputError(f"not a network interface name: {name!r}")


@dataclass(frozen=True, slots=True)
class AddRule:
    """An allow/auditallow/dontaudit rule; ``cond`` in postfix, ``branch`` its side."""

    ruletype: str
    source: str
    target: str  # a type, an attribute, or "self"
    tclass: str
    perms: frozenset[str]
    cond: CondExpr | None = None
    branch: bool = True

    def __post_init__(self) -> None:
        if self.ruletype not in RULE_KINDS:
            raise InputError(f"unknown rule kind {self.ruletype!r} (expected one of {', '.join(RULE_KINDS)})")
        perms = self.perms
        if isinstance(perms, str):
            perms = frozenset(perms.split())
        object.__setattr__(self, "perms", frozenset(perms))
        if not self.perms:
            raise InputError(f"rule on {self.tclass} names no permission")
        if self.cond is not None:
            object.__setattr__(self, "cond", tuple(self.cond))
            _check_postfix(self.cond)

    def te(self) -> str:
        perms = sorted(self.perms)
        ptext = perms[0] if len(perms) == 1 else "{ " + " ".join(perms) + " }"
        return f"{self.ruletype} {self.source} {self.target}:{self.tclass} {ptext};"

    def cil(self) -> str:
        """The rule as a CIL statement (unconditional rules: what a module writes)."""
        if self.cond is not None:
            raise ValueError("a conditional rule has no single-statement CIL form")
        perms = " ".join(sorted(self.perms))
        return f"({self.ruletype} {self.source} {self.target} ({self.tclass} ({perms})))"

    def describe(self) -> str:
        text = self.te()
        if self.cond is not None:
            text += f" [ {infix(self.cond)} ]:{self.branch}"
        return text


@dataclass(frozen=True, slots=True)
class AddType:
    name: str
    attributes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_name(self.name, "type")
        attrs = self.attributes
        object.__setattr__(self, "attributes", (attrs,) if isinstance(attrs, str) else tuple(attrs))

    def te(self) -> tuple[str, ...]:
        """The declaration as TE statements: the type, then one line per attribute."""
        return (f"type {self.name};", *(f"typeattribute {self.name} {a};" for a in self.attributes))

    def cil(self) -> tuple[str, ...]:
        return (f"(type {self.name})", *(f"(typeattributeset {a} ({self.name}))"
                                         for a in self.attributes))

    def describe(self) -> str:
        text = f"type {self.name}"
        if self.attributes:
            text += ", " + ", ".join(self.attributes)
        return text + ";"


@dataclass(frozen=True, slots=True)
class AddAttribute:
    name: str

    def __post_init__(self) -> None:
        _check_name(self.name, "attribute")

    def describe(self) -> str:
        return f"attribute {self.name};"


@dataclass(frozen=True, slots=True)
class AddAttributeMember:
    """``type`` joins ``attribute``; an attribute as ``type`` adds all its types."""

    type: str
    attribute: str

    def describe(self) -> str:
        return f"typeattribute {self.type} {self.attribute};"


@dataclass(frozen=True, slots=True)
class SetPermissive:
    type: str

    def describe(self) -> str:
        return f"permissive {self.type};"


@dataclass(frozen=True, slots=True)
class AddRoleType:
    """``role ROLE types TYPE;`` (a type or an attribute's types)."""

    role: str
    type: str

    def cil(self) -> str:
        return f"(roletype {self.role} {self.type})"

    def describe(self) -> str:
        return f"role {self.role} types {self.type};"


@dataclass(frozen=True, slots=True)
class AddTypeTransition:
    """A socket type_transition: sockets ``source`` creates are labeled ``default``."""

    source: str
    target: str
    tclass: str
    default: str

    def describe(self) -> str:
        return f"type_transition {self.source} {self.target}:{self.tclass} {self.default};"


Change = (
    SetBoolean | AddBoolean
    | AddPortcon | ModifyPortcon | DeletePortcon
    | AddNodecon | ModifyNodecon | DeleteNodecon
    | AddNetifcon | ModifyNetifcon | DeleteNetifcon
    | AddRule | AddType | AddAttribute | AddAttributeMember | SetPermissive
    | AddRoleType | AddTypeTransition
)
CHANGE_TYPES: tuple[type, ...] = (
    SetBoolean, AddBoolean, AddPortcon, ModifyPortcon, DeletePortcon, AddNodecon, ModifyNodecon,
    DeleteNodecon, AddNetifcon, ModifyNetifcon, DeleteNetifcon, AddRule, AddType, AddAttribute,
    AddAttributeMember, SetPermissive, AddRoleType, AddTypeTransition,
)


@dataclass(frozen=True, slots=True)
class Overlay:
    """An ordered, immutable set of changes; :meth:`apply` puts them on a policy."""

    changes: tuple[Change, ...] = ()

    def __post_init__(self) -> None:
        changes = tuple(self.changes)
        for c in changes:
            if not isinstance(c, CHANGE_TYPES):
                raise TypeError(f"not an overlay change: {c!r}")
        object.__setattr__(self, "changes", changes)

    def __len__(self) -> int:
        return len(self.changes)

    def __add__(self, other: Overlay) -> Overlay:
        return Overlay(self.changes + other.changes)

    def describe(self) -> list[str]:
        """Each change as the command or statement that makes it."""
        return [c.describe() for c in self.changes]

    def apply(self, policy: Policy) -> Policy:
        """``policy`` with these changes: a new Policy sharing everything unchanged.

        Raises InputError for the first change that does not fit the policy.
        """
        if policy.overlay is not None:
            return Overlay(policy.overlay.changes + self.changes).apply(policy.base)
        work = _Work(policy)
        for change in self.changes:
            work.change(change)
        return work.finish(self)

    @classmethod
    def from_cil(cls, text: str, base: Policy) -> tuple[Overlay, list[Unapplied]]:
        """The network-relevant content of a CIL module, and what could not be applied."""
        from selnet.policy.cilmodule import read_cil

        return read_cil(text, base)


# -- applying -------------------------------------------------------------------
_ATTR_TOKENS = frozenset({"u1", "u2", "u3", "r1", "r2", "r3", "t1", "t2", "t3",
                          "l1", "l2", "h1", "h2"})
_CONS_OPS = frozenset({"==", "!=", "eq", "neq", "dom", "domby", "incomp", "not", "and", "or"})
_CONS_OPERAND = re.compile(r"\b([urt][123])\s+(?:==|!=|eq|neq)\s+(\{[^}]*\}|[^\s(){}]+)")

# Per base policy: for each constraint, its type-set operands as
# (index in the postfix, names as written), or None when the text and the
# postfix cannot be aligned.
_ConsOperands = list[list[tuple[int, tuple[str, ...]]] | None]
_CONS_NAMES: weakref.WeakKeyDictionary[Policy, _ConsOperands] = weakref.WeakKeyDictionary()


def _constraint_operands(policy: Policy) -> _ConsOperands:
    got = _CONS_NAMES.get(policy)
    if got is None:
        got = [_align(c) for c in policy.snap.constraints]
        _CONS_NAMES[policy] = got
    return got


def _align(con: Constraint) -> list[tuple[int, tuple[str, ...]]] | None:
    """Match the names each set operand was written with (the text) to the postfix sets."""
    written = []
    for m in _CONS_OPERAND.finditer(con.text):
        operand = m.group(2)
        if operand in _ATTR_TOKENS:
            continue
        names = tuple(operand.strip("{}").split())
        if any(n[:1] in "-~*" for n in names):
            return None
        written.append((m.group(1), names))
    positions = [i for i, tok in enumerate(con.postfix)
                 if isinstance(tok, frozenset) or (tok not in _ATTR_TOKENS and tok not in _CONS_OPS)]
    if len(positions) != len(written):
        return None
    return [(i, names) for i, (attr, names) in zip(positions, written, strict=True) if attr[0] == "t"]


_Rec = TypeVar("_Rec", Portcon, Nodecon, Netifcon)

# secilc's order (cil_post.c): protocols as CIL numbers them.
_PROTO_ORDER = {"udp": 1, "tcp": 2, "dccp": 3, "sctp": 4}


def _port_order(p: Portcon) -> tuple[int, ...]:
    return (p.high - p.low, p.low, _PROTO_ORDER.get(p.protocol, 9))


def _node_order(n: Nodecon) -> tuple[int, ...]:
    return (n.family, -n.mask_int, n.addr_int)


def _netif_order(n: Netifcon) -> tuple[str, ...]:
    return (n.name,)


def _sorted_insert(records: list[_Rec], rec: _Rec, order: Callable[[_Rec], tuple[Any, ...]]) -> list[_Rec]:
    """A copy of the policy's records with ``rec`` before the first that sorts after it,
    renumbered 0.. (what a recompile with secilc would give for a sorted list)."""
    key = order(rec)
    i = next((k for k, r in enumerate(records) if order(r) > key), len(records))
    out: list[_Rec] = list(records)
    out.insert(i, rec)
    return [r if r.position == k else r._replace(position=k) for k, r in enumerate(out)]


def _numbered(local: list[_Rec]) -> list[_Rec]:
    """Overlay records, in kernel order, numbered -n .. -1 (before the policy's 0 ..)."""
    n = len(local)
    return [r._replace(position=i - n) for i, r in enumerate(local)]


class _Work:
    """The base policy as changed so far; copies a field of the snapshot on first write."""

    def __init__(self, base: Policy) -> None:
        self.base = base
        self.snap = s = base.snap
        self.booleans: dict[str, bool] | None = None
        self.type_attrs: dict[str, frozenset[str]] | None = None
        self.attr_types: dict[str, frozenset[str]] | None = None
        self.permissive: set[str] | None = None
        self.role_types: dict[str, frozenset[str]] | None = None
        self.local_ports: list[Portcon] = []  # kernel order; positions set at the end
        self.ports: list[Portcon] = s.portcons  # the policy's records (copied on -d)
        self.local_nodes: list[Nodecon] = []
        self.nodes: list[Nodecon] = s.nodecons
        self.local_netifs: list[Netifcon] = []
        self.netifs: list[Netifcon] = s.netifcons
        self.rules: list[AVRule] = []
        self.self_rules: list[tuple[AddRule, str]] = []
        self.transitions: list[TypeTransition] = []
        self.inclusions: list[tuple[str, str]] = []  # (attribute, attribute it includes)
        self.role_attrs: list[tuple[str, str]] = []  # (role, attribute)

    # -- names ----------------------------------------------------------------
    def _ta(self) -> dict[str, frozenset[str]]:
        return self.type_attrs if self.type_attrs is not None else self.snap.type_attrs

    def _at(self) -> dict[str, frozenset[str]]:
        return self.attr_types if self.attr_types is not None else self.snap.attr_types

    def _ta_w(self) -> dict[str, frozenset[str]]:
        if self.type_attrs is None:
            self.type_attrs = dict(self.snap.type_attrs)
        return self.type_attrs

    def _at_w(self) -> dict[str, frozenset[str]]:
        if self.attr_types is None:
            self.attr_types = dict(self.snap.attr_types)
        return self.attr_types

    def _bools(self) -> dict[str, bool]:
        return self.booleans if self.booleans is not None else self.snap.booleans

    def _roles(self) -> dict[str, frozenset[str]]:
        return self.role_types if self.role_types is not None else self.snap.role_types

    def resolve_type(self, name: str) -> str | None:
        if name in self._ta():
            return name
        return self.snap.aliases.get(name)

    def exists(self, name: str) -> bool:
        return self.resolve_type(name) is not None or name in self._at()

    def require_type(self, name: str, what: str) -> str:
        t = self.resolve_type(name)
        if t is None:
            hint = " (it is an attribute; a type is needed here)" if name in self._at() else ""
            raise InputError(f"unknown type {name!r}{hint} in: {what}")
        return t

    def require_name(self, name: str, what: str) -> str:
        """A type (aliases resolved) or an attribute."""
        if name in self._at():
            return name
        t = self.resolve_type(name)
        if t is None:
            raise InputError(f"unknown type or attribute {name!r} in: {what}")
        return t

    def require_attr(self, name: str, what: str) -> str:
        if name not in self._at():
            hint = " (it is a type)" if self.resolve_type(name) is not None else ""
            raise InputError(f"unknown attribute {name!r}{hint} in: {what}")
        return name

    def require_bool(self, name: str, what: str) -> str:
        if name not in self._bools():
            raise InputError(f"unknown boolean {name!r} in: {what}")
        return name

    def context(self, text: str, what: str) -> Context:
        snap = self.snap
        text = text.strip()
        if ":" not in text:
            t = self.require_type(text, what)
            user = "system_u" if "system_u" in snap.users else sorted(snap.users)[0]
            return Context(user, "object_r", t, snap.users[user].level if snap.mls else "")
        try:
            ctx = Context.parse(text)
        except ValueError as exc:
            raise InputError(f"{exc} in: {what}") from None
        t = self.require_type(ctx.type, what)
        if ctx.user not in snap.users:
            raise InputError(f"unknown user {ctx.user!r} in: {what}")
        if ctx.role not in self._roles():
            raise InputError(f"unknown role {ctx.role!r} in: {what}")
        mls = ctx.mls
        if snap.mls:
            low, dash, high = mls.partition("-")
            mls = low.strip() if not dash or low.strip() == high.strip() else f"{low.strip()}-{high.strip()}"
            if not mls:
                mls = snap.users[ctx.user].level
            assert self.base.levels is not None
            if not self.base.levels.valid_range(mls):
                raise InputError(f"invalid MLS level/range {mls!r} in: {what}")
        elif mls:
            raise InputError(f"context {text} has an MLS part but the policy is not MLS, in: {what}")
        return Context(ctx.user, ctx.role, t, mls)

    # -- dispatch -------------------------------------------------------------
    def change(self, c: Change) -> None:
        what = c.describe()
        if isinstance(c, SetBoolean):
            self.require_bool(c.name, what)
            self._bools_w()[c.name] = bool(c.value)
        elif isinstance(c, AddBoolean):
            if c.name in self._bools():
                raise InputError(f"boolean {c.name!r} already exists, in: {what}")
            self._bools_w()[c.name] = bool(c.value)
        elif isinstance(c, (AddPortcon, ModifyPortcon, DeletePortcon)):
            self._port(c, what)
        elif isinstance(c, (AddNodecon, ModifyNodecon, DeleteNodecon)):
            self._node(c, what)
        elif isinstance(c, (AddNetifcon, ModifyNetifcon, DeleteNetifcon)):
            self._netif(c, what)
        elif isinstance(c, AddRule):
            self._rule(c, what)
        elif isinstance(c, AddType):
            if self.exists(c.name):
                raise InputError(f"type {c.name!r} already exists (as a type, alias or attribute), "
                                 f"in: {what}")
            attrs = frozenset(self.require_attr(a, what) for a in c.attributes)
            self._ta_w()[c.name] = attrs
            at = self._at_w()
            for a in attrs:
                at[a] = at[a] | {c.name}
        elif isinstance(c, AddAttribute):
            if self.exists(c.name):
                raise InputError(f"{c.name!r} already exists (as a type, alias or attribute), in: {what}")
            self._at_w()[c.name] = frozenset()
        elif isinstance(c, AddAttributeMember):
            attr = self.require_attr(c.attribute, what)
            member = self.require_name(c.type, what)
            if member in self._at():
                if member == attr:
                    raise InputError(f"attribute {attr!r} cannot include itself, in: {what}")
                self.inclusions.append((attr, member))
            else:
                self._add_member(member, attr)
        elif isinstance(c, SetPermissive):
            t = self.require_type(c.type, what)
            if self.permissive is None:
                self.permissive = set(self.snap.permissive)
            self.permissive.add(t)
        elif isinstance(c, AddRoleType):
            if c.role not in self._roles():
                raise InputError(f"unknown role {c.role!r} in: {what}")
            name = self.require_name(c.type, what)
            if name in self._at():
                self.role_attrs.append((c.role, name))
            else:
                self._add_role_type(c.role, name)
        elif isinstance(c, AddTypeTransition):
            self._transition(c, what)
        else:  # pragma: no cover - Overlay checks the change types
            raise TypeError(f"not an overlay change: {c!r}")

    def _bools_w(self) -> dict[str, bool]:
        if self.booleans is None:
            self.booleans = dict(self.snap.booleans)
        return self.booleans

    def _add_member(self, t: str, attr: str) -> None:
        ta = self._ta_w()
        if attr not in ta[t]:
            ta[t] = ta[t] | {attr}
            at = self._at_w()
            at[attr] = at[attr] | {t}

    def _add_role_type(self, role: str, t: str) -> None:
        if self.role_types is None:
            self.role_types = dict(self.snap.role_types)
        self.role_types[role] = self.role_types[role] | {t}

    # -- records --------------------------------------------------------------
    def find_port(self, protocol: str, low: int, high: int) -> Portcon | None:
        """The record the kernel would see first with exactly this key, if any."""
        key = (protocol, low, high)
        return next((p for p in [*self.local_ports, *self.ports] if (p.protocol, p.low, p.high) == key), None)

    def find_node(self, address: str, mask: str) -> Nodecon | None:
        n = _network(address, mask)
        return next((r for r in [*self.local_nodes, *self.nodes]
                     if (r.family, r.addr_int, r.mask_int) == n.key), None)

    def find_netif(self, name: str) -> Netifcon | None:
        return next((r for r in [*self.local_netifs, *self.netifs] if r.name == name), None)

    def _port(self, c: AddPortcon | ModifyPortcon | DeletePortcon, what: str) -> None:
        key = (c.protocol, c.low, c.high)
        ports = f"{c.protocol} {_ports_text(c.low, c.high)}"
        local = next((i for i, p in enumerate(self.local_ports) if (p.protocol, p.low, p.high) == key), None)
        policy = next((i for i, p in enumerate(self.ports) if (p.protocol, p.low, p.high) == key), None)
        if isinstance(c, AddPortcon):
            found = self.local_ports[local] if local is not None else (
                self.ports[policy] if policy is not None else None)
            if found is not None:
                raise InputError(f"a portcon for {ports} already exists ({found.context.type}): "
                                 f"use -m to change it; in: {what}")
            rec = Portcon(c.protocol, c.low, c.high, self.context(c.context, what), 0)
            if c.local:
                self.local_ports.insert(0, rec)
            else:
                self.ports = _sorted_insert(self.ports, rec, _port_order)
        elif isinstance(c, ModifyPortcon):
            ctx = self.context(c.context, what)
            if local is not None:
                self.local_ports[local] = self.local_ports[local]._replace(context=ctx)
            elif policy is not None:
                self.local_ports.insert(0, Portcon(c.protocol, c.low, c.high, ctx, 0))
            else:
                raise InputError(f"no portcon for exactly {ports} to modify (a port inside a wider "
                                 f"range needs -a); in: {what}")
        elif local is not None:
            del self.local_ports[local]
        elif policy is not None:
            self.ports = self.ports[:policy] + self.ports[policy + 1:]
        else:
            raise InputError(f"no portcon for exactly {ports} to delete; in: {what}")

    def _node(self, c: AddNodecon | ModifyNodecon | DeleteNodecon, what: str) -> None:
        n = _network(c.address, c.mask)
        text = f"{n.address}/{n.prefixlen}"

        def key(r: Nodecon) -> tuple[int, int, int]:
            return (r.family, r.addr_int, r.mask_int)

        local = next((i for i, r in enumerate(self.local_nodes) if key(r) == n.key), None)
        policy = next((i for i, r in enumerate(self.nodes) if key(r) == n.key), None)

        def record(ctx: Context) -> Nodecon:
            return Nodecon(n.family, n.address, n.mask, n.prefixlen, n.addr_int, n.mask_int, ctx, 0)

        if isinstance(c, AddNodecon):
            found = self.local_nodes[local] if local is not None else (
                self.nodes[policy] if policy is not None else None)
            if found is not None:
                raise InputError(f"a nodecon for {text} already exists ({found.context.type}): "
                                 f"use -m to change it; in: {what}")
            rec = record(self.context(c.context, what))
            if c.local:
                self._insert_node(rec)
            else:
                self.nodes = _sorted_insert(self.nodes, rec, _node_order)
        elif isinstance(c, ModifyNodecon):
            ctx = self.context(c.context, what)
            if local is not None:
                self.local_nodes[local] = self.local_nodes[local]._replace(context=ctx)
            elif policy is not None:
                self._insert_node(record(ctx))
            else:
                raise InputError(f"no nodecon for exactly {text} to modify; in: {what}")
        elif local is not None:
            del self.local_nodes[local]
        elif policy is not None:
            self.nodes = self.nodes[:policy] + self.nodes[policy + 1:]
        else:
            raise InputError(f"no nodecon for exactly {text} to delete; in: {what}")

    def _insert_node(self, rec: Nodecon) -> None:
        # libsemanage sorts local nodes least specific first and prepends each:
        # the most specific local record is seen first.
        i = 0
        while i < len(self.local_nodes) and self.local_nodes[i].prefixlen > rec.prefixlen:
            i += 1
        self.local_nodes.insert(i, rec)

    def _netif(self, c: AddNetifcon | ModifyNetifcon | DeleteNetifcon, what: str) -> None:
        local = next((i for i, r in enumerate(self.local_netifs) if r.name == c.name), None)
        policy = next((i for i, r in enumerate(self.netifs) if r.name == c.name), None)
        if isinstance(c, DeleteNetifcon):
            if local is not None:
                del self.local_netifs[local]
            elif policy is not None:
                self.netifs = self.netifs[:policy] + self.netifs[policy + 1:]
            else:
                raise InputError(f"no netifcon for {c.name} to delete; in: {what}")
            return
        ctx = self.context(c.context, what)
        pkt = self.context(c.packet_context, what) if c.packet_context is not None else ctx
        if isinstance(c, AddNetifcon):
            if local is not None or policy is not None:
                raise InputError(f"a netifcon for {c.name} already exists: use -m to change it; in: {what}")
            if c.local:
                self.local_netifs.insert(0, Netifcon(c.name, ctx, pkt, 0))
            else:
                self.netifs = _sorted_insert(self.netifs, Netifcon(c.name, ctx, pkt, 0), _netif_order)
        elif local is not None:
            self.local_netifs[local] = self.local_netifs[local]._replace(context=ctx, packet_context=pkt)
        elif policy is not None:
            # sepol_iface_modify replaces a record with the same name in place.
            self.netifs = list(self.netifs)
            self.netifs[policy] = self.netifs[policy]._replace(context=ctx, packet_context=pkt)
        else:
            raise InputError(f"no netifcon for {c.name} to modify (use -a); in: {what}")

    # -- rules ------------------------------------------------------------------
    def _class(self, tclass: str, what: str) -> frozenset[str]:
        perms = self.snap.classes.get(tclass)
        if perms is None:
            raise InputError(f"unknown class {tclass!r} in: {what}")
        if tclass not in SNAPSHOT_CLASSES:
            raise InputError(f"class {tclass} is not a network class (selnet models only the network "
                             f"classes and fd), in: {what}")
        return perms

    def _rule(self, c: AddRule, what: str) -> None:
        perms = self._class(c.tclass, what)
        unknown = sorted(c.perms - perms)
        if unknown:
            raise InputError(f"unknown permission{'s' if len(unknown) > 1 else ''} "
                             f"{', '.join(unknown)} in class {c.tclass}, in: {what}")
        src = self.require_name(c.source, what)
        if c.cond is not None:
            self._check_cond(c.cond, what)
        if c.target == "self":
            self.self_rules.append((c, src))
            return
        tgt = self.require_name(c.target, what)
        self.rules.append(AVRule(c.ruletype, src, tgt, c.tclass, c.perms, c.cond, bool(c.branch)))

    def _check_cond(self, cond: CondExpr, what: str) -> None:
        for tok in cond:
            if tok not in OPERATORS:
                self.require_bool(tok, what)

    def _transition(self, c: AddTypeTransition, what: str) -> None:
        self._class(c.tclass, what)
        src = self.require_name(c.source, what)
        tgt = c.source if c.target == "self" else c.target
        tgt = self.require_name(tgt, what)
        default = self.require_type(c.default, what)
        for tt in [*self.snap.transitions, *self.transitions]:
            if (tt.source, tt.target, tt.tclass) == (src, tgt, c.tclass):
                raise InputError(f"a type_transition for {src} {tgt}:{c.tclass} already exists "
                                 f"({tt.default}), in: {what}")
        self.transitions.append(TypeTransition(src, tgt, c.tclass, default))

    # -- the result ---------------------------------------------------------------
    def finish(self, overlay: Overlay) -> Policy:
        s = self.snap
        for attr, inner in self._closure():
            self._add_member(inner, attr)
        at = self._at()
        for role, attr in self.role_attrs:
            for t in sorted(at[attr]):
                self._add_role_type(role, t)
        rules = list(self.rules)
        for c, src in self.self_rules:
            for t in sorted(at.get(src, frozenset((src,)))):
                rules.append(AVRule(c.ruletype, t, t, c.tclass, c.perms, c.cond, bool(c.branch)))

        fields: dict[str, Any] = {}
        if self.booleans is not None:
            fields["booleans"] = self.booleans
        if self.type_attrs is not None:
            fields["type_attrs"] = self.type_attrs
        if self.attr_types is not None:
            fields["attr_types"] = self.attr_types
            constraints = self._constraints(self.attr_types)
            if constraints is not None:
                fields["constraints"] = constraints
        if self.permissive is not None:
            fields["permissive"] = frozenset(self.permissive)
        if self.role_types is not None:
            fields["role_types"] = self.role_types
        if self.local_ports or self.ports is not s.portcons:
            fields["portcons"] = _numbered(self.local_ports) + self.ports
        if self.local_nodes or self.nodes is not s.nodecons:
            fields["nodecons"] = _numbered(self.local_nodes) + self.nodes
        if self.local_netifs or self.netifs is not s.netifcons:
            fields["netifcons"] = _numbered(self.local_netifs) + self.netifs
        if rules:
            fields["rules"] = s.rules + rules
        if self.transitions:
            fields["transitions"] = s.transitions + self.transitions
        snap = s.replace(**fields)
        return Policy.layered(self.base, snap, overlay, new_rules=rules, new_transitions=self.transitions)

    def _closure(self) -> Iterable[tuple[str, str]]:
        """Attribute inclusions as (attribute, member type) pairs, to a fixpoint."""
        if not self.inclusions:
            return []
        at = self._at()
        members: dict[str, set[str]] = {}
        changed = True
        while changed:
            changed = False
            for outer, inner in self.inclusions:
                have = members.setdefault(outer, set(at[outer]))
                new = (members.get(inner) or set(at[inner])) - have
                if new:
                    have |= new
                    changed = True
        return [(outer, t) for outer, ts in members.items() for t in sorted(ts - at[outer])]

    def _constraints(self, attr_types: dict[str, frozenset[str]]) -> list[Constraint] | None:
        """Constraints with attribute operands extended by the attributes' new members."""
        base_at = self.snap.attr_types
        added = {a: ts - base_at.get(a, frozenset()) for a, ts in attr_types.items()
                 if ts is not base_at.get(a)}
        added = {a: ts for a, ts in added.items() if ts}
        if not added or not self.snap.constraints:
            return None
        out: list[Constraint] = []
        changed = False
        for con, operands in zip(self.snap.constraints, _constraint_operands(self.base), strict=True):
            postfix = list(con.postfix)
            if operands is None:
                # Text and postfix could not be aligned: a set operand that holds every
                # base member of an attribute is taken to name it.
                operands = [(i, tuple(a for a in added if base_at.get(a) and base_at[a] <= tok))
                            for i, tok in enumerate(postfix) if isinstance(tok, frozenset)]
            for i, names in operands:
                extra = frozenset[str]().union(*(added[n] for n in names if n in added))
                tok = postfix[i]
                have = tok if isinstance(tok, frozenset) else frozenset((tok,))
                if extra and not extra <= have:
                    postfix[i] = have | extra
            if postfix != list(con.postfix):
                changed = True
                out.append(con._replace(postfix=tuple(postfix)))
            else:
                out.append(con)
        return out if changed else None
