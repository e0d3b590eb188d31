"""Throughput of ``selnet audit --json`` and per-denial speed against audit2why.

Run: .venv/bin/python bench/bench_audit.py [N_LINES] [N_DENIALS]

1. Generates an N_LINES-line raw audit.log (AVC + SYSCALL + SOCKADDR + PROCTITLE
   events, a mix of ~60 distinct network denials on the reference policy, plus
   non-network AVCs and other records) and times ``selnet audit --json FILE`` as a
   command (policy load and interface index included).  Reports lines/s.
2. Writes N_DENIALS distinct AVC lines (different ports/domains) to one file and
   times ``audit2why -p POLICY -i FILE`` and ``selnet audit --json --policy POLICY
   FILE`` on the same file; reports seconds per denial for each and the ratio.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SELNET = str(ROOT / ".venv" / "bin" / "selnet")

_DOMAINS = ["httpd_t", "postgresql_t", "named_t", "sshd_t", "squid_t", "ntpd_t"]
_TARGETS = [("postgresql_port_t", 5432), ("http_port_t", 8080), ("unreserved_port_t", 20000),
            ("dns_port_t", 53), ("ssh_port_t", 22), ("unreserved_port_t", 8500)]  # fmt: skip
_PERMS = [("name_connect", "dest", 42), ("name_bind", "src", 49)]


def refpolicy(kind: str = "mcs") -> str:
    """The MCS build: the generated contexts carry ``:s0``, which the non-MLS build
    rejects (audit2why then prints nothing and computes nothing)."""
    out = subprocess.run([str(ROOT / "scripts" / "build-refpolicy")], capture_output=True,
                         text=True, check=True).stdout
    return next(ln.split(None, 1)[1] for ln in out.splitlines() if ln.startswith(kind + " "))


def _event(rng: random.Random, serial: int) -> list[str]:
    stamp = f"{1700000000 + serial // 10}.{serial % 1000:03d}:{serial}"
    dom = rng.choice(_DOMAINS)
    ptype, port = rng.choice(_TARGETS)
    perm, key, nr = rng.choice(_PERMS)
    pid = rng.randrange(100, 60000)
    if rng.random() < 0.1:  # a non-network AVC
        avc = (f"type=AVC msg=audit({stamp}): avc:  denied  {{ read }} for  pid={pid} "
               f'comm="x" name="shadow" dev="sda1" ino=12 scontext=system_u:system_r:{dom}:s0 '
               f"tcontext=system_u:object_r:shadow_t:s0 tclass=file permissive=0")
    else:
        avc = (f"type=AVC msg=audit({stamp}): avc:  denied  {{ {perm} }} for  pid={pid} "
               f'comm="srv" {key}={port} scontext=system_u:system_r:{dom}:s0 '
               f"tcontext=system_u:object_r:{ptype}:s0 tclass=tcp_socket permissive=0")
    return [
        avc,
        f"type=SYSCALL msg=audit({stamp}): arch=c000003e syscall={nr} success=no exit=-13 "
        f"a0=3 a1=7ffd2a3c1e40 a2=10 a3=0 items=0 ppid=1 pid={pid} auid=4294967295 uid=0 "
        f'gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="srv" '
        f'exe="/usr/sbin/srv" subj=system_u:system_r:{dom}:s0 key=(null)',
        f"type=SOCKADDR msg=audit({stamp}): saddr=020015387F0000010000000000000000",
        f"type=PROCTITLE msg=audit({stamp}): proctitle=2F7573722F7362696E2F737276",
    ]


def gen_log(path: Path, n_lines: int) -> int:
    rng = random.Random(5)
    n = 0
    serial = 1
    with open(path, "w") as f:
        while n < n_lines:
            for line in _event(rng, serial):
                f.write(line + "\n")
                n += 1
            serial += 1
    return n


def gen_distinct(path: Path, n: int) -> None:
    rng = random.Random(7)
    with open(path, "w") as f:
        for i in range(n):
            dom = _DOMAINS[i % len(_DOMAINS)]
            ptype, port = rng.choice(_TARGETS)
            perm, key, _ = _PERMS[i % 2]
            f.write(f"type=AVC msg=audit(1700000000.{i % 1000:03d}:{i + 1}): avc:  denied  "
                    f'{{ {perm} }} for  pid={100 + i} comm="srv" {key}={port + i} '
                    f"scontext=system_u:system_r:{dom}:s0 tcontext=system_u:object_r:{ptype}:s0 "
                    f"tclass=tcp_socket permissive=0\n")


def timed(cmd: list[str]) -> tuple[float, int]:
    t = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - t, proc.returncode


def main() -> None:
    n_lines = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    n_den = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    pol = refpolicy()
    subprocess.run([SELNET, "info", "--policy", pol], stdout=subprocess.DEVNULL, check=True)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "audit.log"
        n = gen_log(log, n_lines)
        secs, rc = timed([SELNET, "audit", "--json", "--policy", pol, str(log)])
        print(f"throughput: {n} lines in {secs:.2f} s = {n / secs:,.0f} lines/s (exit {rc})")
        avc_only = Path(tmp) / "avc-only.log"
        with open(log) as src, open(avc_only, "w") as dst:
            n_avc = 0
            for line in src:
                if line.startswith("type=AVC") and n_avc < 100_000:
                    dst.write(line)
                    n_avc += 1
        a2w, _ = timed(["audit2why", "-p", pol, "-i", str(avc_only)])
        sel, _ = timed([SELNET, "audit", "--json", "--policy", pol, str(avc_only)])
        print(f"per AVC line ({n_avc} AVC lines with repeats, one command each): audit2why "
              f"{a2w / n_avc * 1e6:.1f} us, selnet {sel / n_avc * 1e6:.1f} us, "
              f"selnet {a2w / sel:.1f}x faster")
        dist = Path(tmp) / "distinct.log"
        gen_distinct(dist, n_den)
        a2w, _ = timed(["audit2why", "-p", pol, "-i", str(dist)])
        sel, _ = timed([SELNET, "audit", "--json", "--policy", pol, str(dist)])
        print(f"per distinct denial ({n_den} all different, one command each, policy load "
              f"included): audit2why {a2w / n_den * 1000:.3f} ms, selnet {sel / n_den * 1000:.3f} "
              f"ms, ratio {a2w / sel:.2f}")
        # Same process, policy loaded once: libsepol's audit2why.analyze vs selnet's diagnosis.
        sys.path.insert(0, str(ROOT / "src"))
        import selinux.audit2why as a2w_mod

        from selnet.audit.avclog import parse_events
        from selnet.audit.diagnose import Diagnoser
        from selnet.policy.loader import load_policy

        recs = [r for ev in parse_events(dist.read_text().splitlines()) for r in ev.avcs]
        a2w_mod.init(pol)
        sample = recs[: min(len(recs), 100)]
        t = time.perf_counter()
        for r in sample:
            a2w_mod.analyze(r.scontext, r.tcontext, r.tclass, list(r.perms))
        a2w_per = (time.perf_counter() - t) / len(sample)
        dx = Diagnoser(load_policy([pol]))
        t = time.perf_counter()
        for r in recs:
            dx.diagnose(r)
        sel_per = (time.perf_counter() - t) / len(recs)
        print(f"same process, per distinct denial: audit2why.analyze {a2w_per * 1e6:.0f} us, "
              f"selnet diagnose {sel_per * 1e6:.0f} us, selnet {a2w_per / sel_per:.0f}x faster")
    _ = os


if __name__ == "__main__":
    main()
