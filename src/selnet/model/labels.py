"""Port, node and netif labels, looked up exactly as the kernel does (services.c).

First match in the compiled policy's order (kernel-network-checks.md 6.1-6.4);
no match falls back to the ``port``/``node``/``netif`` initial SID.  Each result
also lists the records that contain the query but lose, and why.
"""

from __future__ import annotations

import ipaddress
import weakref
from bisect import bisect_right
from typing import NamedTuple

from selnet.errors import InputError
from selnet.kernel.classes import PORT_PROTOCOLS
from selnet.policy.index import Policy
from selnet.policy.snapshot import Context, Netifcon, Nodecon, Portcon

Record = Portcon | Nodecon | Netifcon


class Shadowed(NamedTuple):
    record: Record
    reason: str


class LabelResult(NamedTuple):
    kind: str  # port, node, netif
    query: str
    context: Context
    attributes: tuple[str, ...]
    matched: Record | None  # None: the initial SID was used
    initial_sid: str | None
    shadowed: tuple[Shadowed, ...] = ()

    @property
    def type(self) -> str:
        return self.context.type


def _result(
    policy: Policy,
    kind: str,
    query: str,
    matches: list[Record],
    sid: str,
) -> LabelResult:
    if matches:
        first = matches[0]
        ctx = first.context
        shadowed = tuple(
            Shadowed(r, f"comes after {first.describe()} in the policy's order (first match wins)")
            for r in matches[1:]
        )
        return LabelResult(kind, query, ctx, _attrs(policy, ctx.type), first, None, shadowed)
    initial = policy.snap.initial_sids.get(sid)
    if initial is None:
        raise InputError(f"policy has no '{sid}' initial SID")
    return LabelResult(kind, query, initial, _attrs(policy, initial.type), None, sid)


def _attrs(policy: Policy, type_name: str) -> tuple[str, ...]:
    return tuple(sorted(policy.snap.type_attrs.get(type_name, ())))


# -- ports -------------------------------------------------------------------
MAX_DIGITS = 10  # enough for any port, pid or serial; int() refuses more than 4300 digits


def is_number(text: str, max_digits: int = MAX_DIGITS) -> bool:
    """ASCII digits only, and at most ``max_digits`` of them: str.isdigit() also accepts
    '¹' and other digits int() rejects, and int() of a huge digit string raises (or costs
    quadratic time), so a caller may int() the text whenever this is True."""
    return 0 < len(text) <= max_digits and text.isascii() and text.isdigit()


def shown(text: str, limit: int = 40) -> str:
    """``repr`` of user input for a one-line message, cut when it is long."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


def parse_port(text: str, default_proto: str = "tcp") -> tuple[int, str]:
    """``8080/tcp`` or ``8080`` -> (8080, "tcp"); rejects 0 and > 65535."""
    num, _, proto = text.strip().partition("/")
    proto = (proto or default_proto).lower()
    if proto not in PORT_PROTOCOLS:
        raise InputError(
            f"unknown protocol {shown(proto)} (expected one of {', '.join(PORT_PROTOCOLS)})")
    if not is_number(num):
        if num.isascii() and num.isdigit():
            raise InputError(f"port {shown(num)} out of range 1-65535")
        raise InputError(f"not a port number: {shown(num)}")
    port = int(num)
    if not 1 <= port <= 65535:
        raise InputError(f"port {port} out of range 1-65535")
    return port, proto


class PortInterval(NamedTuple):
    """A run of ports with one first-match answer (a NamedTuple, not a frozen dataclass: a
    policy with 30,000 portcons makes some 60,000, ten times faster so)."""

    low: int
    high: int
    context: Context
    record: Portcon | None  # None: no portcon covers it, the ``port`` initial SID

    @property
    def initial_sid(self) -> bool:
        return self.record is None


class PortMap:
    """Per protocol, the kernel's first-match answer for 1-65535 as sorted, disjoint intervals.

    ``segments`` keeps one interval per run owned by one record (for lookups that
    must name the record); ``intervals`` merges neighbours with the same context
    (for profiles, which reason per context).  A plain class (see LabelResult).
    """

    __slots__ = ("_by_context", "_lows", "intervals", "segments")

    def __init__(self, segments: dict[str, tuple[PortInterval, ...]]) -> None:
        self.segments = segments
        self.intervals = {p: _merged(segs) for p, segs in segments.items()}
        self._lows = {p: [iv.low for iv in segs] for p, segs in segments.items()}
        # Per protocol, context -> its ranges, built on first use: profiles ask for one
        # context's ranges per decision, and rebuilding the map each time was quadratic
        # in port types (issue 13).
        self._by_context: dict[str, dict[Context, tuple[tuple[int, int], ...]]] = {}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PortMap):
            return NotImplemented
        return self.segments == other.segments  # the rest is derived from them

    __hash__ = None  # type: ignore[assignment]  # mutable memo inside, as a dataclass's

    def lookup(self, proto: str, port: int) -> PortInterval:
        i = bisect_right(self._lows[proto], port) - 1
        return self.segments[proto][i]

    def contexts(self, proto: str) -> list[Context]:
        return list(self.context_ranges(proto))

    def context_ranges(self, proto: str) -> dict[Context, tuple[tuple[int, int], ...]]:
        """Context -> its ranges in port order, contexts in order of their first port.
        Built once per protocol and shared: callers must not change it."""
        got = self._by_context.get(proto)
        if got is None:
            acc: dict[Context, list[tuple[int, int]]] = {}
            for iv in self.intervals[proto]:
                acc.setdefault(iv.context, []).append((iv.low, iv.high))
            got = self._by_context[proto] = {c: tuple(rs) for c, rs in acc.items()}
        return got

    def ranges(self, proto: str) -> dict[Context, list[tuple[int, int]]]:
        """The same as :meth:`context_ranges`, as a new dict of lists the caller owns."""
        return {c: list(rs) for c, rs in self.context_ranges(proto).items()}


_PORT_MAPS: weakref.WeakKeyDictionary[Policy, PortMap] = weakref.WeakKeyDictionary()


def port_map(policy: Policy) -> PortMap:
    """Built once per policy from the portcons in binary order (first match wins)."""
    got = _PORT_MAPS.get(policy)
    if got is None and policy.base is not policy and \
            policy.snap.portcons is policy.base.snap.portcons and \
            policy.snap.initial_sids is policy.base.snap.initial_sids:
        # An overlay that leaves the portcons alone (a rule, a boolean: every fix the
        # engine verifies but port labels) has its base's map.
        got = port_map(policy.base)
        _PORT_MAPS[policy] = got
    if got is None:
        initial = policy.snap.initial_sids.get("port")
        if initial is None:
            raise InputError("policy has no 'port' initial SID")
        segments = {p: _segments(policy.snap.portcons, p, initial) for p in PORT_PROTOCOLS}
        got = PortMap(segments)
        _PORT_MAPS[policy] = got
    return got


def _segments(portcons: list[Portcon], proto: str, initial: Context) -> tuple[PortInterval, ...]:
    pcs = [pc for pc in portcons if pc.protocol == proto and pc.high >= 1 and pc.low <= 65535]
    disjoint = _disjoint(pcs, initial)
    if disjoint is not None:
        return disjoint
    cuts = {1, 65536}
    for pc in pcs:
        cuts.add(max(pc.low, 1))
        cuts.add(min(pc.high, 65535) + 1)
    starts = sorted(cuts)
    index = {v: k for k, v in enumerate(starts)}
    n = len(starts) - 1
    owner: list[Portcon | None] = [None] * n
    # nxt[k]: the first piece at or after k that no record owns yet (path-compressed), so
    # each piece is claimed once however many records overlap it: linear, not records x pieces.
    nxt = list(range(n + 1))

    def free(k: int) -> int:
        root = k
        while nxt[root] != root:
            root = nxt[root]
        while nxt[k] != root:
            nxt[k], k = root, nxt[k]
        return root

    for pc in pcs:  # binary order: the first record to claim a piece owns it
        i = index[max(pc.low, 1)]
        j = index[min(pc.high, 65535) + 1]
        if j == i + 1 and nxt[i] == i:  # the common case: one piece, still free
            owner[i] = pc
            nxt[i] = j
            continue
        k = free(i)
        while k < j:
            owner[k] = pc
            nxt[k] = k + 1
            k = free(k + 1)
    # One interval per run of pieces owned by one record.
    out: list[PortInterval] = []
    low, last = starts[0], owner[0] if owner else None
    for k in range(1, n):
        rec = owner[k]
        if rec is not last and rec != last:
            out.append(PortInterval(low, starts[k] - 1, last.context if last else initial, last))
            low, last = starts[k], rec
    out.append(PortInterval(low, 65535, last.context if last else initial, last))
    return tuple(out)


def _disjoint(pcs: list[Portcon], initial: Context) -> tuple[PortInterval, ...] | None:
    """The segments when no two records overlap (binary order cannot matter then), in one
    pass over the records sorted by port; None when some do."""
    srt = sorted(pcs, key=lambda pc: pc.low)
    out: list[PortInterval] = []
    nxt = 1  # the first port not yet covered
    for pc in srt:
        low, high = max(pc.low, 1), min(pc.high, 65535)
        if low < nxt:
            return None
        if low > nxt:
            out.append(PortInterval(nxt, low - 1, initial, None))
        out.append(PortInterval(low, high, pc.context, pc))
        nxt = high + 1
    if nxt <= 65535:
        out.append(PortInterval(nxt, 65535, initial, None))
    return tuple(out)


def _merged(segments: tuple[PortInterval, ...]) -> tuple[PortInterval, ...]:
    out: list[PortInterval] = []
    for iv in segments:
        last = out[-1] if out else None
        if last and last.context == iv.context and last.initial_sid == iv.initial_sid:
            out[-1] = PortInterval(last.low, iv.high, iv.context, last.record)
        else:
            out.append(iv)
    return tuple(out)


def port_label(
    policy: Policy, protocol: str, port: int, *, with_shadowed: bool = True
) -> LabelResult:
    if not with_shadowed:
        # Bulk lookups (profiles, every-port scans) use the first-match interval map.
        rec = port_map(policy).lookup(protocol, port).record
        first: list[Record] = [] if rec is None else [rec]
        return _result(policy, "port", f"{port}/{protocol}", first, "port")
    matches: list[Record] = [
        pc
        for pc in policy.snap.portcons
        if pc.protocol == protocol and pc.low <= port <= pc.high
    ]
    return _result(policy, "port", f"{port}/{protocol}", matches, "port")


# -- nodes -------------------------------------------------------------------
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_address(text: str) -> IPAddress:
    t = text.strip()
    if t.startswith("[") and t.endswith("]"):
        t = t[1:-1]
    try:
        return ipaddress.ip_address(t)
    except ValueError:
        raise InputError(f"not an IPv4 or IPv6 address: {shown(text)}") from None


def node_label(policy: Policy, address: IPAddress) -> LabelResult:
    # An IPv4-mapped IPv6 address stays IPv6: the kernel looks it up in the
    # IPv6 nodecon table as a 128-bit address (it is not translated).
    fam = 4 if isinstance(address, ipaddress.IPv4Address) else 6
    value = int(address)
    matches: list[Record] = [
        nc
        for nc in policy.snap.nodecons
        if nc.family == fam and (value & nc.mask_int) == nc.addr_int
    ]
    return _result(policy, "node", address_text(address), matches, "node")


def address_text(address: IPAddress) -> str:
    """Addresses as the kernel prints them (an IPv4-mapped address keeps its dotted quad)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return f"::ffff:{address.ipv4_mapped}"
    return str(address)


# -- network interfaces --------------------------------------------------------
def match_wildcard(pattern: str, name: str) -> bool:
    """The kernel's match_wildcard: only ``*`` and ``?`` are special."""
    p = n = 0
    star = -1
    mark = 0
    while n < len(name):
        if p < len(pattern) and (pattern[p] == "?" or pattern[p] == name[n]):
            p += 1
            n += 1
        elif p < len(pattern) and pattern[p] == "*":
            star, mark = p, n
            p += 1
        elif star != -1:
            p = star + 1
            mark += 1
            n = mark
        else:
            return False
    while p < len(pattern) and pattern[p] == "*":
        p += 1
    return p == len(pattern)


def check_netif_name(name: str) -> str:
    if not name or len(name) > 15 or "/" in name or any(c.isspace() for c in name):
        raise InputError(f"not a network interface name: {shown(name)}")
    return name


def netif_label(policy: Policy, name: str) -> LabelResult:
    wildcard = "netif_wildcard" in policy.snap.polcaps
    matches: list[Record] = []
    for nc in policy.snap.netifcons:
        if nc.name == name or (wildcard and match_wildcard(nc.name, name)):
            matches.append(nc)
    return _result(policy, "netif", name, matches, "netif")
