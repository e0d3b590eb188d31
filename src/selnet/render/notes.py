"""Every note's sentence: notes are typed codes (selnet.notes) until they reach here."""

from __future__ import annotations

from selnet.model.plan import Check
from selnet.notes import Note

TEXT: dict[str, str] = {
    # the kernel model (model/plan.py)
    "kernel-sid-socket": "the socket has the kernel initial SID: sock_has_perm checks are skipped",
    "socket-type-transition": "socket labeled {type} by a type_transition rule on {tclass}",
    "socket-sockcreate": "socket labeled {context} by setsockcreatecon (needs process setsockcreate)",
    "no-extended-socket-class": "no extended_socket_class policy capability: {proto} sockets are "
    "rawip_socket",
    "ping-group-range": "ping sockets need no capability; the group must be in "
    "net.ipv4.ping_group_range",
    "ping-group-excluded": "net.ipv4.ping_group_range is {low} {high}: socket() fails with "
    "EACCES after the create check (ping_init_sock), whatever SELinux allows",
    "no-packet-checks": "no per-packet checks: no labeled networking, no SECMARK, no "
    "always_check_network",
    "implicit-bind": "connect() picks an ephemeral source port: the implicit bind checks nothing",
    "no-name-connect": "{tclass} has no name_connect: the destination port is not checked",
    "datagram-server": "datagram server: no listen/accept",
    "accepted-socket-label": "the accepted socket carries the listening socket's label ({context})",
    "autobind": "sendto() on an unbound socket autobinds an ephemeral port: no checks",
    "fastopen": "TCP Fast Open: sendmsg is checked like connect (observed on 6.1)",
    "listen-autobind": "listen() on an unbound socket picks a port itself (inet_autobind, "
    "inet_csk_listen_start): no bind hook, so no name_bind or node_bind",
    # traces (model/trace.py)
    "trace-handoff": "the socket passes from {creator} to {domain}: later steps are "
    "{domain}'s, on the socket's own label",
    "trace-inherited": "socket inherited from {creator}: each check has {domain} as subject and "
    "the socket's label as target (sock_has_perm); passed over a unix socket or inherited "
    "across exec, {domain} also needs fd use on {creator} and read/write on the socket "
    "(file_has_perm: the recvfd and exec steps)",
    "trace-recvfd": "{domain} receives the socket over a unix socket (SCM_RIGHTS): "
    "selinux_file_receive checks fd use on {creator} (the descriptor's owner), then read and "
    "write on the socket; a denial installs no descriptor (recvmsg succeeds with MSG_CTRUNC). "
    "The unix socket's own checks are not modelled",
    "trace-exec": "the creator's process execs into {domain} with the socket open: "
    "flush_unauthorized_files checks fd use on {creator}, then read and write on the socket; a "
    "denial silently replaces the descriptor with /dev/null (the exec succeeds, the next socket "
    "call fails with ENOTSOCK). The exec's own checks (transition, entrypoint) are not modelled",
    "trace-pass-accepted": "the descriptor is the accepted connection; its inode keeps the "
    "listener's label {context} (selinux_socket_accept), which read and write are checked on",
    "trace-recv-unbound": "recv() on an unbound datagram socket: nothing can reach it",
    "trace-bind-unspec": "bind(AF_UNSPEC, INADDR_ANY) on an IPv4 socket is bind(AF_INET, "
    "0.0.0.0) (__inet_bind, __selinux_socket_bind)",
    "trace-disconnect": "connect(AF_UNSPEC) disconnects: only the connect permission is checked "
    "(selinux_socket_connect_helper returns before name_connect)",
    "trace-peer-assumed": "assumes a peer accepts at {endpoint}",
    # profiles (analyses/profiles.py)
    "profile-ephemeral": "ports inside ip_local_port_range ({low}-{high}) need no name_bind: "
    "bind() there checks only bind and node_bind",
    "profile-bind-service": "below ip_unprivileged_port_start ({start}) bind() also needs "
    "capability net_bind_service",
    "profile-socket-subject": "the subject of name_bind, node_bind and name_connect is the "
    "socket's label",
    "profile-compat": "no network_peer_controls: compat association checks apply to every packet",
    "port-ephemeral": "{query} is inside ip_local_port_range {low}-{high}: bind() to it checks no "
    "name_bind at all (only bind and node_bind), whatever its type",
    "port-no-name-connect": "{proto}: no name_connect exists for {tclass}: clients are not "
    "port-restricted by SELinux",
    "port-mls-default-level": "domains are decided at their user's default level (constraints "
    "apply)",
    # fixes (fix/engine.py)
    "fix-boolean": "set {names}: a rule written for this access exists under it",
    "fix-relabel-generic": "label port {ports}/{proto} {type} (now {old}, a generic type): a "
    "port type {direct_words}",
    "fix-relabel-service": "label port {ports}/{proto} {type} instead of {old} (semanage port "
    "-m): serve on it as your own service's port",
    "fix-relabel-evidence": "label port {ports}/{proto} {type} (now {old}): the {source_words} "
    "says it is that service's port",
    "fix-refused": "not applicable to this policy: {reason}",
    "fix-new-port-type": "a port type of its own, {type}, for {ports}/{proto} (a local module "
    "and semanage port)",
    "fix-port-range": "the program picks its ports at random: let it pick inside "
    "ip_local_port_range ({low}-{high} now; {new_low}-{new_high} covers them), where bind() "
    "checks no name_bind, or configure it to bind a fixed port",
    "fix-rule": "the narrowest rule for exactly this access",
    "fix-rule-socket-from": "the narrowest rule for the service's use of {creator}'s socket "
    "(the logged denial and the checks that follow it)",
    "fix-interface": "the refpolicy interface that grants it: {names}",
    # diagnosis (audit/diagnose.py)
    "log-not-mls": "the log has no MLS levels but this policy is MLS",
    "softirq-process-fields": "pid/comm are meaningless here: per-packet checks run in softirq "
    "context and name whatever process happened to be running",
    "obsolete-record": "{tclass} {perm}: {reason}; a current kernel never checks it, so this "
    "record comes from an old kernel (or a userspace object manager)",
    "foreign-policy": "the log comes from another policy than the one given ({problems}): pass "
    "that policy with --policy",
    "no-portcon-for-class": "{tclass}: no portcon can match (the 'port' initial SID is used)",
    "port-relabeled": "port {port}/{proto} is labeled {now} in this policy, but the AVC says "
    "{logged}: relabeled since (a local semanage record) or the log comes from another policy",
    "record-permissive": "permissive: the access went through, but it would have been denied in "
    "enforcing mode",
    "domain-permissive": "{domain} is a permissive domain in this policy",
    "label-differs": "as logged ({logged}) the access is still denied; under this policy's label "
    "for {port}/{proto} ({now}) it would be allowed: give the port that label on the machine "
    "that logged it",
    "allowed-now": "the given policy allows this now (a boolean, label or rule changed since the "
    "log was written)",
    "origin-socket-activation": "socket activation: {creator} (PID 1) created this {tclass} and "
    "handed it to {domain}, so the kernel checks {domain} against {creator}'s socket, not a "
    "port; serving on it checks {perms}",
    "origin-inetd": "an inetd child: {creator} accepted the connection and handed it to "
    "{domain}, so the kernel checks {domain} against {creator}'s {tclass}; serving on it "
    "checks {perms}",
    "origin-passed": "a socket inherited or passed from {creator} (across exec, or over a unix "
    "socket): the kernel checks {domain} against {creator}'s {tclass}; using it checks {perms}",
    "fd-use-creator": "fd use on {creator}: {domain} got the descriptor across exec or over a "
    "unix socket, and file_has_perm checks it against the domain that opened it (selnet "
    "trace's recvfd and exec steps)",
    "dontaudit-hidden": "a dontaudit rule in this policy hides this denial (the AVC is not "
    "logged); `semodule -DB` disables dontaudit rules to reveal it",
    "subsystem-secmark": "subsystem: SECMARK (iptables/nftables SECMARK rules label packets; with "
    "SECMARK active every packet is checked against its secmark)",
    "subsystem-peer": "subsystem: peer labeling (NetLabel CIPSO/CALIPSO or fallback labels, or "
    "labeled IPsec)",
    "subsystem-ipsec": "subsystem: labeled IPsec (SPD/SA contexts)",
    "subsystem-peer-active": "subsystem: peer labeling (NetLabel or labeled IPsec) is active",
    "subsystem-peer-active-acn": "subsystem: peer labeling (NetLabel or labeled IPsec) is active, "
    "or always_check_network",
    "peer-is-subject": "the subject here ({domain}) is the PEER label of the packet, not the "
    "receiving process: grant it to the peer label",
    "subsystem-compat": "compat path (no network_peer_controls): NetLabel/IPsec peer label "
    "checked against the socket",
    "always-check-network": "the policy enables always_check_network: packets are checked even "
    "without SECMARK/NetLabel configuration",
    "unlabeled-means-none": "{type} means no label was supplied (unlabeled traffic: no "
    "NetLabel/IPsec peer label, or no SECMARK on the packet)",
}


def note_text(n: Note) -> str:
    args = dict(n.args)
    if n.code == "fix-relabel-evidence":
        src = args.get("source", "")
        args["source_words"] = ("log's label" if src == "logged" else "given policy's label"
                                if src == "policy-label"
                                else f"port's {src.removesuffix('-label')} label")
    if n.code == "fix-relabel-generic":
        args["direct_words"] = ("the domain's rules name directly" if args.get("direct") == "yes"
                                else "the domain may use through an attribute")
    return TEXT[n.code].format(**args)


def notes_text(notes: list[Note] | tuple[Note, ...]) -> list[str]:
    return [note_text(n) for n in notes]


def target_text(c: Check) -> str:
    """What a check's target is, in words: the looked-up record, or the object's role."""
    lab = c.label
    role = c.spec.target
    prefix = f"{c.phase}: " if c.phase and c.phase != "accepted" else ""
    if role == "socket":
        return "the accepted socket" if c.phase == "accepted" else "the socket"
    if c.spec.subject == "task" and role == "task":
        return f"CAP_{c.perm.upper()}"
    if lab is not None:
        how = lab.matched.describe() if lab.matched is not None else \
            f"no {lab.kind}con: '{lab.kind}' initial SID"
        what = {"port": f"port {lab.query}", "node": f"address {lab.query}",
                "netif": f"interface {lab.query}"}[lab.kind]
        if c.spec.subject == "peer":
            where = "peer label on" if role == "netif" else "peer label from source"
            return f"{prefix}{where} {what} ({how})"
        if c.step == "tx" and role == "node":
            return f"{prefix}destination {what} ({how})"
        return f"{prefix}{what} ({how})"
    words = {
        "port": "no portcon can match this socket's protocol: the 'port' initial SID",
        "peer": "the peer label",
        "packet": "the packet's SECMARK label",
        "sa": "the IPsec SA label (unlabeled without one)",
    }
    return prefix + words.get(role, role)
