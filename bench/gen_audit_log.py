"""A realistic raw audit.log: what auditd writes on a busy SELinux host.

Run: .venv/bin/python bench/gen_audit_log.py OUT N_AVCS [--policy POLICY] [--distinct D] [--seed S]

Every AVC is the kernel's: ``avc:  denied  { perm } for  pid= comm= <port field>
scontext= tcontext= tclass= permissive=``, followed by the records auditd writes at the
same syscall exit (SYSCALL with the real x86_64 syscall number, SOCKADDR with the
address family, port and address hex-encoded as the kernel does, PROCTITLE hex), all
sharing one ``audit(sec.msec:serial)``.  Between the AVC events: non-network AVCs (file
reads, with a PATH record), and the login/service records a host writes (USER_LOGIN,
CRED_ACQ, SERVICE_START, ...).

Denials are drawn from a pool of (domain, class, perm, port): most events repeat a known
denial (a service retrying, recent ones most), the others are new ones (another port or
domain) spread over the whole log, about ``--distinct`` (default 150) in all: a host's
log repeats a few denials many times.
Domains are the policy's own domain types; every port's target type is its true label in
the given policy (the first portcon that covers it, ``port_t`` for none).  The output is
deterministic for a seed.  About 3.97 lines per AVC, as on the measured host.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

# services that talk to the network: used first when the policy has them
_SERVICES = (
    "httpd_t", "postgresql_t", "named_t", "sshd_t", "squid_t", "ntpd_t", "postfix_smtpd_t",
    "dovecot_t", "mysqld_t", "nginx_t", "openvpn_t", "rpcbind_t", "smbd_t", "nmbd_t",
    "cupsd_t", "dhcpc_t", "snmpd_t", "slapd_t", "sendmail_t", "ftpd_t", "git_session_t",
    "mongod_t", "redis_t", "memcached_t", "zabbix_agent_t", "nagios_t", "apcupsd_t",
    "bitlbee_t", "tor_t", "privoxy_t", "spamd_t", "clamd_t", "amavis_t", "dnsmasq_t",
    "avahi_t", "chronyd_t", "rsync_t", "tftpd_t", "xinetd_t", "inetd_t", "jabberd_t",
)  # fmt: skip
_NR = {"name_connect": 42, "name_bind": 49, "node_bind": 49, "send_msg": 44, "recv_msg": 45}
_EXES = ("/usr/sbin/{}", "/usr/bin/{}", "/usr/lib/{0}/{0}")


def _policy_facts(path: str) -> tuple[list[str], list[tuple[str, int, int, str]]]:
    from selnet.policy.loader import load_policy

    pol = load_policy([path])
    doms = set(pol.domains())
    chosen = [d for d in _SERVICES if d in doms]
    rest = sorted(doms - set(chosen))
    chosen += rest[:: max(1, len(rest) // 60)]
    pcs = sorted(pol.snap.portcons, key=lambda p: p.position)
    return chosen, [(p.protocol, p.low, p.high, p.context.type) for p in pcs]


def _label(portcons: list[tuple[str, int, int, str]], proto: str, port: int) -> str:
    for pr, low, high, typ in portcons:
        if pr == proto and low <= port <= high:
            return typ
    return "port_t"


class _Gen:
    def __init__(self, domains: list[str], portcons: list[tuple[str, int, int, str]],
                 seed: int, fresh: float) -> None:  # fmt: skip
        self.rng = random.Random(seed)
        self.domains = domains
        self.portcons = portcons
        self.fresh = fresh
        self.services = [(pr, lo) for pr, lo, hi, _ in portcons if lo == hi and pr in ("tcp", "udp")]
        self.pool: list[tuple[str, str, str, int, str]] = []
        self.serial = 1000
        self.t = 1_700_000_000.0
        self._labels: dict[tuple[str, int], str] = {}

    def label(self, proto: str, port: int) -> str:
        k = (proto, port)
        lab = self._labels.get(k)
        if lab is None:
            lab = self._labels[k] = _label(self.portcons, proto, port)
        return lab

    def new_denial(self) -> tuple[str, str, str, int, str]:
        rng = self.rng
        dom = rng.choice(self.domains[: 12] if rng.random() < 0.5 else self.domains)
        r = rng.random()
        if r < 0.55:
            proto, port = rng.choice(self.services)
            perm = "name_connect" if proto == "tcp" and rng.random() < 0.7 else "name_bind"
        elif r < 0.85:  # an unprivileged port: generic or a service's label by accident
            proto, port = rng.choice(("tcp", "udp")), rng.randrange(1024, 65536)
            perm = "name_bind" if proto == "udp" or rng.random() < 0.5 else "name_connect"
        else:
            proto, port, perm = "tcp", rng.randrange(1, 1024), "name_bind"
        if proto == "udp" and perm == "name_connect":
            perm = "name_bind"
        return dom, proto, perm, port, self.label(proto, port)

    def denial(self) -> tuple[str, str, str, int, str]:
        if not self.pool or self.rng.random() < self.fresh:
            d = self.new_denial()
            self.pool.append(d)
            return d
        # services retry: recent and frequent denials repeat most
        pool = self.pool
        return pool[min(len(pool) - 1, int(self.rng.expovariate(1 / 8)))] \
            if self.rng.random() < 0.7 else self.rng.choice(pool)  # fmt: skip

    def stamp(self) -> str:
        self.serial += 1
        self.t += self.rng.random() * 0.05
        return f"{self.t:.3f}:{self.serial}"

    def net_event(self) -> list[str]:
        rng = self.rng
        dom, proto, perm, port, ptype = self.denial()
        st = self.stamp()
        pid = rng.randrange(300, 4_000_000)
        name = dom.removesuffix("_t").split("_")[0]
        comm = name[:15]
        key = "dest" if perm == "name_connect" else "src"
        perm_flag = 1 if rng.random() < 0.03 else 0
        avc = (f"type=AVC msg=audit({st}): avc:  denied  {{ {perm} }} for  pid={pid} "
               f'comm="{comm}" {key}={port} scontext=system_u:system_r:{dom}:s0 '
               f"tcontext=system_u:object_r:{ptype}:s0 tclass={proto}_socket "
               f"permissive={perm_flag}")
        exe = rng.choice(_EXES).format(name)
        uid = rng.choice((0, 0, 33, 48, 101, 998))
        sc = (f"type=SYSCALL msg=audit({st}): arch=c000003e syscall={_NR[perm]} success=no "
              f"exit=-13 a0={rng.randrange(3, 40):x} a1={rng.getrandbits(47):x} a2=10 a3=0 "
              f"items=0 ppid={rng.randrange(1, 3000)} pid={pid} auid=4294967295 uid={uid} "
              f"gid={uid} euid={uid} suid={uid} fsuid={uid} egid={uid} sgid={uid} "
              f"fsgid={uid} tty=(none) ses=4294967295 comm=\"{comm}\" exe=\"{exe}\" "
              f"subj=system_u:system_r:{dom}:s0 key=(null)")
        if rng.random() < 0.8:
            addr = (127, 0, 0, 1) if rng.random() < 0.3 else (10, rng.randrange(256),
                                                               rng.randrange(256), rng.randrange(1, 255))
            sa = "0200" + f"{port:04X}" + "".join(f"{b:02X}" for b in addr) + "0" * 16
        else:
            sa = "0A00" + f"{port:04X}" + "00000000" + "0" * 30 + "01" + "00000000"
        args = [exe] + (["-D", "FOREGROUND"] if rng.random() < 0.5 else ["--config", f"/etc/{name}.conf"])
        title = "00".join(a.encode().hex().upper() for a in args)
        return [avc, sc, f"type=SOCKADDR msg=audit({st}): saddr={sa}",
                f"type=PROCTITLE msg=audit({st}): proctitle={title}"]

    def file_event(self) -> list[str]:
        rng = self.rng
        dom = rng.choice(self.domains)
        st = self.stamp()
        pid = rng.randrange(300, 4_000_000)
        comm = dom.removesuffix("_t")[:15]
        obj = rng.choice((("shadow", "shadow_t", "file", "read"), ("resolv.conf", "net_conf_t",
                          "file", "open"), ("tmp", "tmp_t", "dir", "write")))  # fmt: skip
        return [
            f"type=AVC msg=audit({st}): avc:  denied  {{ {obj[3]} }} for  pid={pid} "
            f'comm="{comm}" name="{obj[0]}" dev="sda1" ino={rng.randrange(2, 10**7)} '
            f"scontext=system_u:system_r:{dom}:s0 tcontext=system_u:object_r:{obj[1]}:s0 "
            f"tclass={obj[2]} permissive=0",
            f"type=SYSCALL msg=audit({st}): arch=c000003e syscall=257 success=no exit=-13 "
            f"a0=ffffff9c a1={rng.getrandbits(47):x} a2=80000 a3=0 items=1 ppid=1 pid={pid} "
            f"auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 "
            f'tty=(none) ses=4294967295 comm="{comm}" exe="/usr/sbin/{comm}" '
            f"subj=system_u:system_r:{dom}:s0 key=(null)",
            f'type=PATH msg=audit({st}): item=0 name="/etc/{obj[0]}" inode=1234 dev=08:01 '
            f"mode=0100640 ouid=0 ogid=42 rdev=00:00 obj=system_u:object_r:{obj[1]}:s0 "
            "nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0",
            f"type=PROCTITLE msg=audit({st}): proctitle=2F7573722F7362696E2F{comm.encode().hex().upper()}",
        ]

    def other_event(self) -> list[str]:
        st = self.stamp()
        kind = self.rng.choice(("CRED_ACQ", "USER_START", "SERVICE_START", "USER_END"))
        return [f"type={kind} msg=audit({st}): pid={self.rng.randrange(300, 99999)} uid=0 "
                "auid=4294967295 ses=4294967295 subj=system_u:system_r:init_t:s0 "
                "msg='unit=systemd-tmpfiles-clean comm=\"systemd\" exe=\"/usr/lib/systemd/"
                "systemd\" hostname=? addr=? terminal=? res=success'"]


def generate(out: Path, n_avcs: int, policy: str, *, distinct: int = 150, seed: int = 1) -> int:
    """Write the log; return its number of lines."""
    domains, portcons = _policy_facts(policy)
    g = _Gen(domains, portcons, seed, min(1.0, distinct / max(1, n_avcs)))
    rng = g.rng
    lines = 0
    with open(out, "w", encoding="utf-8") as f:
        for _ in range(n_avcs):
            ev = g.file_event() if rng.random() < 0.08 else g.net_event()
            if rng.random() < 0.02:
                ev = g.other_event() + ev
            f.write("\n".join(ev))
            f.write("\n")
            lines += len(ev)
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("avcs", type=int)
    ap.add_argument("--policy", help="binary policy (default: the reference policy, MCS build)")
    ap.add_argument("--distinct", type=int, default=150, help="about this many distinct denials")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    policy = a.policy
    if policy is None:
        from bench_audit import refpolicy

        policy = refpolicy()
    n = generate(a.out, a.avcs, policy, distinct=a.distinct, seed=a.seed)
    print(f"{a.out}: {a.avcs:,} AVCs, {n:,} lines")


if __name__ == "__main__":
    main()
