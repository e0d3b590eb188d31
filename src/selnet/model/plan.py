"""Operations -> the ordered checks the kernel makes (kernel-network-checks.md 1-5, 7, 12).

Every :class:`Check` is an instance of an entry of the kernel check table
(:mod:`selnet.kernel.checks`), which names the function that makes it.  The model knows
nothing of the policy's rules: it only needs labels (socket transitions, port, node and
netif lookups, initial SIDs) and policy capabilities.  Deciding the checks is
:mod:`selnet.decide`'s job.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from selnet.errors import InputError
from selnet.kernel import checks as K
from selnet.kernel.checks import KernelCheck
from selnet.kernel.classes import (
    BIND_SERVICE_PROTOCOLS,
    CONNECTION_PROTOCOLS,
    NAME_CONNECT_CLASSES,
    PORT_PROTOCOLS,
    PROTOCOLS,
    socket_class,
)
from selnet.model.env import NetEnv
from selnet.model.labels import (
    IPAddress,
    LabelResult,
    is_number,
    netif_label,
    node_label,
    parse_address,
    port_label,
    shown,
)
from selnet.notes import Note, note
from selnet.policy.index import Policy
from selnet.policy.snapshot import Context

OPERATIONS = ("connect", "listen", "bind", "send")


@dataclass(frozen=True, slots=True)
class Endpoint:
    address: IPAddress
    port: int
    proto: str

    @property
    def family(self) -> int:
        return 4 if isinstance(self.address, ipaddress.IPv4Address) else 6

    def __str__(self) -> str:
        a = f"[{self.address}]" if self.family == 6 else str(self.address)
        return f"{a}:{self.port}/{self.proto}"


def parse_endpoint(text: str, default_proto: str = "tcp", need_port: bool = True) -> Endpoint:
    """``127.0.0.1:5432/tcp``, ``[::1]:80``, ``[::ffff:127.0.0.1]:80/udp``; raw/icmp may omit the port."""
    body, slash, proto = text.strip().rpartition("/")
    if not slash:
        body, proto = text.strip(), default_proto
    proto = proto.lower()
    if proto not in PROTOCOLS:
        raise InputError(
            f"unknown protocol {shown(proto)} (expected one of {', '.join(PROTOCOLS)})")
    if body.startswith("["):
        addr_text, _, rest = body[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else rest
        if rest and not rest.startswith(":"):
            raise InputError(f"malformed address {shown(text)} (use [IPv6]:PORT)")
    elif body.count(":") == 1:
        addr_text, _, port_text = body.partition(":")
    elif body.count(":") > 1:
        raise InputError(f"malformed address {shown(text)}: write IPv6 addresses as [ADDR]:PORT")
    else:
        addr_text, port_text = body, ""
    addr = parse_address(addr_text)
    if not port_text:
        if need_port and proto not in ("raw", "icmp"):
            raise InputError(f"{shown(text)}: a port is needed (ADDR:PORT)")
        port = 0
    else:
        if not is_number(port_text):
            if port_text.isascii() and port_text.isdigit():
                raise InputError(f"port {shown(port_text)} out of range 0-65535")
            raise InputError(f"not a port number: {shown(port_text)}")
        port = int(port_text)
        if port > 65535:
            raise InputError(f"port {port} out of range 0-65535")
    return Endpoint(addr, port, proto)


def unbound_endpoint(text: str | None) -> Endpoint | None:
    """``listen`` without an address: nothing, or only a protocol (``tcp``, ``sctp6``):
    the wildcard of that family with port 0 (the port listen() picks)."""
    t = (text or "tcp").strip().lower().lstrip("/")
    proto, six = (t[:-1], True) if t.endswith("6") else (t, False)
    if proto not in PROTOCOLS:
        return None
    return Endpoint(ipaddress.ip_address("::" if six else "0.0.0.0"), 0, proto)


def parse_bind(text: str, proto: str) -> Endpoint:
    """``--bind`` value: ``ADDR``, ``ADDR:PORT``, ``[IPv6]``, ``[IPv6]:PORT`` or a bare IPv6 address."""
    t = text.strip()
    if not t.startswith("[") and t.count(":") > 1:  # a bare IPv6 address: no port
        return Endpoint(parse_address(t), 0, proto)
    if t.endswith("]") or ":" not in t:  # no port given: the kernel picks one (port 0)
        t += ":0"
    return parse_endpoint(f"{t}/{proto}", need_port=False)


@dataclass(frozen=True, slots=True)
class Check:
    """One check of a plan: a table entry with its subject and target resolved."""

    spec: KernelCheck
    step: str  # socket, bind, connect, listen, accept, send, recv, rx, tx
    subject: Context
    target: Context
    tclass: str
    label: LabelResult | None = None  # the lookup that produced the target
    phase: str = ""  # packets: which exchange (connect, SYN-ACK, ...); "accepted" socket
    # the earlier check this one is made after only when it passes (IPsec: the SA after
    # polmatch); an enforced denial of that one leaves this one unmade
    needs: Check | None = None
    # the check this one is made with, in one avc_has_perm call (file_has_perm's read and
    # write): reached whenever that one is, even when that one is denied
    same_call: Check | None = None

    @property
    def hook(self) -> str:
        return self.spec.hook

    @property
    def perm(self) -> str:
        return self.spec.perm

    @property
    def errno(self) -> str:
        return self.spec.errno

    @property
    def kind(self) -> str:
        return "capability" if self.spec.tclass == K.CAP_CLASS else "avc"


@dataclass(slots=True)
class Scenario:
    """One operation with everything that determines its checks."""

    operation: str
    domain: Context
    endpoint: Endpoint
    env: NetEnv = field(default_factory=NetEnv)
    bind: Endpoint | None = None  # connect, send: an explicit bind() first
    sockcreate: Context | None = None
    fastopen: bool = False
    unbound: bool = False  # listen: no bind(); listen() autobinds (inet_csk_listen_start)


@dataclass(slots=True)
class CheckPlan:
    scenario: Scenario
    sclass: str
    sock: Context  # the socket's label
    sock_origin: str  # domain, type_transition, sockcreate
    checks: list[Check]
    notes: list[Note]


def socket_label(
    policy: Policy,
    domain: Context,
    sclass: str,
    bools: Mapping[str, bool],
    sockcreate: Context | None = None,
) -> tuple[Context, str]:
    """socket_sockcreate_sid: the sockcreate context, else a type_transition, else the task.

    Returns the label and where it came from (sockcreate, type_transition, domain).
    """
    if sockcreate is not None:
        return sockcreate, "sockcreate"
    tt = policy.transition(domain.type, domain.type, sclass, bools)
    if tt is not None:
        # security_compute_sid: sockets keep the task's user, role and full range.
        return Context(domain.user, domain.role, tt.default, domain.mls), "type_transition"
    return domain, "domain"


# sockperm(step, check id): append a task -> socket check (sock_has_perm)
SockPerm = Callable[[str, str], None]


@dataclass(slots=True)
class _Plan:
    """The state one operation's steps append to."""

    sc: Scenario
    sclass: str
    sock: Context
    checks: list[Check]
    notes: list[Note]
    sockperm: SockPerm
    skip_sock_perm: bool  # a kernel-SID socket: sock_has_perm checks are skipped


class KernelModel:
    def __init__(self, policy: Policy, bools: dict[str, bool]) -> None:
        self.policy = policy
        self.bools = bools
        self.polcaps = policy.snap.polcaps

    # -- labels ---------------------------------------------------------------
    def _initial(self, name: str) -> Context:
        ctx = self.policy.snap.initial_sids.get(name)
        if ctx is None:
            raise InputError(f"policy has no '{name}' initial SID")
        return ctx

    def socket_label(self, sc: Scenario, sclass: str) -> tuple[Context, str]:
        return socket_label(self.policy, sc.domain, sclass, self.bools, sc.sockcreate)

    def _port(self, proto: str, port: int) -> tuple[Context, LabelResult | None]:
        if proto not in PORT_PROTOCOLS:
            # raw/ping sockets carry an IP protocol number: no portcon can match.
            return self._initial("port"), None
        lab = port_label(self.policy, proto, port)
        return lab.context, lab

    def _node(self, addr: IPAddress) -> tuple[Context, LabelResult]:
        lab = node_label(self.policy, addr)
        return lab.context, lab

    def _netif(self, name: str) -> tuple[Context, LabelResult]:
        lab = netif_label(self.policy, name)
        return lab.context, lab

    # -- the plan -------------------------------------------------------------
    def plan(self, sc: Scenario) -> CheckPlan:
        ep = sc.endpoint
        sclass = socket_class(ep.proto, self.polcaps)
        sock, origin = self.socket_label(sc, sclass)
        notes: list[Note] = []
        checks: list[Check] = []
        dom = sc.domain
        kernel_ctx = self.policy.snap.initial_sids.get("kernel")
        skip_sock_perm = sock == kernel_ctx
        if skip_sock_perm:
            notes.append(note("kernel-sid-socket"))
        if origin == "type_transition":
            notes.append(note("socket-type-transition", type=sock.type, tclass=sclass))
        elif origin == "sockcreate":
            notes.append(note("socket-sockcreate", context=sock))
        if ep.proto in ("sctp", "icmp") and sclass == "rawip_socket":
            notes.append(note("no-extended-socket-class", proto=ep.proto))

        def sockperm(step: str, check_id: str) -> None:
            if not skip_sock_perm:
                checks.append(Check(K.check(check_id), step, dom, sock, sclass))

        # socket()
        sockperm("socket", "socket.create")
        if ep.proto == "raw":
            checks.append(self._cap("socket", K.net_raw(ep.family), dom, sc.env))
        if ep.proto == "icmp":
            low, high = sc.env.ping_group_range or (1, 0)
            if sc.env.ping_allowed() is False:  # ping_init_sock, after the create check
                notes.append(note("ping-group-excluded", low=low, high=high))
            else:
                notes.append(note("ping-group-range"))

        steps = {
            "connect": self._connect,
            "listen": self._listen,
            "bind": self._bind,
            "send": self._send,
        }.get(sc.operation)
        if steps is None:  # pragma: no cover - the CLI restricts operations
            raise InputError(f"unknown operation {sc.operation!r}")
        steps(_Plan(sc, sclass, sock, checks, notes, sockperm, skip_sock_perm))
        if not self._packet_checks_active(sc.env):
            notes.append(note("no-packet-checks"))
        return CheckPlan(sc, sclass, sock, origin, checks, notes)

    # -- one method per operation, each appending its steps in kernel order -----------
    def _connect(self, p: _Plan) -> None:
        sc, ep = p.sc, p.sc.endpoint
        if sc.bind is not None:
            self._bind_checks(p, "bind", sc.bind)
        else:
            p.notes.append(note("implicit-bind"))
        if sc.fastopen:
            self._fastopen(p)
        else:
            p.sockperm("connect", "connect.connect")
            self._name_connect(p, "connect", ep)
        if p.sclass not in NAME_CONNECT_CLASSES:
            p.notes.append(note("no-name-connect", tclass=p.sclass))
        # Connection protocols exchange packets during connect(); datagrams on send/recv.
        stream = ep.proto in CONNECTION_PROTOCOLS
        if stream:
            self._packets(p, "tx", p.sock, ep.address, "connect")
            self._packets(p, "rx", p.sock, ep.address, "connect")
        if not sc.fastopen:
            p.sockperm("send", "send.write")
        if not stream:
            self._packets(p, "tx", p.sock, ep.address, "send")
        p.sockperm("recv", "recv.read")
        if not stream:
            self._packets(p, "rx", p.sock, ep.address, "recv")

    def _listen(self, p: _Plan) -> None:
        sc, ep = p.sc, p.sc.endpoint
        if sc.unbound:
            if ep.proto not in CONNECTION_PROTOCOLS:
                raise InputError(f"a {ep.proto} server must bind first: give ADDR:PORT")
            # inet_listen -> inet_csk_listen_start -> get_port(sk, 0): no security hook
            p.notes.append(note("listen-autobind"))
        else:
            self._bind_checks(p, "bind", ep)
        remote = self._remote(sc)
        if ep.proto not in CONNECTION_PROTOCOLS:
            p.notes.append(note("datagram-server"))
            self._packets(p, "rx", p.sock, remote, "datagram in")
            p.sockperm("recv", "recv.read")
            p.sockperm("send", "send.write")
            self._packets(p, "tx", p.sock, remote, "datagram out")
            return
        p.sockperm("listen", "listen.listen")
        # The SYN reaches the listening socket; the SYN-ACK leaves with the
        # connection's label (selinux_conn_sid: the listener's, MLS from the peer).
        child = self._conn_sid(p.sock, sc)
        self._packets(p, "rx", p.sock, remote, "incoming connection")
        self._packets(p, "tx", child, remote, "SYN-ACK")
        if child != p.sock:
            # The client's data reaches the new connection, not the listener: the checks
            # whose subject is the receiving socket are made again with the connection's
            # label (peer recv, packet recv); those of the peer label (netif, node) are the
            # SYN's.  Observed on 6.1 with CIPSO: an s0 listener's connection from s15.
            data = _Plan(sc, p.sclass, child, [], p.notes, p.sockperm, p.skip_sock_perm)
            self._packets(data, "rx", child, remote, "data on the accepted connection")
            p.checks.extend(c for c in data.checks if c.subject == child)
        p.sockperm("accept", "accept.accept")
        p.notes.append(note("accepted-socket-label", context=child))
        if p.skip_sock_perm:
            return
        for step, check_id in (("recv", "recv.read"), ("send", "send.write")):
            p.checks.append(Check(K.check(check_id), step, sc.domain, child, p.sclass,
                                  phase="accepted"))

    def _bind(self, p: _Plan) -> None:
        self._bind_checks(p, "bind", p.sc.endpoint)

    def _send(self, p: _Plan) -> None:
        sc, ep = p.sc, p.sc.endpoint
        if sc.fastopen:
            self._fastopen(p)
        elif ep.proto in CONNECTION_PROTOCOLS:
            raise InputError(
                f"send is for datagrams (udp, icmp, raw); a {ep.proto} client must "
                "connect (or use send --fastopen for TCP Fast Open)"
            )
        else:
            if sc.bind is not None:
                self._bind_checks(p, "bind", sc.bind)
            p.sockperm("send", "send.write")
            if sc.bind is None:  # bind(port 0) already picked the port, checking nothing
                p.notes.append(note("autobind"))
        self._packets(p, "tx", p.sock, ep.address, "send")

    def _fastopen(self, p: _Plan) -> None:
        """sendto(MSG_FASTOPEN): selinux_socket_sendmsg checks write, then calls the
        connect helper, so connect and name_connect follow (observed on 6.1)."""
        ep = p.sc.endpoint
        if ep.proto != "tcp":
            raise InputError("--fastopen is TCP Fast Open: it needs a tcp endpoint")
        p.notes.append(note("fastopen"))
        p.sockperm("send", "send.write")
        p.sockperm("send", "send.fastopen_connect")
        self._name_connect(p, "send", ep)

    def _remote(self, sc: Scenario) -> IPAddress:
        if sc.env.remote:
            return parse_address(sc.env.remote)
        return ipaddress.ip_address("127.0.0.1" if sc.endpoint.family == 4 else "::1")

    def _conn_sid(self, listener: Context, sc: Scenario) -> Context:
        peer = sc.env.peer if self._peerlbl_active(sc.env) else None
        if peer is None or not listener.mls:
            return listener
        return Context(listener.user, listener.role, listener.type, peer.mls)

    def _cap(self, step: str, spec: KernelCheck, dom: Context, env: NetEnv) -> Check:
        tclass = "cap_userns" if env.userns else "capability"
        return Check(spec, step, dom, dom, tclass)

    def _name_connect(self, p: _Plan, step: str, ep: Endpoint) -> None:
        if p.sclass not in NAME_CONNECT_CLASSES:
            return
        ctx, lab = self._port(ep.proto, ep.port)
        p.checks.append(Check(K.check("connect.name_connect"), step, p.sock, ctx, p.sclass, label=lab))

    def _bind_checks(self, p: _Plan, step: str, ep: Endpoint) -> None:
        env = p.sc.env
        p.sockperm(step, "bind.bind")
        if env.requires_name_bind(ep.port):
            ctx, lab = self._port(ep.proto, ep.port)
            p.checks.append(Check(K.check("bind.name_bind"), step, p.sock, ctx, p.sclass, label=lab))
        nctx, nlab = self._node(ep.address)
        p.checks.append(Check(K.check("bind.node_bind"), step, p.sock, nctx, p.sclass, label=nlab))
        if ep.proto in BIND_SERVICE_PROTOCOLS and env.requires_bind_service(ep.port):
            p.checks.append(self._cap(step, K.net_bind_service(ep.proto, ep.family),
                                      p.sc.domain, env))

    # -- per-packet checks (section 4) -------------------------------------------
    def _peerlbl_active(self, env: NetEnv) -> bool:
        return "always_check_network" in self.polcaps or env.labeled is not None

    def _secmark_active(self, env: NetEnv) -> bool:
        return "always_check_network" in self.polcaps or env.secmark is not None

    def _packet_checks_active(self, env: NetEnv) -> bool:
        if "network_peer_controls" not in self.polcaps:
            return True  # the compat path always checks association permissions
        return self._peerlbl_active(env) or self._secmark_active(env)

    def _packets(self, p: _Plan, direction: str, sock: Context, remote: IPAddress,
                 what: str) -> None:
        """A denied packet is dropped, not refused by a hook: outgoing, the postroute hook
        returns NF_DROP_ERR(-ECONNREFUSED), which reaches the sending syscall; incoming,
        the packet silently disappears and the caller waits (connect() retransmits, then
        ETIMEDOUT).  Observed on 6.1 (docs/conformance.md); the table's errno says so."""
        env = p.sc.env
        unlabeled = self._initial("unlabeled")
        secmark = env.secmark or unlabeled
        peer = env.peer if env.peer is not None else unlabeled
        if direction == "tx":
            self._xfrm_out(p, sock, what)  # the route lookup, on either path
        if "network_peer_controls" not in self.polcaps:
            self._packets_compat(p, direction, sock, secmark, peer, unlabeled, what)
            return
        ifname = env.netif or ("lo" if remote.is_loopback or _mapped_loopback(remote) else "eth0")
        peerlbl = self._peerlbl_active(env)
        sm = self._secmark_active(env)
        add = p.checks.append
        if direction == "rx":
            if peerlbl:
                ictx, ilab = self._netif(ifname)
                add(Check(K.check("rx.netif_ingress"), "rx", peer, ictx, "netif", phase=what, label=ilab))
                nctx, nlab = self._node(remote)
                add(Check(K.check("rx.node_recvfrom"), "rx", peer, nctx, "node", phase=what, label=nlab))
                add(Check(K.check("rx.peer_recv"), "rx", sock, peer, "peer", phase=what))
            if sm:
                add(Check(K.check("rx.packet_recv"), "rx", sock, secmark, "packet", phase=what))
        else:
            if sm:
                add(Check(K.check("tx.packet_send"), "tx", sock, secmark, "packet", phase=what))
            if peerlbl:
                ictx, ilab = self._netif(ifname)
                add(Check(K.check("tx.netif_egress"), "tx", sock, ictx, "netif", phase=what, label=ilab))
                nctx, nlab = self._node(remote)
                add(Check(K.check("tx.node_sendto"), "tx", sock, nctx, "node", phase=what, label=nlab))

    def _xfrm_out(self, p: _Plan, sock: Context, what: str) -> None:
        """Labeled IPsec, the route lookup of an outgoing flow (xfrm_lookup, before the
        postroute checks): the flow's label against the SPD entry (polmatch), then the SA,
        which must carry the flow's own label (sendto on it)."""
        env = p.sc.env
        if env.labeled != "ipsec" or env.spd is None:
            return
        pol = Check(K.check("xfrm.association_polmatch"), "tx", sock, env.spd, "association",
                    phase=what)
        p.checks.append(pol)
        p.checks.append(Check(K.check("xfrm.association_sendto"), "tx", sock, sock,
                              "association", phase=what, needs=pol))

    def _packets_compat(self, p: _Plan, direction: str, sock: Context, secmark: Context,
                        peer: Context, unlabeled: Context, what: str) -> None:
        """Policies without network_peer_controls (hooks.c *_compat, netlabel.c, xfrm.c)."""
        env = p.sc.env
        add = p.checks.append
        secmark_on = env.secmark is not None or "always_check_network" in self.polcaps
        if direction == "rx":
            if secmark_on:
                add(Check(K.check("rx.compat_packet_recv"), "rx", sock, secmark, "packet", phase=what))
            if env.labeled == "netlabel":
                add(Check(K.check("rx.compat_netlabel_recvfrom"), "rx", sock, peer, p.sclass, phase=what))
            sa = peer if env.labeled == "ipsec" else unlabeled
            add(Check(K.check("rx.compat_association_recvfrom"), "rx", sock, sa, "association", phase=what))
        else:
            if secmark_on:
                add(Check(K.check("tx.compat_packet_send"), "tx", sock, secmark, "packet", phase=what))
            if env.labeled != "ipsec":
                add(Check(K.check("tx.compat_association_sendto"), "tx", sock, unlabeled,
                          "association", phase=what))


def _mapped_loopback(addr: IPAddress) -> bool:
    return isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None and \
        addr.ipv4_mapped.is_loopback
