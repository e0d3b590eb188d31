"""A sequence of socket syscalls -> each step's checks in kernel order, with the socket's
state carried from step to step (the kernel's state machine, read from 6.1.192).

The step language is the conformance suite's (``sockop``): ``sock=tcp``, ``bind=ADDR:PORT``,
``bind=unspec:ADDR:PORT``, ``listen``, ``connect=ADDR:PORT``, ``connect=unspec``,
``sendto=ADDR:PORT``, ``send``, ``recv``, ``accept``, ``setsockopt=NAME``,
``getsockopt=NAME``, ``shutdown``, ``getsockname``, ``getpeername``, and the step where the
socket passes from the ``--socket-from`` domain to the traced domain: ``handoff`` (the same
process changes domain with the socket open: no check), ``recvfd`` (a process of the traced
domain receives it over a unix socket, SCM_RIGHTS) or ``exec`` (the creator's process execs
into the traced domain with the socket open).  ``recvfd`` and ``exec`` make file_has_perm's
checks: ``fd use`` on the creator, then read and write on the socket.

The checks come from :class:`selnet.model.plan.KernelModel`'s per-operation methods and
the check table.  What the kernel refuses for reasons of its own (a double bind, a listen
on a datagram socket, ping_group_range) is a :class:`KernelError`, raised after the step's
checks: in every case modelled here the security hook runs first.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace

from selnet.errors import InputError
from selnet.kernel import checks as K
from selnet.kernel.classes import CONNECTION_PROTOCOLS, socket_class
from selnet.model.env import NetEnv
from selnet.model.labels import IPAddress, shown
from selnet.model.plan import (
    Check,
    Endpoint,
    KernelModel,
    Scenario,
    _Plan,
    parse_endpoint,
    socket_label,
)
from selnet.notes import Note, note
from selnet.policy.index import Policy
from selnet.policy.snapshot import Context

# sock=KIND: protocol and family
SOCK_KINDS: dict[str, tuple[str, int]] = {
    f"{proto}{'6' if fam == 6 else ''}": (proto, fam)
    for proto in ("tcp", "udp", "icmp", "raw", "sctp", "dccp") for fam in (4, 6)
}
# socket options the trace knows (SOL_SOCKET unless TCP_): NAME -> the capability check a
# set makes (sk_setsockopt), if any
SET_OPTIONS: dict[str, str | None] = {
    "SO_REUSEADDR": None, "SO_REUSEPORT": None, "SO_KEEPALIVE": None, "SO_RCVBUF": None,
    "SO_SNDBUF": None, "SO_BROADCAST": None, "SO_LINGER": None, "SO_RCVLOWAT": None,
    "TCP_NODELAY": None, "SO_DEBUG": "setsockopt.net_admin_debug",
}
GET_OPTIONS = frozenset({*SET_OPTIONS, "SO_ERROR", "SO_TYPE", "SO_ACCEPTCONN", "SO_DOMAIN",
                         "SO_PROTOCOL"})
OPS = ("sock", "bind", "listen", "connect", "sendto", "send", "recv", "accept", "setsockopt",
       "getsockopt", "shutdown", "getsockname", "getpeername", "handoff", "recvfd", "exec")
# the steps where the socket passes from its creator to the traced domain
HANDOFFS = ("handoff", "recvfd", "exec")
_ARG_OPS = {"sock", "bind", "connect", "sendto", "setsockopt", "getsockopt"}

SOCK_C = "net/core/sock.c"
_LIMITED_BROADCAST = ipaddress.IPv4Address("255.255.255.255")
_BROADCAST: dict[str, tuple[str, str, int]] = {
    "udp": ("udp_sendmsg", "net/ipv4/udp.c", 1321),
    "icmp": ("ping_v4_sendmsg", "net/ipv4/ping.c", 816),
    "raw": ("raw_sendmsg", "net/ipv4/raw.c", 631),
}
# send() with no address on an unconnected datagram socket
_NO_DEST: dict[tuple[str, int], tuple[str, str, int]] = {
    ("udp", 4): ("udp_sendmsg", "net/ipv4/udp.c", 1200),
    ("udp", 6): ("udpv6_sendmsg", "net/ipv6/udp.c", 1523),
    ("icmp", 4): ("ping_v4_sendmsg", "net/ipv4/ping.c", 744),
    ("icmp", 6): ("ping_v6_sendmsg", "net/ipv6/ping.c", 98),
    ("raw", 4): ("raw_sendmsg", "net/ipv4/raw.c", 529),
    ("raw", 6): ("rawv6_sendmsg", "net/ipv6/raw.c", 825),
}


@dataclass(frozen=True, slots=True)
class Step:
    """One parsed step of the language."""

    text: str
    op: str
    kind: str = ""  # sock=
    endpoint: Endpoint | None = None  # bind=, connect=, sendto=
    unspec: bool = False  # bind=unspec:..., connect=unspec (sa_family AF_UNSPEC)
    option: str = ""  # setsockopt=, getsockopt=


@dataclass(frozen=True, slots=True)
class KernelError:
    """An errno the kernel gives for a reason of its own, after the step's checks."""

    errno: str
    function: str
    file: str
    line: int
    why: str


@dataclass(slots=True)
class TraceStep:
    step: Step
    subject: Context  # the process making the syscall
    checks: list[Check]
    error: KernelError | None = None
    notes: list[Note] = field(default_factory=list)


@dataclass(slots=True)
class SocketInfo:
    """A socket the trace creates (sock=) and how it got its label."""

    step: int
    kind: str
    sclass: str
    context: Context
    labeled_by: str  # domain, type_transition, sockcreate
    created_by: Context


@dataclass(slots=True)
class TracePlan:
    domain: Context
    socket_from: Context | None
    env: NetEnv
    steps: list[TraceStep]
    sockets: list[SocketInfo]
    notes: list[Note]


@dataclass(slots=True)
class _Sock:
    proto: str
    family: int
    sclass: str
    label: Context
    skip: bool  # kernel-SID socket: sock_has_perm checks are skipped
    bound: Endpoint | None = None  # an explicit bind()
    autobound: bool = False  # the kernel picked a port (connect, sendto, listen)
    listening: bool = False
    peer: IPAddress | None = None  # connected to
    child: Context | None = None  # accept()ed connection's label; data steps use it
    sender: IPAddress | None = None  # a datagram arrived from (send then replies to it)
    shut: bool = False
    broadcast: bool = False  # SO_BROADCAST set

    @property
    def stream(self) -> bool:
        return self.proto in CONNECTION_PROTOCOLS

    @property
    def has_port(self) -> bool:
        return self.bound is not None or self.autobound


def parse_step(text: str) -> Step:
    op, eq, arg = text.strip().partition("=")
    op = op.lower()
    if op not in OPS:
        raise InputError(f"unknown step {shown(text)} (steps: {', '.join(OPS)})")
    if op in _ARG_OPS and not arg and op != "connect":
        raise InputError(f"step {shown(text)} needs a value ({op}=...)")
    if op not in _ARG_OPS and eq:
        raise InputError(f"step {op} takes no value, got {shown(text)}")
    if op == "sock":
        if arg.lower() not in SOCK_KINDS:
            raise InputError(f"unknown socket kind {shown(arg)} (one of {', '.join(SOCK_KINDS)})")
        return Step(text, op, kind=arg.lower())
    if op in ("setsockopt", "getsockopt"):
        name = arg.upper()
        known = SET_OPTIONS if op == "setsockopt" else GET_OPTIONS
        if name not in known:
            raise InputError(f"{op}: unknown option {shown(arg)} (one of {', '.join(sorted(known))})")
        return Step(text, op, option=name)
    if op == "connect" and arg.lower() == "unspec":
        return Step(text, op, unspec=True)
    if op == "connect" and not arg:
        raise InputError("step connect needs a value (connect=ADDR:PORT or connect=unspec)")
    if op in ("bind", "connect", "sendto"):
        unspec = op == "bind" and arg.lower().startswith("unspec:")
        body = arg[7:] if unspec else arg
        ep = parse_endpoint(f"{body}/tcp", need_port=False)  # the protocol is the socket's
        return Step(text, op, endpoint=ep, unspec=unspec)
    return Step(text, op)


def parse_steps(texts: list[str], has_creator: bool) -> list[Step]:
    steps = [parse_step(t) for t in texts]
    if not steps or steps[0].op != "sock":
        raise InputError("a trace starts with sock=KIND (tcp, udp, tcp6, icmp, raw, sctp, ...)")
    handoffs = [i for i, s in enumerate(steps) if s.op in HANDOFFS]
    if handoffs and not has_creator:
        raise InputError(f"step {steps[handoffs[0]].op} needs --socket-from CONTEXT (the "
                         "socket's creator)")
    if len(handoffs) > 1:
        raise InputError("one handoff per trace (handoff, recvfd or exec)")
    if handoffs:
        h = steps[handoffs[0]]
        if any(s.op == "sock" for s in steps[handoffs[0]:]):
            raise InputError(f"sock= after {h.op}: the handed-over socket would be replaced")
        if h.op != "handoff" and any(s.op == "accept" for s in steps[:handoffs[0]]) and any(
                s.op in ("listen", "accept") for s in steps[handoffs[0]:]):
            raise InputError(f"{h.op} after accept passes the accepted connection, not the "
                             "listener: listen and accept cannot follow")
    return steps


def _err(errno: str, function: str, file: str, line: int, why: str) -> KernelError:
    return KernelError(errno, function, file, line, why)


class TraceModel:
    """Builds a :class:`TracePlan`: one KernelModel, one socket state, step by step."""

    def __init__(self, policy: Policy, bools: dict[str, bool]) -> None:
        self.policy = policy
        self.bools = bools
        self.km = KernelModel(policy, bools)
        self.kernel_sid = policy.snap.initial_sids.get("kernel")

    def plan(self, domain: Context, texts: list[str], env: NetEnv,
             socket_from: Context | None = None, sockcreate: Context | None = None) -> TracePlan:
        steps = parse_steps(texts, socket_from is not None)
        handoff = next((i for i, s in enumerate(steps) if s.op in HANDOFFS), None)
        notes: list[Note] = []
        out: list[TraceStep] = []
        sockets: list[SocketInfo] = []
        sock: _Sock | None = None
        for i, st in enumerate(steps):
            # Without handoff the creator makes only socket(); with it, every step before.
            if socket_from is not None and (i < handoff if handoff is not None
                                            else st.op == "sock"):
                actor = socket_from
            else:
                actor = domain
            ts = TraceStep(st, actor, [])
            if st.op == "sock":
                sock, origin = self._socket(ts, actor, env,
                                            sockcreate if actor == domain else None)
                sockets.append(SocketInfo(i, st.kind, sock.sclass, sock.label, origin, actor))
            elif st.op == "handoff":
                ts.notes.append(note("trace-handoff", creator=socket_from, domain=domain))
            elif st.op in ("recvfd", "exec"):
                assert sock is not None and socket_from is not None
                self._pass(ts, sock, socket_from)
            else:
                assert sock is not None  # parse_steps: the first step is sock=
                self._step(ts, sock, env)
            out.append(ts)
        if socket_from is not None:
            notes.append(note("trace-inherited", creator=socket_from, domain=domain))
        if not self.km._packet_checks_active(env):
            notes.append(note("no-packet-checks"))
        return TracePlan(domain, socket_from, env, out, sockets, notes)

    # -- helpers -----------------------------------------------------------------------
    def _plan(self, ts: TraceStep, sock: _Sock, env: NetEnv, target: Context | None = None,
              endpoint: Endpoint | None = None) -> _Plan:
        """The plan state KernelModel's step methods append to: this step's checks, made by
        the step's subject on ``target`` (the socket, or the accepted connection)."""
        tgt = target or sock.label
        ep = endpoint or Endpoint(ipaddress.ip_address("0.0.0.0" if sock.family == 4 else "::"),
                                  0, sock.proto)
        sc = Scenario("trace", ts.subject, ep, env)

        def sockperm(step: str, check_id: str) -> None:
            if not sock.skip:
                ts.checks.append(Check(K.check(check_id), step, ts.subject, tgt, sock.sclass))

        return _Plan(sc, sock.sclass, tgt, ts.checks, ts.notes, sockperm, sock.skip)

    def _endpoint(self, st: Step, sock: _Sock) -> Endpoint:
        assert st.endpoint is not None
        ep = replace(st.endpoint, proto=sock.proto)
        if ep.family != sock.family:
            raise InputError(
                f"{st.text}: an IPv{ep.family} address on an IPv{sock.family} socket (write "
                "IPv4 on an IPv6 socket as [::ffff:A.B.C.D])")
        return ep

    def _remote(self, sock: _Sock, env: NetEnv) -> IPAddress:
        if sock.peer is not None:
            return sock.peer
        if sock.sender is not None:
            return sock.sender
        if env.remote:
            return ipaddress.ip_address(env.remote)
        return ipaddress.ip_address("127.0.0.1" if sock.family == 4 else "::1")

    # -- socket() ----------------------------------------------------------------------
    def _socket(self, ts: TraceStep, actor: Context, env: NetEnv,
                sockcreate: Context | None) -> tuple[_Sock, str]:
        proto, family = SOCK_KINDS[ts.step.kind]
        sclass = socket_class(proto, self.km.polcaps)
        label, origin = socket_label(self.policy, actor, sclass, self.bools, sockcreate)
        sock = _Sock(proto, family, sclass, label, skip=label == self.kernel_sid)
        if sock.skip:
            ts.notes.append(note("kernel-sid-socket"))
        if origin == "type_transition":
            ts.notes.append(note("socket-type-transition", type=label.type, tclass=sclass))
        elif origin == "sockcreate":
            ts.notes.append(note("socket-sockcreate", context=label))
        if proto in ("sctp", "icmp") and sclass == "rawip_socket":
            ts.notes.append(note("no-extended-socket-class", proto=proto))
        p = self._plan(ts, sock, env)
        p.sockperm("socket", "socket.create")
        if proto == "raw":
            ts.checks.append(self.km._cap("socket", K.net_raw(family), actor, env))
        if proto == "icmp":
            ok = env.ping_allowed()
            if ok is None:
                ts.notes.append(note("ping-group-range"))
            elif not ok:
                low, high = env.ping_group_range or (1, 0)
                ts.error = _err("EACCES", "ping_init_sock", "net/ipv4/ping.c", 286,
                                f"no group of the caller ({', '.join(map(str, env.gids))}) is in "
                                f"net.ipv4.ping_group_range {low} {high}; inet_create calls it "
                                "after the create check")
        return sock, origin

    # -- every other step ----------------------------------------------------------------
    def _step(self, ts: TraceStep, sock: _Sock, env: NetEnv) -> None:
        st, op = ts.step, ts.step.op
        km = self.km
        if op == "bind":
            self._bind(ts, sock, env)
        elif op == "listen":
            self._plan(ts, sock, env).sockperm("listen", "listen.listen")
            if not sock.stream:
                ts.error = _err("EOPNOTSUPP", "sock_no_listen", SOCK_C, 3232,
                                f"{sock.proto} sockets cannot listen")
            elif sock.peer is not None:
                ts.error = _err("EINVAL", "inet_listen", K.AF_INET, 202,
                                "the socket is connected")
            else:
                if not sock.has_port:
                    ts.notes.append(note("listen-autobind"))
                    sock.autobound = True
                sock.listening = True
        elif op == "accept":
            self._accept(ts, sock, env)
        elif op == "connect":
            self._connect(ts, sock, env)
        elif op in ("sendto", "send"):
            self._send(ts, sock, env)
        elif op == "recv":
            target = sock.child or sock.label
            p = self._plan(ts, sock, env, target)
            p.sockperm("recv", "recv.read")
            if sock.stream:
                if sock.child is None and sock.peer is None and sock.proto == "tcp":
                    ts.error = _err("ENOTCONN", "tcp_recvmsg_locked", "net/ipv4/tcp.c", 2585,
                                    "the socket is not connected")
            else:
                if not sock.has_port:
                    ts.notes.append(note("trace-recv-unbound"))
                remote = self._remote(sock, env)
                km._packets(p, "rx", target, remote, "datagram in")
                if sock.peer is None:
                    sock.sender = remote
        elif op == "shutdown":
            target = sock.child or sock.label
            self._plan(ts, sock, env, target).sockperm("shutdown", "shutdown.shutdown")
            if sock.child is None and sock.peer is None and not sock.listening:
                ts.error = _err("ENOTCONN", "inet_shutdown", K.AF_INET, 923,
                                "the socket is not connected (TCP_CLOSE)")
            else:
                sock.shut = True
                if sock.child is None:
                    sock.listening = False  # SHUT_RDWR on a listener disconnects it
        elif op in ("getsockname", "getpeername"):
            target = sock.child or sock.label
            self._plan(ts, sock, env, target).sockperm(op, f"{op}.getattr")
            if op == "getpeername" and sock.child is None and sock.peer is None:
                ts.error = _err("ENOTCONN", "inet_getname", K.AF_INET, 800,
                                "the socket has no peer")
        elif op in ("setsockopt", "getsockopt"):
            target = sock.child or sock.label
            p = self._plan(ts, sock, env, target)
            p.sockperm(op, "setsockopt.setopt" if op == "setsockopt" else "getsockopt.getopt")
            if op == "setsockopt" and st.option == "SO_BROADCAST":
                sock.broadcast = True
            cap = SET_OPTIONS.get(st.option) if op == "setsockopt" else None
            if cap is not None:
                ts.checks.append(km._cap(op, K.check(cap), ts.subject, env))

    def _pass(self, ts: TraceStep, sock: _Sock, owner: Context) -> None:
        """The socket reaches the traced domain in another process (recvfd) or across an exec
        that changes the domain: file_has_perm(cred, file, file_to_av(file)).  fd use on the
        descriptor's owner (the creator, who made or accepted it) unless the SIDs are equal;
        then read and write, one avc_has_perm call, on the socket's inode label (an accepted
        connection's inode keeps the listener's label: selinux_socket_accept)."""
        op = ts.step.op
        use = None
        if ts.subject != owner:
            use = Check(K.check(f"{op}.fd_use"), op, ts.subject, owner, "fd")
            ts.checks.append(use)
        read = Check(K.check(f"{op}.read"), op, ts.subject, sock.label, sock.sclass, needs=use)
        ts.checks.append(read)
        ts.checks.append(Check(K.check(f"{op}.write"), op, ts.subject, sock.label, sock.sclass,
                               needs=use, same_call=read))
        ts.notes.append(note(f"trace-{op}", creator=owner, domain=ts.subject))
        if sock.child is not None:
            ts.notes.append(note("trace-pass-accepted", context=sock.label))

    def _bind(self, ts: TraceStep, sock: _Sock, env: NetEnv) -> None:
        st = ts.step
        assert st.endpoint is not None
        p = self._plan(ts, sock, env)
        af_err = "EINVAL" if sock.sclass == "sctp_socket" else "EAFNOSUPPORT"
        if st.unspec:
            if sock.family == 6:
                # __selinux_socket_bind: AF_UNSPEC on an AF_INET6 socket goes to err_af
                p.sockperm("bind", "bind.bind")
                ts.error = _err(af_err, "__selinux_socket_bind", K.HOOKS, 4731,
                                "bind(AF_UNSPEC) on an IPv6 socket")
                return
            if st.endpoint.family != 4 or not st.endpoint.address.is_unspecified:
                p.sockperm("bind", "bind.bind")
                ts.error = _err(af_err, "__selinux_socket_bind", K.HOOKS, 4737,
                                "bind(AF_UNSPEC) is accepted only for INADDR_ANY (as __inet_bind)")
                return
            ts.notes.append(note("trace-bind-unspec"))
        ep = self._endpoint(st, sock)
        self.km._bind_checks(p, "bind", ep)
        # raw_bind has no double-bind check; ping_bind and __inet_bind do
        if sock.proto != "raw" and (sock.has_port or sock.listening or sock.peer is not None):
            fn, file, line = (("__inet6_bind", K.AF_INET6, 318) if sock.family == 6
                              else ("__inet_bind", K.AF_INET, 517))
            ts.error = _err("EINVAL", fn, file, line, "the socket is already bound")
            return
        sock.bound = ep

    def _accept(self, ts: TraceStep, sock: _Sock, env: NetEnv) -> None:
        p = self._plan(ts, sock, env)
        if not sock.stream:
            p.sockperm("accept", "accept.accept")
            ts.error = _err("EOPNOTSUPP", "sock_no_accept", SOCK_C, 3213,
                            f"{sock.proto} sockets cannot accept")
            return
        if not sock.listening:
            p.sockperm("accept", "accept.accept")
            ts.error = _err("EINVAL", "inet_csk_accept", "net/ipv4/inet_connection_sock.c", 666,
                            "the socket is not listening")
            return
        # The SYN reaches the listener; the SYN-ACK leaves with the connection's label
        # (selinux_conn_sid); the accepted socket gets that label (selinux_socket_accept
        # copies the listener's, selinux_inet_csk_clone the connection's).
        sc = Scenario("trace", ts.subject, p.sc.endpoint, env)
        child = self.km._conn_sid(sock.label, sc)
        remote = self._remote(sock, env)
        self.km._packets(p, "rx", sock.label, remote, "incoming connection")
        self.km._packets(p, "tx", child, remote, "SYN-ACK")
        p.sockperm("accept", "accept.accept")
        ts.notes.append(note("accepted-socket-label", context=child))
        sock.child = child
        sock.sender = remote

    def _connect(self, ts: TraceStep, sock: _Sock, env: NetEnv) -> None:
        st = ts.step
        p = self._plan(ts, sock, env)
        p.sockperm("connect", "connect.connect")
        if st.unspec:
            # selinux_socket_connect_helper returns before name_connect for AF_UNSPEC
            ts.notes.append(note("trace-disconnect"))
            if sock.proto == "sctp":
                ts.error = _err("EOPNOTSUPP", "sctp_inet_connect", K.SCTP, 4846,
                                "SCTP has no connect(AF_UNSPEC) disconnect")
                return
            sock.peer = None
            sock.listening = False
            sock.shut = False
            if sock.bound is None:
                sock.autobound = False  # the disconnect releases an automatic port
            return
        ep = self._endpoint(st, sock)
        self.km._name_connect(p, "connect", ep)
        if sock.stream and (sock.peer is not None or sock.listening):
            ts.error = _err("EISCONN", "__inet_stream_connect", K.AF_INET, 648,
                            "the socket is connected or listening")
            return
        if not sock.stream and self._broadcast_refused(ts, sock, ep.address):
            return
        if not sock.has_port:
            ts.notes.append(note("implicit-bind"))
            sock.autobound = True
        if sock.stream:
            ts.notes.append(note("trace-peer-assumed", endpoint=ep))
            self.km._packets(p, "tx", sock.label, ep.address, "connect")
            self.km._packets(p, "rx", sock.label, ep.address, "connect")
        sock.peer = ep.address

    def _send(self, ts: TraceStep, sock: _Sock, env: NetEnv) -> None:
        st = ts.step
        target = sock.child or sock.label
        p = self._plan(ts, sock, env, target)
        p.sockperm("send", "send.write")
        if sock.stream:
            if sock.proto == "sctp" and sock.child is None and sock.peer is None:
                raise InputError("sctp: an association set up by sendmsg is not modelled; "
                                 "connect first")
            if sock.shut:
                ts.error = _err("EPIPE", "tcp_sendmsg_locked", "net/ipv4/tcp.c", 1313,
                                "the stream is shut down for sending")
            elif sock.child is None and sock.peer is None:
                ts.error = _err("EPIPE", "sk_stream_wait_connect", "net/core/stream.c", 67,
                                "the stream is not connected")
            return  # stream data: the connection's packets were checked at connect/accept
        if st.op == "sendto":
            remote = self._endpoint(st, sock).address
        elif sock.peer is not None or sock.sender is not None:
            remote = self._remote(sock, env)
        else:
            fn, file, line = _NO_DEST[(sock.proto, sock.family)]
            ts.error = _err("EDESTADDRREQ", fn, file, line,
                            "no destination: the socket is not connected")
            return
        if not sock.has_port:  # inet_send_prepare, before the protocol's sendmsg
            ts.notes.append(note("autobind"))
            sock.autobound = True
        if self._broadcast_refused(ts, sock, remote):  # routing, before the buffer
            return
        if sock.shut:
            # observed on 6.1: the datagram's buffer is refused after shutdown()
            ts.error = _err("EPIPE", "sock_alloc_send_pskb", SOCK_C, 2771,
                            "the socket is shut down for sending")
            return
        self.km._packets(p, "tx", target, remote, "send")

    def _broadcast_refused(self, ts: TraceStep, sock: _Sock, remote: IPAddress) -> bool:
        """An IPv4 datagram to the limited broadcast address without SO_BROADCAST: EACCES
        from the protocol after routing (udp_sendmsg, ping_v4_sendmsg, raw_sendmsg,
        ip4_datagram_connect), not from SELinux.  Other broadcast addresses depend on the
        routes, which selnet does not know."""
        if sock.family != 4 or sock.broadcast or remote != _LIMITED_BROADCAST:
            return False
        fn, file, line = _BROADCAST[sock.proto] if ts.step.op != "connect" else (
            "__ip4_datagram_connect", "net/ipv4/datagram.c", 59)
        ts.error = _err("EACCES", fn, file, line,
                        "a broadcast destination without SO_BROADCAST (when a route to it "
                        "exists; ENETUNREACH otherwise)")
        return True
