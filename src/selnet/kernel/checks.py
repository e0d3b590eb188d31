"""Every network check the kernel makes: one table, read from the source.

Each entry names the function that makes the check (the one that calls
``avc_has_perm``/``sock_has_perm``/``ns_capable``), its file and line, the path that
reaches it, the condition under which it runs, the roles of its subject and target,
its class and permission, and the errno an enforced denial gives.  Everything was
read from Debian's linux-source-6.1 (6.1.192): ``security/selinux/hooks.c``,
``netlabel.c``, ``xfrm.c``, ``net/ipv4/af_inet.c``, ``net/ipv6/af_inet6.c``,
``net/sctp/socket.c``, ``net/core/sock.c``.  The same files of Debian's linux-source-6.12
(6.12.107) make the same checks under the same conditions with the same errnos (they
differ in form only), and the conformance suite finds 6.12.117 behaving as 6.1.192 on
every scenario (docs/conformance.md): the table has no kernel-version condition, and the
line numbers are 6.1's.

The kernel model (:mod:`selnet.model.plan`) builds its plans from these entries; AVC
diagnosis looks them up by (class, permission); profiles, fixes and docs enumerate
them.  docs/kernel-model.md is checked against this table by a test.

Roles: ``task`` (the calling process's domain), ``socket`` (the socket's label),
``port``, ``node``, ``netif`` (the looked-up labels), ``peer`` (the packet's peer label:
NetLabel, labeled IPsec, else the ``unlabeled`` initial SID), ``packet`` (its SECMARK
label), ``sa`` (an IPsec SA / SPD label), ``owner`` (a descriptor's owner: the domain of the
process that opened the file, for a socket the one that called socket() or accept()).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from selnet.kernel.classes import CAPABILITY_CLASSES, INET_SOCKET_CLASSES

KERNEL_VERSION = "6.1.192"  # Debian linux-source-6.1, read for this table

Role = Literal["task", "socket", "port", "node", "netif", "peer", "packet", "sa", "owner"]
# tclass: a class name, or one of these placeholders resolved by the model.
SOCKET_CLASS = "<socket>"  # the socket's own class (socket_type_to_security_class)
CAP_CLASS = "<capability>"  # capability, or cap_userns in a non-initial user namespace

# the errno of a check whose enforced denial fails nothing (the kernel carries on without)
NO_ERRNO = ""

HOOKS = "security/selinux/hooks.c"
AF_INET = "net/ipv4/af_inet.c"
AF_INET6 = "net/ipv6/af_inet6.c"
SCTP = "net/sctp/socket.c"


@dataclass(frozen=True, slots=True)
class KernelCheck:
    id: str  # stable name, e.g. "bind.name_bind"
    step: str  # the syscall or packet direction: socket, bind, connect, listen, ... rx, tx
    hook: str  # the kernel function that makes the check
    line: int  # in KERNEL_VERSION
    file: str
    path: str  # how it is reached
    condition: str  # when the kernel makes it
    subject: Role
    target: Role
    tclass: str
    perm: str
    errno: str  # what an enforced denial gives the caller
    operation: str  # what the program was doing, in plain words
    # An enforced denial closes the descriptor instead of failing the call: the call
    # succeeds and the program's next call on the socket fails with ``errno``
    # (flush_unauthorized_files at exec puts /dev/null in the socket's place).
    closes: bool = False

    def matches(self, tclass: str, perm: str) -> bool:
        """Does an AVC of (tclass, perm) come from this check?"""
        if perm != self.perm:
            return False
        if self.tclass == SOCKET_CLASS:
            return tclass in INET_SOCKET_CLASSES
        if self.tclass == CAP_CLASS:
            return tclass in CAPABILITY_CLASSES
        return tclass == self.tclass


def _sock(id_: str, step: str, hook: str, line: int, perm: str, operation: str,
          condition: str = "every call (kernel sockets are exempt: sock_has_perm)",
          path: str = "") -> KernelCheck:
    return KernelCheck(id_, step, hook, line, HOOKS, path or f"net/socket.c -> {hook}", condition,
                       "task", "socket", SOCKET_CLASS, perm, "EACCES", operation)


_NOT_COMPAT = "with network_peer_controls"
_PEERLBL = "peer labeling active (NetLabel or labeled IPsec configured, or always_check_network)"
_SECMARK = "SECMARK active (SECMARK rules loaded, or always_check_network)"
_COMPAT = "policy without network_peer_controls (the compat path)"

CHECKS: tuple[KernelCheck, ...] = (
    # -- socket() ------------------------------------------------------------------
    _sock("socket.create", "socket", "selinux_socket_create", 4634, "create", "socket()",
          condition="every userspace socket(); before the protocol's create"),
    KernelCheck("socket.net_raw", "socket", "inet_create", 306, AF_INET,
                "__sock_create -> inet_create", "SOCK_RAW created from userspace (IPv4)",
                "task", "task", CAP_CLASS, "net_raw", "EPERM", "socket(AF_INET, SOCK_RAW)"),
    KernelCheck("socket.net_raw6", "socket", "inet6_create", 179, AF_INET6,
                "__sock_create -> inet6_create", "SOCK_RAW created from userspace (IPv6)",
                "task", "task", CAP_CLASS, "net_raw", "EPERM", "socket(AF_INET6, SOCK_RAW)"),
    # -- bind() ---------------------------------------------------------------------
    _sock("bind.bind", "bind", "__selinux_socket_bind", 4694, "bind", "bind()",
          path="__sys_bind -> selinux_socket_bind -> __selinux_socket_bind"),
    KernelCheck("bind.name_bind", "bind", "__selinux_socket_bind", 4759, HOOKS,
                "__sys_bind -> selinux_socket_bind -> __selinux_socket_bind",
                "port != 0 and (port < ip_unprivileged_port_start or port outside "
                "ip_local_port_range)", "socket", "port", SOCKET_CLASS, "name_bind", "EACCES",
                "bind() to a local port"),
    KernelCheck("bind.node_bind", "bind", "__selinux_socket_bind", 4779, HOOKS,
                "__sys_bind -> selinux_socket_bind -> __selinux_socket_bind",
                "every IPv4/IPv6 bind (port 0 included)", "socket", "node", SOCKET_CLASS,
                "node_bind", "EACCES", "bind() to a local address"),
    # The capability comes after the SELinux bind hook: __sys_bind runs the hook first.
    KernelCheck("bind.net_bind_service", "bind", "__inet_bind", 499, AF_INET,
                "__sys_bind -> inet_bind -> __inet_bind",
                "port != 0 and port < ip_unprivileged_port_start (IPv4 TCP, UDP, DCCP)",
                "task", "task", CAP_CLASS, "net_bind_service", "EACCES",
                "bind() to a port below ip_unprivileged_port_start"),
    KernelCheck("bind.net_bind_service6", "bind", "__inet6_bind", 309, AF_INET6,
                "__sys_bind -> inet6_bind -> __inet6_bind",
                "port != 0 and port < ip_unprivileged_port_start (IPv6 TCP, UDP, DCCP)",
                "task", "task", CAP_CLASS, "net_bind_service", "EACCES",
                "bind() to a port below ip_unprivileged_port_start"),
    KernelCheck("bind.net_bind_service_sctp", "bind", "sctp_do_bind", 416, SCTP,
                "sctp_bind / sctp_bindx_add / sctp_autobind -> sctp_do_bind",
                "port != 0 and port < ip_unprivileged_port_start (SCTP, both families)",
                "task", "task", CAP_CLASS, "net_bind_service", "EACCES",
                "bind() to a port below ip_unprivileged_port_start"),
    # -- connect() --------------------------------------------------------------------
    _sock("connect.connect", "connect", "selinux_socket_connect_helper", 4839, "connect",
          "connect()", path="__sys_connect -> selinux_socket_connect -> "
          "selinux_socket_connect_helper"),
    KernelCheck("connect.name_connect", "connect", "selinux_socket_connect_helper", 4913, HOOKS,
                "__sys_connect -> selinux_socket_connect -> selinux_socket_connect_helper",
                "tcp_socket, dccp_socket, sctp_socket only (no name_connect for UDP, ping, raw)",
                "socket", "port", SOCKET_CLASS, "name_connect", "EACCES",
                "connect() to a remote port"),
    # -- listen(), accept() -----------------------------------------------------------
    _sock("listen.listen", "listen", "selinux_socket_listen", 4938, "listen", "listen()"),
    _sock("accept.accept", "accept", "selinux_socket_accept", 4949, "accept", "accept()"),
    # -- data ------------------------------------------------------------------------------
    _sock("send.write", "send", "selinux_socket_sendmsg", 4974, "write",
          "send/sendto/sendmsg/write"),
    KernelCheck("send.fastopen_connect", "send", "selinux_socket_connect_helper", 4839, HOOKS,
                "selinux_socket_sendmsg -> selinux_socket_connect -> "
                "selinux_socket_connect_helper",
                "sendto(MSG_FASTOPEN) with an address on TCP (Debian backport in 6.1.180)",
                "task", "socket", SOCKET_CLASS, "connect", "EACCES",
                "sendto(MSG_FASTOPEN): TCP Fast Open"),
    _sock("recv.read", "recv", "selinux_socket_recvmsg", 4993, "read",
          "recv/recvfrom/recvmsg/read"),
    # -- other socket calls --------------------------------------------------------------
    _sock("getsockname.getattr", "getsockname", "selinux_socket_getsockname", 4998, "getattr",
          "getsockname()"),
    _sock("getpeername.getattr", "getpeername", "selinux_socket_getpeername", 5003, "getattr",
          "getpeername()"),
    _sock("setsockopt.setopt", "setsockopt", "selinux_socket_setsockopt", 5010, "setopt",
          "setsockopt()"),
    _sock("getsockopt.getopt", "getsockopt", "selinux_socket_getsockopt", 5020, "getopt",
          "getsockopt()"),
    _sock("shutdown.shutdown", "shutdown", "selinux_socket_shutdown", 5025, "shutdown",
          "shutdown()"),
    KernelCheck("ioctl.ioctl", "ioctl", "ioctl_has_perm", 3642, HOOKS,
                "do_vfs_ioctl -> selinux_file_ioctl -> ioctl_has_perm",
                "ioctl() on the socket's file", "task", "socket", SOCKET_CLASS, "ioctl",
                "EACCES", "ioctl() on the socket"),
    KernelCheck("setsockopt.net_admin", "setsockopt", "sk_setsockopt", 1114, "net/core/sock.c",
                "setsockopt(SOL_SOCKET) -> sk_setsockopt",
                "SO_DEBUG, SO_SNDBUFFORCE/SO_RCVBUFFORCE, SO_MARK, SO_PRIORITY > 6, busy-poll "
                "options, SO_TXTIME with another clock", "task", "task", CAP_CLASS, "net_admin",
                "EPERM", "an administrative socket option"),
    # SO_DEBUG refuses with EACCES, not EPERM (sk_setsockopt: ret = -EACCES)
    KernelCheck("setsockopt.net_admin_debug", "setsockopt", "sk_setsockopt", 1115,
                "net/core/sock.c", "setsockopt(SOL_SOCKET, SO_DEBUG) -> sk_setsockopt",
                "SO_DEBUG set to a non-zero value", "task", "task", CAP_CLASS, "net_admin",
                "EACCES", "setsockopt(SO_DEBUG)"),
    KernelCheck("setsockopt.net_raw", "setsockopt", "sk_setsockopt", 1361, "net/core/sock.c",
                "setsockopt(SOL_SOCKET) -> sk_setsockopt / sock_bindtoindex_locked",
                "SO_MARK, SO_PRIORITY > 6 (or CAP_NET_ADMIN); SO_BINDTODEVICE when already bound",
                "task", "task", CAP_CLASS, "net_raw", "EPERM", "SO_MARK / SO_PRIORITY / rebinding "
                "to a device"),
    # -- a socket passed to another domain (file_has_perm) ------------------------------
    # fd use on the descriptor's owner when the receiver's SID differs, then the file's own
    # class and permissions on the socket's inode label (file_to_av: a socket's file is
    # open for reading and writing), in one avc_has_perm call for read and write.  An
    # accepted socket's inode keeps the listener's label (selinux_socket_accept).
    KernelCheck("recvfd.fd_use", "recvfd", "file_has_perm", 1713, HOOKS,
                "recvmsg(SCM_RIGHTS) -> scm_detach_fds -> receive_fd_user -> __receive_fd -> "
                "selinux_file_receive -> file_has_perm",
                "the receiver's domain is not the descriptor's owner", "task", "owner", "fd",
                "use", "MSG_CTRUNC", "receiving a socket over a unix socket (SCM_RIGHTS)"),
    KernelCheck("recvfd.read", "recvfd", "inode_has_perm", 1639, HOOKS,
                "__receive_fd -> selinux_file_receive -> file_has_perm -> inode_has_perm",
                "fd use passed (or was not needed)", "task", "socket", SOCKET_CLASS, "read",
                "MSG_CTRUNC", "receiving a socket over a unix socket (SCM_RIGHTS)"),
    KernelCheck("recvfd.write", "recvfd", "inode_has_perm", 1639, HOOKS,
                "__receive_fd -> selinux_file_receive -> file_has_perm -> inode_has_perm",
                "fd use passed (or was not needed)", "task", "socket", SOCKET_CLASS, "write",
                "MSG_CTRUNC", "receiving a socket over a unix socket (SCM_RIGHTS)"),
    KernelCheck("exec.fd_use", "exec", "file_has_perm", 1713, HOOKS,
                "execve -> begin_new_exec -> selinux_bprm_committing_creds -> "
                "flush_unauthorized_files -> match_file -> file_has_perm",
                "exec changes the domain; each inherited descriptor whose owner is not the "
                "new domain (the creator execs: the new program's mappings of its file, opened "
                "before the change, check fd use on the creator again; denied, the exec dies "
                "after its point of no return: observed on 6.1)", "task", "owner", "fd", "use",
                "SIGSEGV", "a socket inherited across exec into another domain"),
    KernelCheck("exec.read", "exec", "inode_has_perm", 1639, HOOKS,
                "flush_unauthorized_files -> match_file -> file_has_perm -> inode_has_perm",
                "exec changes the domain; fd use passed (or was not needed)", "task", "socket",
                SOCKET_CLASS, "read", "ENOTSOCK",
                "a socket inherited across exec into another domain", closes=True),
    KernelCheck("exec.write", "exec", "inode_has_perm", 1639, HOOKS,
                "flush_unauthorized_files -> match_file -> file_has_perm -> inode_has_perm",
                "exec changes the domain; fd use passed (or was not needed)", "task", "socket",
                SOCKET_CLASS, "write", "ENOTSOCK",
                "a socket inherited across exec into another domain", closes=True),
    # -- packets in (network_peer_controls) --------------------------------------------------
    KernelCheck("rx.netif_ingress", "rx", "selinux_inet_sys_rcv_skb", 5091, HOOKS,
                "sk_filter_trim_cap -> selinux_socket_sock_rcv_skb -> selinux_inet_sys_rcv_skb "
                "(also selinux_ip_forward)", _PEERLBL, "peer", "netif", "netif", "ingress",
                "ETIMEDOUT", "a packet arriving on an interface"),
    KernelCheck("rx.node_recvfrom", "rx", "selinux_inet_sys_rcv_skb", 5100, HOOKS,
                "sk_filter_trim_cap -> selinux_socket_sock_rcv_skb -> selinux_inet_sys_rcv_skb "
                "(also selinux_ip_forward)", _PEERLBL, "peer", "node", "node", "recvfrom",
                "ETIMEDOUT", "a packet received from a source address"),
    KernelCheck("rx.peer_recv", "rx", "selinux_socket_sock_rcv_skb", 5190, HOOKS,
                "sk_filter_trim_cap -> selinux_socket_sock_rcv_skb", _PEERLBL, "socket", "peer",
                "peer", "recv", "ETIMEDOUT", "a packet received from a labeled peer"),
    KernelCheck("rx.packet_recv", "rx", "selinux_socket_sock_rcv_skb", 5200, HOOKS,
                "sk_filter_trim_cap -> selinux_socket_sock_rcv_skb", _SECMARK, "socket", "packet",
                "packet", "recv", "ETIMEDOUT", "a packet received (SECMARK)"),
    # -- packets out ------------------------------------------------------------------------------
    KernelCheck("tx.packet_send", "tx", "selinux_ip_postroute", 5953, HOOKS,
                "NF_INET_POST_ROUTING -> selinux_ip_postroute", _SECMARK, "socket", "packet",
                "packet", "send", "ECONNREFUSED", "a packet sent (SECMARK)"),
    KernelCheck("tx.netif_egress", "tx", "selinux_ip_postroute", 5964, HOOKS,
                "NF_INET_POST_ROUTING -> selinux_ip_postroute", _PEERLBL, "socket", "netif",
                "netif", "egress", "ECONNREFUSED", "a packet leaving on an interface"),
    KernelCheck("tx.node_sendto", "tx", "selinux_ip_postroute", 5971, HOOKS,
                "NF_INET_POST_ROUTING -> selinux_ip_postroute", _PEERLBL, "socket", "node",
                "node", "sendto", "ECONNREFUSED", "a packet sent to a destination address"),
    # -- forwarding (not modelled as an operation; for diagnosis) -------------------------
    KernelCheck("forward.packet_forward_in", "forward", "selinux_ip_forward", 5746, HOOKS,
                "NF_INET_FORWARD -> selinux_ip_forward", f"{_SECMARK}, {_NOT_COMPAT}", "peer",
                "packet", "packet", "forward_in", "packet dropped", "a packet forwarded (in)"),
    KernelCheck("forward.packet_forward_out", "forward", "selinux_ip_postroute", 5953, HOOKS,
                "NF_INET_POST_ROUTING -> selinux_ip_postroute (forwarded packet)", _SECMARK,
                "peer", "packet", "packet", "forward_out", "packet dropped",
                "a packet forwarded (out)"),
    # -- the compat path (no network_peer_controls) ---------------------------------------
    KernelCheck("rx.compat_packet_recv", "rx", "selinux_sock_rcv_skb_compat", 5124, HOOKS,
                "selinux_socket_sock_rcv_skb -> selinux_sock_rcv_skb_compat",
                f"{_COMPAT}, SECMARK active", "socket", "packet", "packet", "recv", "ETIMEDOUT",
                "a packet received (SECMARK, compat path)"),
    KernelCheck("rx.compat_netlabel_recvfrom", "rx", "selinux_netlbl_sock_rcv_skb", 467,
                "security/selinux/netlabel.c",
                "selinux_sock_rcv_skb_compat -> selinux_netlbl_sock_rcv_skb",
                f"{_COMPAT}, NetLabel labels the packet", "socket", "peer", SOCKET_CLASS,
                "recvfrom", "ETIMEDOUT", "a NetLabel-labeled packet received (compat path)"),
    KernelCheck("rx.compat_association_recvfrom", "rx", "selinux_xfrm_sock_rcv_skb", 427,
                "security/selinux/xfrm.c",
                "selinux_sock_rcv_skb_compat -> selinux_xfrm_sock_rcv_skb",
                f"{_COMPAT}: every packet (the SA label, unlabeled without one)", "socket", "sa",
                "association", "recvfrom", "ETIMEDOUT", "a packet received (IPsec association)"),
    KernelCheck("tx.compat_packet_send", "tx", "selinux_ip_postroute_compat", 5827, HOOKS,
                "selinux_ip_postroute -> selinux_ip_postroute_compat",
                f"{_COMPAT}, SECMARK active", "socket", "packet", "packet", "send", "ECONNREFUSED",
                "a packet sent (SECMARK, compat path)"),
    KernelCheck("tx.compat_association_sendto", "tx", "selinux_xfrm_postroute_last", 471,
                "security/selinux/xfrm.c",
                "selinux_ip_postroute_compat -> selinux_xfrm_postroute_last",
                f"{_COMPAT}: a packet without a labeled SA", "socket", "sa", "association",
                "sendto", "ECONNREFUSED", "a packet sent (IPsec association, compat path)"),
    # -- labeled IPsec (the route lookup of an outgoing flow) and SCTP associations ------
    # polmatch first: a denial (-EACCES becomes -ESRCH) only makes the SPD entry not apply,
    # so the flow leaves unprotected and nothing fails (NO_ERRNO).  Then the SA: only one
    # carrying the flow's own label can match, and sendto on it must pass; without one the
    # flow gets a blackhole route (larval_drop): nothing is sent, a TCP handshake waits.
    KernelCheck("xfrm.association_polmatch", "tx", "selinux_xfrm_policy_lookup", 166,
                "security/selinux/xfrm.c",
                "xfrm_lookup -> xfrm_policy_lookup_bytype -> selinux_xfrm_policy_lookup",
                "labeled IPsec: the flow matches a labeled SPD entry's selector (--spd)",
                "socket", "sa", "association", "polmatch", NO_ERRNO,
                "a flow matched to a labeled IPsec SPD entry"),
    KernelCheck("xfrm.association_sendto", "tx", "selinux_xfrm_state_pol_flow_match", 208,
                "security/selinux/xfrm.c",
                "xfrm_tmpl_resolve -> xfrm_state_find -> selinux_xfrm_state_pol_flow_match",
                "labeled IPsec: polmatch passed; the SA whose label is the flow's own",
                "socket", "socket", "association", "sendto", "ETIMEDOUT",
                "a flow given its labeled IPsec SA"),
    KernelCheck("xfrm.association_setcontext", "xfrm", "selinux_xfrm_alloc_user", 106,
                "security/selinux/xfrm.c", "xfrm_user -> selinux_xfrm_alloc_user / _delete",
                "labeled IPsec: adding or deleting an SA/SPD entry with a context", "task", "sa",
                "association", "setcontext", "EACCES", "setting up a labeled IPsec SA"),
    KernelCheck("sctp.association", "rx", "selinux_sctp_process_new_assoc", 5380, HOOKS,
                "selinux_sctp_assoc_request -> selinux_sctp_process_new_assoc",
                "an SCTP association arrives, peer labeling active", "socket", "peer",
                "sctp_socket", "association", "ECONNREFUSED", "an SCTP association from a peer"),
)

BY_ID: dict[str, KernelCheck] = {c.id: c for c in CHECKS}


def check(id_: str) -> KernelCheck:
    return BY_ID[id_]


# The checks file_has_perm makes on a passed or inherited socket: their AVC records carry
# the file's audit data (path="socket:[INODE]" dev="sockfs" ino=), a socket call's do not.
FILE_HOOKS = frozenset({"file_has_perm", "inode_has_perm"})


def for_avc(tclass: str, perm: str, file: bool | None = None) -> tuple[KernelCheck, ...]:
    """The checks an AVC record of (tclass, perm) can come from; ``file``: the record
    has the file's audit data (True) or not (False), None: either."""
    return tuple(c for c in CHECKS if c.matches(tclass, perm)
                 and (file is None or (c.hook in FILE_HOOKS) == file))


def net_bind_service(proto: str, family: int) -> KernelCheck:
    """Which function checks CAP_NET_BIND_SERVICE on bind() (af_inet.c, af_inet6.c, sctp)."""
    if proto == "sctp":
        return BY_ID["bind.net_bind_service_sctp"]
    return BY_ID["bind.net_bind_service6" if family == 6 else "bind.net_bind_service"]


def net_raw(family: int) -> KernelCheck:
    return BY_ID["socket.net_raw6" if family == 6 else "socket.net_raw"]


def steps() -> Iterator[str]:
    return iter(dict.fromkeys(c.step for c in CHECKS))
