"""Throughput of selnet.audit.avclog on 1,000,000 generated log lines.

Run: .venv/bin/python bench/avclog_throughput.py [N_LINES]

Prints lines/s by CPU time (and wall time). Two measurements: a mixed stream
(raw audit.log events with SYSCALL/SOCKADDR/PROCTITLE, ausearch -i, journald,
kernel ring, a little prose) and an AVC-only stream (raw and kernel AVC lines).
Lines are generated before timing starts.
"""

from __future__ import annotations

import random
import sys
import time

from selnet.audit.avclog import AvcLogParser

_DOMAINS = ["httpd_t", "postgresql_t", "named_t", "sshd_t", "nginx_t", "container_t"]
_PORTS = [
    ("postgresql_port_t", 5432), ("http_port_t", 8080), ("unreserved_port_t", 20000),
    ("dns_port_t", 53), ("ssh_port_t", 22), ("http_cache_port_t", 3128),
]  # fmt: skip
_PERMS = [("name_connect", "dest", 42), ("name_bind", "src", 49)]


def _avc_body(rng: random.Random, comm: str) -> tuple[str, int, int]:
    dom = rng.choice(_DOMAINS)
    ptype, port = rng.choice(_PORTS)
    perm, key, nr = rng.choice(_PERMS)
    pid = rng.randrange(100, 60000)
    body = (
        f"avc:  denied  {{ {perm} }} for  pid={pid} comm={comm} {key}={port} "
        f"scontext=system_u:system_r:{dom}:s0 tcontext=system_u:object_r:{ptype}:s0 "
        f"tclass=tcp_socket permissive={rng.randrange(2)}"
    )
    return body, pid, nr


def _raw_event(rng: random.Random, serial: int, node: bool) -> list[str]:
    stamp = f"{1700000000 + serial // 10}.{serial % 1000:03d}:{serial}"
    pre = "node=web01 " if node else ""
    body, pid, nr = _avc_body(rng, '"httpd"')
    return [
        f"{pre}type=AVC msg=audit({stamp}): {body}",
        f"{pre}type=SYSCALL msg=audit({stamp}): arch=c000003e syscall={nr} success=no exit=-13 "
        f"a0=3 a1=7ffd2a3c1e40 a2=10 a3=0 items=0 ppid=1 pid={pid} auid=4294967295 uid=48 "
        f"gid=48 euid=48 suid=48 fsuid=48 egid=48 sgid=48 fsgid=48 tty=(none) ses=4294967295 "
        f'comm="httpd" exe="/usr/sbin/httpd" subj=system_u:system_r:httpd_t:s0 key=(null)',
        f"{pre}type=SOCKADDR msg=audit({stamp}): saddr=020015387F0000010000000000000000",
        f"{pre}type=PROCTITLE msg=audit({stamp}): "
        "proctitle=2F7573722F7362696E2F6874747064002D44464F524547524F554E44",
    ]


def _ausearch_event(rng: random.Random, serial: int) -> list[str]:
    stamp = f"11/25/2026 17:47:{serial % 60:02d}.123:{serial}"
    body, pid, _ = _avc_body(rng, "httpd worker")
    return [
        "----",
        f"type=PROCTITLE msg=audit({stamp}) : proctitle=/usr/sbin/httpd -DFOREGROUND ",
        f"type=SOCKADDR msg=audit({stamp}) : saddr={{ saddr_fam=inet laddr=127.0.0.1 lport=5432 }} ",
        f"type=SYSCALL msg=audit({stamp}) : arch=x86_64 syscall=connect success=no "
        f"exit=EACCES(Permission denied) a0=0x3 a1=0x7ffd2a3c1e40 a2=0x10 a3=0x0 items=0 "
        f"ppid=1 pid={pid} auid=unset uid=apache gid=apache euid=apache suid=apache "
        "fsuid=apache egid=apache sgid=apache fsgid=apache tty=(none) ses=unset "
        "comm=httpd worker exe=/usr/sbin/httpd subj=system_u:system_r:httpd_t:s0 key=(null) ",
        f"type=AVC msg=audit({stamp}) : {body} ",
    ]


def _journald_event(rng: random.Random, serial: int) -> list[str]:
    ts = f"Nov 25 17:47:{serial % 60:02d}"
    body, pid, nr = _avc_body(rng, '"httpd"')
    return [
        f"{ts} web01 audit[{pid}]: AVC {body}",
        f"{ts} web01 audit[{pid}]: SYSCALL arch=c000003e syscall={nr} success=no exit=-13 "
        f'a0=3 a1=55d0 a2=10 a3=0 items=0 ppid=1 pid={pid} comm="httpd" '
        'exe="/usr/sbin/httpd" subj=system_u:system_r:httpd_t:s0 key=(null)',
        f"{ts} web01 audit: SOCKADDR saddr=020015387F0000010000000000000000",
    ]


def _kernel_line(rng: random.Random, serial: int) -> str:
    body, _, _ = _avc_body(rng, '"sockop"')
    up = serial / 1000
    return f"[{up:12.6f}] audit: type=1400 audit({1700000000 + serial // 10}.123:{serial}): {body}"


def mixed_lines(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    out: list[str] = []
    serial = 1
    while len(out) < n:
        r = rng.random()
        if r < 0.45:
            out += _raw_event(rng, serial, node=r < 0.1)
        elif r < 0.65:
            out += _ausearch_event(rng, serial)
        elif r < 0.85:
            out += _journald_event(rng, serial)
        elif r < 0.99:
            out.append(_kernel_line(rng, serial))
        else:
            out.append("Restarting httpd did not help, see the log above.")
        serial += 1
    return out[:n]


def avc_only_lines(n: int, seed: int = 2) -> list[str]:
    rng = random.Random(seed)
    out: list[str] = []
    for serial in range(1, n + 1):
        if serial % 2:
            out.append(_raw_event(rng, serial, node=False)[0])
        else:
            out.append(_kernel_line(rng, serial))
    return out


def _measure(lines: list[str]) -> tuple[float, float, int, AvcLogParser]:
    parser = AvcLogParser()
    t0, c0 = time.perf_counter(), time.process_time()
    events = 0
    for _ in parser.events(iter(lines)):
        events += 1
    return time.perf_counter() - t0, time.process_time() - c0, events, parser


def main(argv: list[str]) -> int:
    n = int(argv[1]) if len(argv) > 1 else 1_000_000
    # CPU time is the figure to compare: wall time also counts other loads on the machine
    for name, lines in (("mixed", mixed_lines(n)), ("avc-only", avc_only_lines(n))):
        wall, cpu, events, parser = _measure(lines)
        st = parser.stats
        print(
            f"{name:9s} {n:>9,d} lines: {n / cpu:>9,.0f} lines/s CPU, {n / wall:>9,.0f} wall "
            f"({st.avc_records / cpu:>9,.0f} AVC/s CPU; events={events:,d} "
            f"malformed={st.malformed} peak_window={st.peak_open_events})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
