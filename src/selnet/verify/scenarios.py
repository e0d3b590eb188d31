"""Scenario files (TOML) -> Scenario objects -> selnet command lines and guest shell.

A scenario file holds a default `policy` and any number of [[scenario]] tables
and [[matrix]] tables (a matrix expands to the cartesian product of its `vary`
lists, formatting every string field with the values; a list item that is a
table sets several names at once).  See conformance/README.md.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OPS = ("connect", "listen", "bind", "send", "trace")
# trace steps only the guest makes (harness plumbing, not socket calls of the program)
GUEST_ONLY = ("ready", "sleep=", "waiteof")
PROTOS = ("tcp", "udp", "sctp", "dccp", "icmp", "raw")
FIELDS = {
    "name",
    "policy",
    "op",
    "domain",
    "addr",
    "mode",
    "bools",
    "sysctl",
    "bind",
    "sockcreate",
    "labeled",
    "peer",
    "ipsec",
    "secmark",
    "fastopen",
    "note",
    "steps",
    "socket_from",
    "before",
    "after",
}
# labeled: the guest's NetLabel set-up (selnet is asked --labeled netlabel for each):
# netlabel a static (unlabeled fallback) label for lo, cipso/calipso the sender's MLS level
# in each packet (CIPSO pass on 127.0.0.0/8, CALIPSO pass on ::1), cipso-local the
# sender's whole SID (CIPSO local tag, loopback only)
NETLABEL = ("netlabel", "cipso", "cipso-local", "calipso")
SYSCTLS = (
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ping_group_range",
)


@dataclass
class Scenario:
    name: str
    policy: str
    op: str
    domain: str
    addr: str = ""  # trace: unused (the steps carry the addresses)
    mode: str = "enforcing"
    bools: dict[str, bool] = field(default_factory=dict)
    sysctl: dict[str, str] = field(default_factory=dict)
    bind: str | None = None
    sockcreate: str | None = None
    labeled: str | None = None
    peer: str | None = None
    ipsec: str | None = None  # labeled IPsec: the SPD entries' context (selnet --spd)
    secmark: str | None = None
    fastopen: bool = False
    note: str = ""
    # trace: the program's steps (selnet trace's language; "ready", "sleep=MS" and
    # "waiteof" are guest-only), the socket's creator, and kernel_t peers run before the
    # test (a listener) or after it is ready (a client)
    steps: list[str] = field(default_factory=list)
    socket_from: str | None = None
    before: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)
    source: str = ""
    context: str = ""  # full domain context (set from the policy variant)
    creator: str = ""  # full context of socket_from

    @property
    def unbound(self) -> bool:
        """listen without an address: only a protocol (tcp, tcp6)."""
        return self.op == "listen" and ":" not in self.addr

    def program_steps(self) -> list[str]:
        return [x for x in self.steps if not x.startswith(GUEST_ONLY)]

    # ---- parsed address
    @property
    def proto(self) -> str:
        if self.op == "trace":
            kind = self.steps[0].partition("=")[2] if self.steps else "tcp"
            return kind.rstrip("6")
        if self.unbound:
            return self.addr.rstrip("6") or "tcp"
        return self.addr.rpartition("/")[2] if "/" in self.addr.rpartition("]")[2] else "tcp"

    @property
    def hostport(self) -> tuple[str, int]:
        hp = self.addr.rsplit("/", 1)[0] if "/" in self.addr.rpartition("]")[2] else self.addr
        return split_hostport(hp)

    def selnet_argv(self, policy_path: str) -> list[str]:
        """The selnet command line this scenario stands for (after `selnet`)."""
        if self.op == "trace":
            a = [self.op, self.context or self.domain, *self.program_steps()]
            a += ["--policy", policy_path, "--json"]
            if self.socket_from:
                a += ["--socket-from", self.creator or self.socket_from]
        else:
            a = [self.op, self.context or self.domain, self.addr, "--policy", policy_path,
                 "--json"]
        for b, v in self.bools.items():
            a += ["--bool", f"{b}={'on' if v else 'off'}"]
        for k, val in self.sysctl.items():
            a += ["--sysctl", f"{k}={val}"]
        if self.bind:
            a += ["--bind", self.bind]
        if self.sockcreate:
            a += ["--sockcreate", self.sockcreate]
        if self.labeled:
            a += ["--labeled", "netlabel" if self.labeled in NETLABEL else self.labeled]
        if self.peer:
            a += ["--peer", self.peer]
        if self.ipsec:
            a += ["--spd", self.ipsec]
        if self.secmark:
            a += ["--secmark", self.secmark]
        if self.fastopen:
            a.append("--fastopen")
        return a


def split_hostport(s: str) -> tuple[str, int]:
    if s.startswith("["):
        host, _, port = s[1:].partition("]:")
    else:
        host, _, port = s.rpartition(":")
    return host, int(port)


def bind_hostport(bind: str) -> tuple[str, int]:
    """A scenario's ``bind``: ADDR:PORT, or ADDR alone (port 0)."""
    return split_hostport(bind if re.search(r":\d+$", bind) else f"{bind}:0")


def fmt(v: Any, values: dict[str, Any]) -> Any:
    if isinstance(v, str) and v.startswith("{") and v.endswith("}") and v[1:-1] in values:
        return values[v[1:-1]]  # a whole value (a list of steps, say), not text
    if isinstance(v, str):
        return v.format(**values)
    if isinstance(v, dict):
        return {fmt(k, values): fmt(x, values) for k, x in v.items()}
    if isinstance(v, list):
        return [fmt(x, values) for x in v]
    return v


def load(paths: list[Path], policies: dict[str, Any]) -> list[Scenario]:
    out: list[Scenario] = []
    for p in paths:
        data = tomllib.loads(p.read_text())
        default_policy = data.get("policy")
        raw: list[dict[str, Any]] = list(data.get("scenario", []))
        for m in data.get("matrix", []):
            vary = m.get("vary", {})
            keys = list(vary)
            for combo in itertools.product(*(vary[k] for k in keys)):
                values = {}  # a table value sets several names at once
                for k, v in zip(keys, combo, strict=True):
                    values.update(v if isinstance(v, dict) else {k: v})
                d = {k: fmt(v, values) for k, v in m.items() if k != "vary"}
                raw.append(d)
        for d in raw:
            unknown = set(d) - FIELDS
            if unknown:
                raise ValueError(f"{p.name}: {d.get('name')}: unknown field(s) {sorted(unknown)}")
            d = dict(d)
            d.setdefault("policy", default_policy)
            s = Scenario(**d, source=p.name)
            validate(s, policies)
            out.append(s)
    names = [s.name for s in out]
    dups = {n for n in names if names.count(n) > 1}
    if dups:
        raise ValueError(f"duplicate scenario names: {sorted(dups)}")
    return out


def validate(s: Scenario, policies: dict[str, Any]) -> None:
    where = f"{s.source}: {s.name}"
    if not re.fullmatch(r"[A-Za-z0-9_.+-]+", s.name):
        raise ValueError(f"{where}: bad name")
    if s.policy not in policies:
        raise ValueError(f"{where}: unknown policy {s.policy!r}")
    if s.op not in OPS:
        raise ValueError(f"{where}: op must be one of {OPS}")
    if s.proto not in PROTOS:
        raise ValueError(f"{where}: protocol must be one of {PROTOS}")
    if s.mode not in ("enforcing", "permissive"):
        raise ValueError(f"{where}: mode must be enforcing or permissive")
    # TOML booleans or "on"/"off" (a non-empty string is truthy: "off" would mean on)
    onoff = {True: True, False: False, "on": True, "off": False}
    if any(v not in onoff for v in s.bools.values()):
        raise ValueError(f"{where}: a boolean is on, off, true or false")
    s.bools = {b: onoff[v] for b, v in s.bools.items()}
    for k in s.sysctl:
        if k not in SYSCTLS:
            raise ValueError(f"{where}: sysctl {k} not supported")
    if s.labeled not in (None, *NETLABEL, "ipsec"):
        raise ValueError(f"{where}: labeled must be one of {(*NETLABEL, 'ipsec')}")
    if s.labeled == "ipsec" and not (s.ipsec and s.peer and s.op != "trace"):
        # the guest's SAs carry the flows' own labels: the peer process runs in `peer`
        raise ValueError(f"{where}: labeled = 'ipsec' needs ipsec (the SPD context) and "
                         "peer (the peer process's context), and is not for traces")
    if s.ipsec and s.labeled != "ipsec":
        raise ValueError(f"{where}: ipsec (the SPD context) needs labeled = 'ipsec'")
    if s.op == "trace":
        if not s.steps or not s.steps[0].startswith("sock="):
            raise ValueError(f"{where}: a trace starts with sock=KIND")
    elif not s.unbound:
        ipaddress.ip_address(s.hostport[0])
    if s.bind:
        bind_hostport(s.bind)
    level = policies[s.policy].get("level")

    def full(t: str) -> str:
        return t if ":" in t else f"system_u:system_r:{t}" + (f":{level}" if level else "")

    s.context = full(s.domain)
    s.creator = full(s.socket_from) if s.socket_from else ""


# ------------------------------------------------------------------ guest side
def family(host: str) -> int:
    return ipaddress.ip_address(host).version


def fmt_addr(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def peer_target(host: str) -> str:
    """Where a peer reaches a socket bound to HOST (wildcards -> loopback, mapped -> IPv4)."""
    ip = ipaddress.ip_address(host)
    if ip.version == 6 and ip.ipv4_mapped:
        return str(ip.ipv4_mapped)
    if ip.is_unspecified:
        return "127.0.0.1" if ip.version == 4 else "::1"
    return host


def sock_kind(proto: str, host: str) -> str:
    return proto + ("6" if family(host) == 6 else "")


def trace_lines(s: Scenario, head: list[str]) -> list[str]:
    """A trace: optional kernel_t peer before (a listener, in the background), the test
    process (its own ctx= first: the creator's with socket_from; handoff becomes
    ctx=DOMAIN, recvfd sendfd ctx=DOMAIN recvfd, exec exec=DOMAIN), and an optional peer
    after the test's ready= mark."""
    q = shlex.quote
    name = s.name
    lines: list[str] = []
    if s.before:
        lines.append(" ".join(["bg", f"{name}.peer", "timeout=5000", *map(q, s.before)]))
    ctx = [f"ctx={s.creator}"] if s.socket_from else head[:1]
    steps = []
    inherit = s.socket_from and not {"handoff", "recvfd", "exec"} & set(s.steps)
    for k, x in enumerate(s.steps):
        if inherit and k == 1:  # without handoff the creator makes only socket()
            steps.append(f"ctx={s.context}")
        if x == "ready":
            steps.append("ready=/tmp/ready")
        elif x.startswith("sleep="):
            steps.append(x)
        elif x == "handoff":
            steps.append(f"ctx={s.context}")
        elif x == "recvfd":  # the socket leaves over a socketpair and comes back in DOMAIN
            steps += ["sendfd", f"ctx={s.context}", "recvfd"]
        elif x == "exec":  # an exec into DOMAIN (setexeccon) with the socket open
            steps.append(f"exec={s.context}")
        else:
            steps.append(x)
    test = [name, "timeout=6000", *ctx, *head[1:], *steps, "close"]
    if s.after:
        lines.append("bg " + " ".join(map(q, test)))
        lines.append(" ".join(["sockop", f"{name}.peer2", "timeout=4000", *map(q, s.after)]))
        lines.append("bgwait 4000")
    else:
        lines.append("sockop " + " ".join(map(q, test)))
        if s.before:
            lines.append("bgwait 500")
    return lines


def guest_script(s: Scenario) -> str:
    """Shell for /scenarios.sh: setup, the test process (and its peer), teardown."""
    if s.op == "trace":
        host, port = "127.0.0.1", 0
    elif s.unbound:
        host, port = ("::" if s.addr.endswith("6") else "0.0.0.0"), 0
    else:
        host, port = s.hostport
    proto = s.proto
    kind = sock_kind(proto, host)
    stream = proto in ("tcp", "sctp", "dccp")
    q = shlex.quote
    name = s.name
    head = [f"ctx={s.context}"]
    if s.sockcreate:
        head.append(f"sockcreate={s.sockcreate}")
    lines = [f"begin {name}"]
    setup: list[str] = []
    teardown: list[str] = []
    if s.sysctl:
        setup += [f"sysctl_set {k} {q(v)}" for k, v in s.sysctl.items()] + ["sysctl_apply"]
        teardown.append("sysctl_restore")
    for b, v in s.bools.items():
        setup.append(f"bool_set {b} {1 if v else 0}")
    if s.bools:
        teardown.append("bool_restore")
    if s.labeled == "netlabel":
        setup.append(f"netlabel_on {q(s.peer or 'system_u:object_r:unlabeled_t')}")
        teardown.append("netlabel_off")
    elif s.labeled in NETLABEL:
        setup.append({"cipso": "cipso_on pass", "cipso-local": "cipso_on local",
                      "calipso": "calipso_on"}[s.labeled])
        teardown.append("labeled_off")
    if s.labeled == "ipsec" and s.ipsec and s.peer:
        # an SA for the test socket's label and one for the peer's: each flow uses its own
        setup.append(f"ipsec_on {q(s.ipsec)} {q(s.sockcreate or s.context)} {q(s.peer)}")
        teardown.append("ipsec_off")
    if s.secmark:
        setup.append(f"secmark_on {q(s.secmark)}")
        teardown.append("secmark_off")
    if s.mode == "permissive":
        setup.append("mode 0")
        teardown.append("mode 1")
    lines += setup

    test = ["sockop", name, "timeout=6000", *head, f"sock={kind}"]
    peer_host = peer_target(host)
    peer_kind = sock_kind(proto, peer_host)
    pk = f"sock={peer_kind}"
    if s.labeled == "ipsec" and s.peer:
        pk = f"ctx={q(s.peer)} {pk}"  # the peer's packets carry its own SA label
    dst = fmt_addr(host, port)
    pdst = fmt_addr(peer_host, port)
    if s.op == "trace":
        lines += trace_lines(s, head)
    elif s.op == "connect":
        if s.bind:
            b = s.bind if re.search(r"(\]|^[^:]*):\d+$", s.bind) else fmt_addr(s.bind, 0)
            test.append(f"bind={b}")
        # TCP/DCCP leave TIME_WAIT on the side that closes first: the peer always
        # closes with a reset (rstclose), so no later scenario finds its port busy
        if s.fastopen:
            test += [f"fastopen={dst}", "recv", "waiteof=2000", "close"]
        else:
            test += [f"connect={dst}", "send", "recv", "waiteof=2000", "close"]
        if stream:
            lines.append(
                f"bg {name}.peer timeout=5000 {pk} reuse bind={pdst} listen ready=/tmp/ready "
                "accept=3000 recv send sleep=50 rstclose"
            )
        elif proto == "udp":
            lines.append(
                f"bg {name}.peer timeout=5000 {pk} bind={pdst} ready=/tmp/ready "
                "recv=3000 send close"
            )
        lines.append(" ".join(map(q, test)))
        if stream or proto == "udp":
            lines.append("bgwait 500")
    elif s.op == "listen":
        if s.unbound:
            # the kernel picks the port: the scenario's ip_local_port_range has one port
            low = s.sysctl["net.ipv4.ip_local_port_range"].split()[0]
            pdst = fmt_addr("::1" if s.addr.endswith("6") else "127.0.0.1", int(low))
        else:
            test += [f"bind={dst}"]
        if stream:
            test += [
                "listen",
                "ready=/tmp/ready",
                "accept=3000",
                "recv",
                "send",
                "waiteof=2000",
                "close",
            ]
            # the peer's own port is explicit: the one-port local range is the listener's
            src = "" if not s.unbound else f"bind={fmt_addr(peer_target(host), 30001)} "
            peer = f"sockop {name}.peer timeout=4000 {pk} {src}connect={pdst} send recv rstclose"
        else:
            test += ["ready=/tmp/ready", "recv=3000", "send", "close"]
            peer = f"sockop {name}.peer timeout=4000 {pk} sendto={pdst} recv=2000 close"
        lines.append("bg " + " ".join(map(q, test[1:])))
        lines.append(peer)
        lines.append("bgwait 4000")
    elif s.op == "bind":
        test += [f"bind={dst}", "close"]
        lines.append(" ".join(map(q, test)))
    elif s.op == "send":
        if s.fastopen:
            lines.append(
                f"bg {name}.peer timeout=5000 {pk} reuse bind={pdst} listen ready=/tmp/ready "
                "accept=3000 recv rstclose"
            )
            test += [f"fastopen={dst}", "waiteof=2000", "close"]
        else:
            if s.bind:
                test.append(f"bind={s.bind}")
            test += [f"sendto={dst}", "close"]
        lines.append(" ".join(map(q, test)))
        if s.fastopen:
            lines.append("bgwait 300")
    lines += list(reversed(teardown))
    lines.append(f"end {name}")
    return "\n".join(lines) + "\n"
