"""What a current kernel checks on the network classes (security/selinux/include/classmap.h).

A permission the policy declares but the kernel's class map lacks is never
consulted (kernel-network-checks.md 0.4, section 9): such grants do nothing.
"""

from __future__ import annotations

SOCKET_COMMON = frozenset(
    "ioctl read write create getattr setattr lock relabelfrom relabelto append map "  # noqa: SIM905
    "bind connect listen accept getopt setopt shutdown".split()
)

# Live permissions of each network class in a current kernel (classmap.h).
# Note: socket-common recvfrom/sendto/name_bind are real kernel bits too:
# name_bind is checked for every INET class; recvfrom only on the compat path.
KERNEL_PERMS: dict[str, frozenset[str]] = {
    "tcp_socket": SOCKET_COMMON | {"recvfrom", "sendto", "name_bind", "node_bind", "name_connect"},
    "udp_socket": SOCKET_COMMON | {"recvfrom", "sendto", "name_bind", "node_bind"},
    "rawip_socket": SOCKET_COMMON | {"recvfrom", "sendto", "name_bind", "node_bind"},
    "icmp_socket": SOCKET_COMMON | {"recvfrom", "sendto", "name_bind", "node_bind"},
    "sctp_socket": SOCKET_COMMON
    | {"recvfrom", "sendto", "name_bind", "node_bind", "name_connect", "association"},
    "dccp_socket": SOCKET_COMMON | {"recvfrom", "sendto", "name_bind", "node_bind", "name_connect"},
    "node": frozenset({"recvfrom", "sendto"}),
    "netif": frozenset({"ingress", "egress"}),
    "peer": frozenset({"recv"}),
    "packet": frozenset({"send", "recv", "relabelto", "forward_in", "forward_out"}),
    "association": frozenset({"sendto", "recvfrom", "setcontext", "polmatch"}),
}

CAPABILITY_CLASSES = frozenset({"capability", "capability2", "cap_userns", "cap2_userns"})
INET_SOCKET_CLASSES = frozenset(
    {"tcp_socket", "udp_socket", "rawip_socket", "icmp_socket", "sctp_socket", "dccp_socket"}
)
PACKET_CLASSES = frozenset({"node", "netif", "peer", "packet", "association"})
NETWORK_CLASSES = INET_SOCKET_CLASSES | PACKET_CLASSES | CAPABILITY_CLASSES
# A socket passed to another domain (SCM_RIGHTS, or inherited across exec) is checked with
# file_has_perm: ``fd use`` on the descriptor's owner first.  The policy snapshot keeps its
# rules too, so that check is decided like the others.
FD_CLASS = "fd"
SNAPSHOT_CLASSES = NETWORK_CLASSES | {FD_CLASS}

# Why each obsolete permission does nothing today (section 9).
# The compat_net checks (2.6.25-2.6.29 hooks.c; compat_net went in 2.6.30).  Inbound ones
# were made on the receiving socket (selinux_sock_rcv_skb_iptables_compat), outbound ones
# on the sending socket at postroute (selinux_ip_postroute_iptables_compat).  Today the
# peer/netif/node/packet checks of labeled networking and SECMARK replace them.
_LEGACY_IN = ("legacy compat_net inbound check, made against the RECEIVING socket "
              "(selinux_sock_rcv_skb_iptables_compat); removed in 2.6.30, replaced by netif "
              "ingress / node recvfrom / peer recv (labeled networking) and packet recv (SECMARK)")
_LEGACY_OUT = ("legacy compat_net outbound check, made against the sending socket at postroute "
               "(selinux_ip_postroute_iptables_compat); removed in 2.6.30, replaced by netif "
               "egress / node sendto (labeled networking) and packet send (SECMARK)")
OBSOLETE: dict[tuple[str, str], str] = {}
for _cls in ("netif", "node"):
    for _proto in ("tcp", "udp", "rawip", "dccp"):
        OBSOLETE[(_cls, f"{_proto}_recv")] = _LEGACY_IN
        OBSOLETE[(_cls, f"{_proto}_send")] = _LEGACY_OUT
for _cls in INET_SOCKET_CLASSES:
    OBSOLETE[(_cls, "recv_msg")] = _LEGACY_IN
    OBSOLETE[(_cls, "send_msg")] = _LEGACY_OUT
    OBSOLETE[(_cls, "sendto")] = "not checked for INET sockets (it is checked for unix_dgram_socket)"
OBSOLETE[("node", "enforce_dest")] = "never checked by mainline"
for _perm in ("connectto", "newconn", "acceptfrom"):
    OBSOLETE[("tcp_socket", _perm)] = "never checked by mainline (connectto is live for unix sockets)"
OBSOLETE[("packet", "flow_in")] = "never used upstream; dropped from the kernel class map"
OBSOLETE[("packet", "flow_out")] = "never used upstream; dropped from the kernel class map"


def obsolete_reason(tclass: str, perm: str) -> str | None:
    """Why a declared permission is never checked by a current kernel, or None if it is live."""
    if (tclass, perm) in OBSOLETE:
        return OBSOLETE[(tclass, perm)]
    live = KERNEL_PERMS.get(tclass)
    if live is not None and perm not in live:
        return "not in the kernel's class map: never checked"
    return None


# -- protocols and their socket classes (hooks.c socket_type_to_security_class) ---------
# What a user names on the command line: the IP protocols selnet models.
PROTOCOLS = ("tcp", "udp", "sctp", "dccp", "icmp", "raw")
# Protocols whose sockets carry a port that a portcon can label (sk_protocol of the
# portcon: tcp 6, udp 17, dccp 33, sctp 132).  Raw and ping sockets never match one.
PORT_PROTOCOLS = ("tcp", "udp", "sctp", "dccp")
# connect() exchanges packets, and servers listen/accept.
CONNECTION_PROTOCOLS = frozenset({"tcp", "sctp", "dccp"})
# selinux_socket_connect_helper checks name_connect only for these classes.
NAME_CONNECT_CLASSES = frozenset({"tcp_socket", "dccp_socket", "sctp_socket"})
# bind() below ip_unprivileged_port_start needs CAP_NET_BIND_SERVICE for these.
BIND_SERVICE_PROTOCOLS = frozenset({"tcp", "udp", "sctp", "dccp"})
# The portcon protocol of each port-carrying socket class.
CLASS_PROTOCOL = {"tcp_socket": "tcp", "udp_socket": "udp", "sctp_socket": "sctp",
                  "dccp_socket": "dccp"}


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
