"""Operations -> the ordered checks the kernel makes (kernel-network-checks.md 1-5, 7, 12).

Each :class:`Check` names the kernel function that makes it.  The model knows
nothing of the policy's rules: it only needs labels (socket transitions, port,
node and netif lookups, initial SIDs) and policy capabilities.  Deciding the
checks is :mod:`selnet.decide.decision`'s job.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from selnet.errors import InputError
from selnet.model.env import NetEnv
from selnet.model.labels import (
    IPAddress,
    LabelResult,
    is_number,
    netif_label,
    node_label,
    parse_address,
    port_label,
)
from selnet.policy.index import Policy
from selnet.policy.snapshot import Context

PROTOS = ("tcp", "udp", "sctp", "dccp", "icmp", "raw")
OPERATIONS = ("connect", "listen", "bind", "send")
_PORTCON_PROTO = {"tcp": "tcp", "udp": "udp", "sctp": "sctp", "dccp": "dccp"}
_BIND_SERVICE_PROTOS = {"tcp", "udp", "sctp", "dccp"}  # ping and raw binds check no capability
_NAME_CONNECT_CLASSES = {"tcp_socket", "dccp_socket", "sctp_socket"}
_CONNECTION_PROTOS = {"tcp", "sctp", "dccp"}  # connect() exchanges packets; listen/accept


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
    if proto not in PROTOS:
        raise InputError(f"unknown protocol {proto!r} (expected one of {', '.join(PROTOS)})")
    if body.startswith("["):
        addr_text, _, rest = body[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else rest
        if rest and not rest.startswith(":"):
            raise InputError(f"malformed address {text!r} (use [IPv6]:PORT)")
    elif body.count(":") == 1:
        addr_text, _, port_text = body.partition(":")
    elif body.count(":") > 1:
        raise InputError(f"malformed address {text!r}: write IPv6 addresses as [ADDR]:PORT")
    else:
        addr_text, port_text = body, ""
    addr = parse_address(addr_text)
    if not port_text:
        if need_port and proto not in ("raw", "icmp"):
            raise InputError(f"{text!r}: a port is needed (ADDR:PORT)")
        port = 0
    else:
        if not is_number(port_text):
            raise InputError(f"not a port number: {port_text!r}")
        port = int(port_text)
        if port > 65535:
            raise InputError(f"port {port} out of range 0-65535")
    return Endpoint(addr, port, proto)


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
    step: str  # socket, bind, connect, listen, accept, send, recv, rx, tx
    hook: str  # the kernel function that makes the check
    subject: Context
    target: Context
    tclass: str
    perm: str
    kind: str = "avc"  # avc or capability
    errno: str = "EACCES"  # what the syscall returns when an enforced denial happens
    note: str = ""  # what the target is, in words
    label: LabelResult | None = None  # the lookup that produced the target


@dataclass(slots=True)
class Scenario:
    """One operation with everything that determines its checks."""

    operation: str
    domain: Context
    endpoint: Endpoint
    env: NetEnv = field(default_factory=NetEnv)
    bind: Endpoint | None = None  # connect: an explicit bind() first
    sockcreate: Context | None = None
    fastopen: bool = False


@dataclass(slots=True)
class CheckPlan:
    scenario: Scenario
    sclass: str
    sock: Context  # the socket's label
    sock_origin: str  # domain, type_transition, sockcreate
    checks: list[Check]
    notes: list[str]


def socket_class(proto: str, polcaps: frozenset[str]) -> str:
    """hooks.c socket_type_to_security_class for PF_INET/PF_INET6."""
    ext = "extended_socket_class" in polcaps
    return {
        "tcp": "tcp_socket",
        "udp": "udp_socket",
        "dccp": "dccp_socket",
        "sctp": "sctp_socket" if ext else "rawip_socket",
        "icmp": "icmp_socket" if ext else "rawip_socket",
        "raw": "rawip_socket",
    }[proto]


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


# sockperm(step, hook, perm): append a task -> socket check (sock_has_perm)
SockPerm = Callable[[str, str, str], None]


@dataclass(slots=True)
class _Plan:
    """The state one operation's steps append to."""

    sc: Scenario
    sclass: str
    sock: Context
    checks: list[Check]
    notes: list[str]
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

    def _port(self, proto: str, port: int) -> tuple[Context, LabelResult | None, str]:
        pc_proto = _PORTCON_PROTO.get(proto)
        if pc_proto is None:
            # raw/ping sockets carry an IP protocol number: no portcon can match.
            return self._initial("port"), None, f"{proto} id {port}: the 'port' initial SID"
        lab = port_label(self.policy, pc_proto, port)
        how = lab.matched.describe() if lab.matched is not None else "no portcon: 'port' initial SID"
        return lab.context, lab, f"port {port}/{pc_proto} ({how})"

    def _node(self, addr: IPAddress) -> tuple[Context, LabelResult, str]:
        lab = node_label(self.policy, addr)
        how = lab.matched.describe() if lab.matched is not None else "no nodecon: 'node' initial SID"
        return lab.context, lab, f"address {addr} ({how})"

    def _netif(self, name: str) -> tuple[Context, LabelResult, str]:
        lab = netif_label(self.policy, name)
        how = lab.matched.describe() if lab.matched is not None else "no netifcon: 'netif' initial SID"
        return lab.context, lab, f"interface {name} ({how})"

    # -- the plan -------------------------------------------------------------
    def plan(self, sc: Scenario) -> CheckPlan:
        ep = sc.endpoint
        sclass = socket_class(ep.proto, self.polcaps)
        sock, origin = self.socket_label(sc, sclass)
        notes: list[str] = []
        checks: list[Check] = []
        dom = sc.domain
        kernel_ctx = self.policy.snap.initial_sids.get("kernel")
        skip_sock_perm = sock == kernel_ctx
        if skip_sock_perm:
            notes.append("the socket has the kernel initial SID: sock_has_perm checks are skipped")
        if origin == "type_transition":
            notes.append(f"socket labeled {sock.type} by a type_transition rule on {sclass}")
        elif origin == "sockcreate":
            notes.append(f"socket labeled {sock} by setsockcreatecon (needs process setsockcreate)")
        if ep.proto in ("sctp", "icmp") and sclass == "rawip_socket":
            notes.append(f"no extended_socket_class policy capability: {ep.proto} sockets are rawip_socket")

        def sockperm(step: str, hook: str, perm: str) -> None:
            if not skip_sock_perm:
                checks.append(Check(step, hook, dom, sock, sclass, perm, note="the socket"))

        # socket()
        sockperm("socket", "selinux_socket_create", "create")
        if ep.proto == "raw":
            checks.append(self._cap("socket", "inet_create", dom, "net_raw", sc.env, errno="EPERM"))
        if ep.proto == "icmp":
            notes.append("ping sockets need no capability; the group must be in net.ipv4.ping_group_range")

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
            notes.append("no per-packet checks: no labeled networking, no SECMARK, no always_check_network")
        return CheckPlan(sc, sclass, sock, origin, checks, notes)

    # -- one method per operation, each appending its steps in kernel order -----------
    def _connect(self, p: _Plan) -> None:
        sc, ep = p.sc, p.sc.endpoint
        if sc.bind is not None:
            self._bind_checks(p.checks, "bind", sc, p.sclass, p.sock, sc.bind, p.sockperm)
        else:
            p.notes.append("connect() picks an ephemeral source port: the implicit bind checks nothing")
        if sc.fastopen:
            self._fastopen(p)
        else:
            p.sockperm("connect", "selinux_socket_connect", "connect")
            self._name_connect(p.checks, "connect", "selinux_socket_connect_helper", p.sclass,
                               p.sock, ep)
        if p.sclass not in _NAME_CONNECT_CLASSES:
            p.notes.append(f"{p.sclass} has no name_connect: the destination port is not checked")
        # Connection protocols exchange packets during connect(); datagrams on send/recv.
        stream = ep.proto in _CONNECTION_PROTOS
        if stream:
            self._packets(p.checks, "tx", sc, p.sock, p.sclass, ep.address, "connect")
            self._packets(p.checks, "rx", sc, p.sock, p.sclass, ep.address, "connect")
        if not sc.fastopen:
            p.sockperm("send", "selinux_socket_sendmsg", "write")
        if not stream:
            self._packets(p.checks, "tx", sc, p.sock, p.sclass, ep.address, "send")
        p.sockperm("recv", "selinux_socket_recvmsg", "read")
        if not stream:
            self._packets(p.checks, "rx", sc, p.sock, p.sclass, ep.address, "recv")

    def _listen(self, p: _Plan) -> None:
        sc, ep = p.sc, p.sc.endpoint
        self._bind_checks(p.checks, "bind", sc, p.sclass, p.sock, ep, p.sockperm)
        remote = self._remote(sc)
        if ep.proto not in _CONNECTION_PROTOS:
            p.notes.append("datagram server: no listen/accept")
            self._packets(p.checks, "rx", sc, p.sock, p.sclass, remote, "datagram in")
            p.sockperm("recv", "selinux_socket_recvmsg", "read")
            p.sockperm("send", "selinux_socket_sendmsg", "write")
            self._packets(p.checks, "tx", sc, p.sock, p.sclass, remote, "datagram out")
            return
        p.sockperm("listen", "selinux_socket_listen", "listen")
        # The SYN reaches the listening socket; the SYN-ACK leaves with the
        # connection's label (selinux_conn_sid: the listener's, MLS from the peer).
        child = self._conn_sid(p.sock, sc)
        self._packets(p.checks, "rx", sc, p.sock, p.sclass, remote, "incoming connection")
        self._packets(p.checks, "tx", sc, child, p.sclass, remote, "SYN-ACK")
        p.sockperm("accept", "selinux_socket_accept", "accept")
        p.notes.append(f"the accepted socket carries the listening socket's label ({child})")
        if p.skip_sock_perm:
            return
        for step, hook, perm in (("recv", "selinux_socket_recvmsg", "read"),
                                 ("send", "selinux_socket_sendmsg", "write")):
            p.checks.append(Check(step, hook, sc.domain, child, p.sclass, perm,
                                  note="the accepted socket"))

    def _bind(self, p: _Plan) -> None:
        self._bind_checks(p.checks, "bind", p.sc, p.sclass, p.sock, p.sc.endpoint, p.sockperm)

    def _send(self, p: _Plan) -> None:
        sc, ep = p.sc, p.sc.endpoint
        if sc.fastopen:
            self._fastopen(p)
        elif ep.proto in _CONNECTION_PROTOS:
            raise InputError(
                f"send is for datagrams (udp, icmp, raw); a {ep.proto} client must "
                "connect (or use send --fastopen for TCP Fast Open)"
            )
        else:
            p.sockperm("send", "selinux_socket_sendmsg", "write")
            p.notes.append("sendto() on an unbound socket autobinds an ephemeral port: no checks")
        self._packets(p.checks, "tx", sc, p.sock, p.sclass, ep.address, "send")

    def _fastopen(self, p: _Plan) -> None:
        """sendto(MSG_FASTOPEN): selinux_socket_sendmsg checks write, then calls the
        connect helper, so connect and name_connect follow (observed on 6.1)."""
        ep = p.sc.endpoint
        if ep.proto != "tcp":
            raise InputError("--fastopen is TCP Fast Open: it needs a tcp endpoint")
        p.notes.append("TCP Fast Open: sendmsg is checked like connect (observed on 6.1)")
        p.sockperm("send", "selinux_socket_sendmsg", "write")
        p.sockperm("send", "selinux_socket_connect_helper", "connect")
        self._name_connect(p.checks, "send", "selinux_socket_connect_helper", p.sclass, p.sock, ep)

    def _remote(self, sc: Scenario) -> IPAddress:
        if sc.env.remote:
            return parse_address(sc.env.remote)
        return ipaddress.ip_address("127.0.0.1" if sc.endpoint.family == 4 else "::1")

    def _conn_sid(self, listener: Context, sc: Scenario) -> Context:
        peer = sc.env.peer if self._peerlbl_active(sc.env) else None
        if peer is None or not listener.mls:
            return listener
        return Context(listener.user, listener.role, listener.type, peer.mls)

    def _cap(self, step: str, hook: str, dom: Context, cap: str, env: NetEnv, errno: str) -> Check:
        tclass = "cap_userns" if env.userns else "capability"
        return Check(step, hook, dom, dom, tclass, cap, kind="capability", errno=errno,
                     note=f"CAP_{cap.upper()}")

    def _name_connect(
        self, checks: list[Check], step: str, hook: str, sclass: str, sock: Context, ep: Endpoint
    ) -> None:
        if sclass not in _NAME_CONNECT_CLASSES:
            return
        ctx, lab, how = self._port(ep.proto, ep.port)
        checks.append(Check(step, hook, sock, ctx, sclass, "name_connect", note=how, label=lab))

    def _bind_checks(self, checks: list[Check], step: str, sc: Scenario, sclass: str,
                     sock: Context, ep: Endpoint, sockperm: SockPerm) -> None:
        sockperm(step, "selinux_socket_bind", "bind")
        if sc.env.requires_name_bind(ep.port):
            ctx, lab, how = self._port(ep.proto, ep.port)
            checks.append(Check(step, "selinux_socket_bind", sock, ctx, sclass, "name_bind",
                                note=how, label=lab))
        nctx, nlab, nhow = self._node(ep.address)
        checks.append(Check(step, "selinux_socket_bind", sock, nctx, sclass, "node_bind",
                            note=nhow, label=nlab))
        if ep.proto in _BIND_SERVICE_PROTOS and sc.env.requires_bind_service(ep.port):
            hook = {"sctp": "sctp_do_bind", "dccp": "__inet_bind"}.get(ep.proto, "__inet_bind")
            if ep.family == 6:
                hook = "sctp_do_bind" if ep.proto == "sctp" else "__inet6_bind"
            checks.append(self._cap(step, hook, sc.domain, "net_bind_service", sc.env, "EACCES"))

    # -- per-packet checks (section 4) -------------------------------------------
    def _peerlbl_active(self, env: NetEnv) -> bool:
        return "always_check_network" in self.polcaps or env.labeled is not None

    def _secmark_active(self, env: NetEnv) -> bool:
        return "always_check_network" in self.polcaps or env.secmark is not None

    def _packet_checks_active(self, env: NetEnv) -> bool:
        if "network_peer_controls" not in self.polcaps:
            return True  # the compat path always checks association permissions
        return self._peerlbl_active(env) or self._secmark_active(env)

    def _packets(self, checks: list[Check], direction: str, sc: Scenario, sock: Context,
                 sclass: str, remote: IPAddress, what: str) -> None:
        start = len(checks)
        self._packet_checks(checks, direction, sc, sock, sclass, remote, what)
        # A denied packet is dropped, not refused by a hook: outgoing, the postroute
        # hook returns NF_DROP_ERR(-ECONNREFUSED), which reaches the sending syscall;
        # incoming, the packet silently disappears and the caller waits (connect()
        # retransmits, then ETIMEDOUT).  Observed on 6.1 (docs/conformance.md).
        errno = "ECONNREFUSED" if direction == "tx" else "ETIMEDOUT"
        for i in range(start, len(checks)):
            checks[i] = replace(checks[i], errno=errno)

    def _packet_checks(self, checks: list[Check], direction: str, sc: Scenario, sock: Context,
                       sclass: str, remote: IPAddress, what: str) -> None:
        env = sc.env
        unlabeled = self._initial("unlabeled")
        secmark = env.secmark or unlabeled
        peer = env.peer if env.peer is not None else unlabeled
        ifname = env.netif or ("lo" if remote.is_loopback or _mapped_loopback(remote) else "eth0")
        if "network_peer_controls" not in self.polcaps:
            self._packets_compat(checks, direction, sc, sock, sclass, secmark, peer, unlabeled, what)
            return
        peerlbl = self._peerlbl_active(env)
        sm = self._secmark_active(env)
        if direction == "rx":
            hook = "selinux_socket_sock_rcv_skb"
            if peerlbl:
                ictx, ilab, ihow = self._netif(ifname)
                checks.append(Check("rx", "selinux_inet_sys_rcv_skb", peer, ictx, "netif", "ingress",
                                    note=f"{what}: peer label on {ihow}", label=ilab))
                nctx, nlab, nhow = self._node(remote)
                checks.append(Check("rx", "selinux_inet_sys_rcv_skb", peer, nctx, "node", "recvfrom",
                                    note=f"{what}: peer label from source {nhow}", label=nlab))
                checks.append(Check("rx", hook, sock, peer, "peer", "recv", note=f"{what}: the peer label"))
            if sm:
                checks.append(Check("rx", hook, sock, secmark, "packet", "recv",
                                    note=f"{what}: the packet's SECMARK label"))
        else:
            hook = "selinux_ip_postroute"
            if sm:
                checks.append(Check("tx", hook, sock, secmark, "packet", "send",
                                    note=f"{what}: the packet's SECMARK label"))
            if peerlbl:
                ictx, ilab, ihow = self._netif(ifname)
                checks.append(Check("tx", hook, sock, ictx, "netif", "egress", note=f"{what}: {ihow}",
                                    label=ilab))
                nctx, nlab, nhow = self._node(remote)
                checks.append(Check("tx", hook, sock, nctx, "node", "sendto",
                                    note=f"{what}: destination {nhow}", label=nlab))

    def _packets_compat(self, checks: list[Check], direction: str, sc: Scenario, sock: Context,
                        sclass: str, secmark: Context, peer: Context, unlabeled: Context,
                        what: str) -> None:
        """Policies without network_peer_controls (hooks.c *_compat, netlabel.c, xfrm.c)."""
        env = sc.env
        if direction == "rx":
            hook = "selinux_sock_rcv_skb_compat"
            if env.secmark is not None or "always_check_network" in self.polcaps:
                checks.append(Check("rx", hook, sock, secmark, "packet", "recv", note=f"{what}: SECMARK"))
            if env.labeled == "netlabel":
                checks.append(Check("rx", "selinux_netlbl_sock_rcv_skb", sock, peer, sclass, "recvfrom",
                                    note=f"{what}: NetLabel peer label (compat path)"))
            sa = peer if env.labeled == "ipsec" else unlabeled
            checks.append(Check("rx", "selinux_xfrm_sock_rcv_skb", sock, sa, "association", "recvfrom",
                                note=f"{what}: IPsec SA label, unlabeled without one (compat path)"))
        else:
            hook = "selinux_ip_postroute_compat"
            if env.secmark is not None or "always_check_network" in self.polcaps:
                checks.append(Check("tx", hook, sock, secmark, "packet", "send", note=f"{what}: SECMARK"))
            if env.labeled != "ipsec":
                checks.append(Check("tx", "selinux_xfrm_postroute_last", sock, unlabeled, "association",
                                    "sendto", note=f"{what}: no labeled SA (compat path)"))


def _mapped_loopback(addr: IPAddress) -> bool:
    return isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None and \
        addr.ipv4_mapped.is_loopback
