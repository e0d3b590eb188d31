"""The network-relevant content of one compiled policy, as plain data.

Everything selnet decides is computed from a :class:`PolicySnapshot`.  It is
extracted once (:mod:`selnet.policy.extract`) and cached per policy sha256
(:mod:`selnet.policy.cache`), so a warm run never loads setools.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from selnet.policy.conditions import CondExpr, infix

# Bump when the layout below changes: older caches are then rebuilt.
SNAPSHOT_FORMAT = 6  # 6: the fd class's rules and constraints

# The records below are NamedTuples, not dataclasses: they are rebuilt from the
# cache several times faster, which was most of a warm run's cost on a full policy.



class Context(NamedTuple):
    """A security context; ``mls`` is the level or range text ("" when MLS is off)."""

    user: str
    role: str
    type: str
    mls: str = ""

    def __str__(self) -> str:
        base = f"{self.user}:{self.role}:{self.type}"
        return f"{base}:{self.mls}" if self.mls else base

    @classmethod
    def parse(cls, text: str) -> Context:
        parts = text.strip().split(":", 3)
        if len(parts) < 3 or not all(parts[:3]):
            raise ValueError(f"not a security context: {text!r}")
        return cls(parts[0], parts[1], parts[2], parts[3] if len(parts) == 4 else "")


class Portcon(NamedTuple):
    protocol: str  # tcp, udp, dccp, sctp
    low: int
    high: int
    context: Context
    position: int  # index in the binary policy's portcon list

    def describe(self) -> str:
        ports = str(self.low) if self.low == self.high else f"{self.low}-{self.high}"
        return f"portcon {self.protocol} {ports} {self.context}"


class Nodecon(NamedTuple):
    family: int  # 4 or 6
    address: str  # network address text as the policy stores it
    mask: str  # netmask text
    prefixlen: int
    addr_int: int
    mask_int: int
    context: Context
    position: int

    def describe(self) -> str:
        return f"nodecon ipv{self.family} {self.address}/{self.prefixlen} {self.context}"


class Netifcon(NamedTuple):
    name: str
    context: Context
    packet_context: Context
    position: int

    def describe(self) -> str:
        return f"netifcon {self.name} {self.context} {self.packet_context}"


class AVRule(NamedTuple):
    """One access-vector rule of a network-relevant class (or ``fd``), unexpanded.

    ``source``/``target`` are a type or an attribute name as the binary policy
    stores them; expansion happens through :attr:`PolicySnapshot.type_attrs`.
    """

    ruletype: str  # allow, auditallow, dontaudit, neverallow is not in kernel policy
    source: str
    target: str
    tclass: str
    perms: frozenset[str]
    cond: CondExpr | None = None
    branch: bool = True  # the rule applies when the condition evaluates to this

    def te(self) -> str:
        """The rule as TE a policy writer can paste: every permission, and a conditional
        rule inside its ``if`` block (the false branch as ``else``)."""
        perms = sorted(self.perms)
        ptext = perms[0] if len(perms) == 1 else "{ " + " ".join(perms) + " }"
        text = f"{self.ruletype} {self.source} {self.target}:{self.tclass} {ptext};"
        if self.cond is None:
            return text
        expr = infix(self.cond)
        return f"if ({expr}) {{ {text} }}" if self.branch else f"if ({expr}) {{ }} else {{ {text} }}"

    def sesearch(self) -> str:
        """The rule the way sesearch prints it."""
        perms = sorted(self.perms)
        ptext = perms[0] if len(perms) == 1 else "{ " + " ".join(perms) + " }"
        text = f"{self.ruletype} {self.source} {self.target}:{self.tclass} {ptext};"
        if self.cond is not None:
            text += f" [ {infix(self.cond)} ]:{self.branch}"
        return text


class TypeTransition(NamedTuple):
    source: str
    target: str
    tclass: str
    default: str
    cond: CondExpr | None = None
    branch: bool = True


class Constraint(NamedTuple):
    """A constrain/mlsconstrain in postfix; type/role/user operands expanded to names."""

    tclass: str
    perms: frozenset[str]
    mls: bool
    postfix: tuple[str | frozenset[str], ...]
    text: str  # as setools prints the statement


class UserInfo(NamedTuple):
    roles: frozenset[str]
    level: str  # default level ("" without MLS)
    range: str  # allowed range ("" without MLS)


class PolicySnapshot:
    """A plain class with slots, not a dataclass: a warm `label` then never imports
    ``dataclasses`` (~10 ms with the classes it builds, a fifth of that run).  Equal
    when every field is; :meth:`replace` is ``dataclasses.replace``."""

    sha256: str
    path: str
    version: int
    mls: bool
    handle_unknown: str  # allow, deny, reject
    polcaps: frozenset[str]
    classes: dict[str, frozenset[str]]  # every class -> its permissions (common included)
    initial_sids: dict[str, Context]
    portcons: list[Portcon]
    nodecons: list[Nodecon]
    netifcons: list[Netifcon]
    type_attrs: dict[str, frozenset[str]]  # type -> attributes it has
    attr_types: dict[str, frozenset[str]]  # attribute -> its member types
    aliases: dict[str, str]  # alias -> type
    booleans: dict[str, bool]  # name -> default state
    permissive: frozenset[str]
    bounds: dict[str, str]  # child type -> parent type
    rules: list[AVRule]
    transitions: list[TypeTransition]
    constraints: list[Constraint]
    users: dict[str, UserInfo]
    role_types: dict[str, frozenset[str]]
    sensitivities: tuple[str, ...]  # in dominance order, lowest first
    categories: tuple[str, ...]  # in declaration order
    sens_aliases: dict[str, str]
    cat_aliases: dict[str, str]

    # The fields are the annotations above, in order; __init__ names the same (a test
    # checks).
    __slots__ = tuple(__annotations__)

    def __init__(
        self, *,
        sha256: str,
        path: str,
        version: int,
        mls: bool,
        handle_unknown: str,
        polcaps: frozenset[str],
        classes: dict[str, frozenset[str]],
        initial_sids: dict[str, Context],
        portcons: list[Portcon],
        nodecons: list[Nodecon],
        netifcons: list[Netifcon],
        type_attrs: dict[str, frozenset[str]],
        attr_types: dict[str, frozenset[str]],
        aliases: dict[str, str],
        booleans: dict[str, bool],
        permissive: frozenset[str],
        bounds: dict[str, str],
        rules: list[AVRule],
        transitions: list[TypeTransition],
        constraints: list[Constraint],
        users: dict[str, UserInfo],
        role_types: dict[str, frozenset[str]],
        sensitivities: tuple[str, ...],
        categories: tuple[str, ...],
        sens_aliases: dict[str, str] | None = None,
        cat_aliases: dict[str, str] | None = None,
    ) -> None:
        self.sha256 = sha256
        self.path = path
        self.version = version
        self.mls = mls
        self.handle_unknown = handle_unknown
        self.polcaps = polcaps
        self.classes = classes
        self.initial_sids = initial_sids
        self.portcons = portcons
        self.nodecons = nodecons
        self.netifcons = netifcons
        self.type_attrs = type_attrs
        self.attr_types = attr_types
        self.aliases = aliases
        self.booleans = booleans
        self.permissive = permissive
        self.bounds = bounds
        self.rules = rules
        self.transitions = transitions
        self.constraints = constraints
        self.users = users
        self.role_types = role_types
        self.sensitivities = sensitivities
        self.categories = categories
        self.sens_aliases = sens_aliases if sens_aliases is not None else {}
        self.cat_aliases = cat_aliases if cat_aliases is not None else {}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PolicySnapshot):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in SNAPSHOT_FIELDS)

    __hash__ = None  # type: ignore[assignment]  # mutable, as the dataclass was

    def __repr__(self) -> str:
        return f"PolicySnapshot(sha256={self.sha256!r}, path={self.path!r})"

    def replace(self, **changes: Any) -> PolicySnapshot:
        """A new snapshot: these fields changed, every other shared with this one."""
        unknown = changes.keys() - set(SNAPSHOT_FIELDS)
        if unknown:
            raise TypeError(f"PolicySnapshot has no field {sorted(unknown)[0]!r}")
        new = PolicySnapshot.__new__(PolicySnapshot)
        for f in SNAPSHOT_FIELDS:
            setattr(new, f, changes[f] if f in changes else getattr(self, f))
        return new

    def resolve_type(self, name: str) -> str | None:
        """A type name (aliases resolved) or None when the policy has no such type."""
        if name in self.type_attrs:
            return name
        return self.aliases.get(name)


# The snapshot's fields in order (the cache encodes them by name).
SNAPSHOT_FIELDS: tuple[str, ...] = PolicySnapshot.__slots__
