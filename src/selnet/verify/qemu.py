"""Boot the guest once per policy variant and parse what the kernel did."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

from . import archive, build

AVC_RE = re.compile(
    r"avc:\s+(?P<verdict>denied|granted)\s+\{ (?P<perms>[^}]+) \} for\s+"
    r"pid=(?P<pid>\d+) comm=\"?(?P<comm>[^\" ]*)\"?(?P<extra>.*?)\s+"
    r"scontext=(?P<scontext>\S+) tcontext=(?P<tcontext>\S+) tclass=(?P<tclass>\S+)"
    r"(?: permissive=(?P<permissive>\d))?"
)
KV_RE = re.compile(r"(\w+)=(\S*)")
SERIAL_RE = re.compile(r"audit\((\d+\.\d+):(\d+)\)")

PACKET_CLASSES = {"node", "netif", "peer", "packet", "association"}


def is_packet_check(cls: str, perm: str) -> bool:
    """Per-packet (rx/tx) checks, as opposed to socket-call checks."""
    return cls in PACKET_CLASSES or perm == "recvfrom"


def qemu_cmd(kernel: build.Kernel, initrd: Path) -> list[str]:
    accel, cpu = "tcg", "max"
    try:
        if Path("/dev/kvm").exists() and re.search(
            r"\b(vmx|svm)\b", Path("/proc/cpuinfo").read_text()
        ):
            accel, cpu = "kvm", "host"
    except OSError:
        pass
    return [
        "qemu-system-x86_64",
        "-accel",
        accel,
        "-cpu",
        cpu,
        "-smp",
        "1",
        "-m",
        "512",
        "-nographic",
        "-no-reboot",
        "-nic",
        "none",
        "-kernel",
        str(kernel.vmlinux),
        "-initrd",
        str(initrd),
        "-append",
        # no_timer_check: on a loaded host TCG is too slow for the IO-APIC timer check, and
        # 6.12 then panics ("IO-APIC + timer doesn't work") before init runs
        "console=ttyS0 security=selinux quiet panic=-1 audit_backlog_limit=8192 log_buf_len=4M"
        " no_timer_check",
    ]


def boot(kernel: build.Kernel, initrd: Path, log: Path, timeout: int = 600) -> tuple[str, float]:
    t0 = time.monotonic()
    with open(log, "w") as f:
        p = subprocess.run(
            qemu_cmd(kernel, initrd),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
        )
        text = p.stdout.decode(errors="replace").replace("\r", "")
        f.write(text)
    return text, time.monotonic() - t0


def parse(text: str) -> dict[str, Any]:
    """-> {"info": {...}, "errors": [...], "scenarios": {name: {...}}}.

    Per scenario: "procs" {proc name: {"pid", "steps": [{op, arg, result, errno}]}},
    "avc": every record in the scenario's window (ordered by audit serial), and
    "setup_errors".  Records are attributed to processes later, by pid.
    """
    info: dict[str, str] = {}
    errors: list[str] = []
    scen: dict[str, dict[str, Any]] = {}
    cur = None
    seen: set[str] = set()
    pid2scen: dict[int, str] = {}
    late: list[dict[str, Any]] = []
    for line in text.splitlines():
        if line.startswith("CONF-INFO "):
            k, _, v = line[10:].partition("=")
            info[k] = v
        elif line.startswith("CONF-BEGIN "):
            info["kernel"] = line.split("kernel=", 1)[1]
        elif line.startswith(("CONF-ERROR", "CONF-LOAD")) and "avc:" not in line:
            if line.startswith("CONF-ERROR"):
                errors.append(line)
        elif line.startswith("=== SCENARIO "):
            cur = line.split()[2]
            scen[cur] = {"procs": {}, "avc": [], "setup_errors": []}
        elif line.startswith("=== END "):
            cur = None
        elif line.startswith("CONF-SETUP-ERROR "):
            d = dict(KV_RE.findall(line))
            if d.get("scenario") in scen:
                scen[d["scenario"]]["setup_errors"].append(line)
            else:
                errors.append(line)
        elif line.startswith(("RESULT ", "CONTEXT ")):
            d = dict(KV_RE.findall(line))
            pname = d["name"]
            base = pname.rsplit(".peer", 1)[0]
            if base not in scen:
                continue
            p = scen[base]["procs"].setdefault(
                pname, {"pid": int(d["pid"]), "steps": [], "context": None}
            )
            p["pid"] = int(d["pid"])
            pid2scen[int(d["pid"])] = base
            if line.startswith("CONTEXT "):
                p["context"] = d["context"]
            else:
                p["steps"].append(
                    {
                        "op": d["op"],
                        "arg": d["arg"],
                        "result": d["result"],
                        "errno": int(d["errno"]),
                    }
                )
        m = AVC_RE.search(line)
        if m and line.startswith("AVC "):
            sm = SERIAL_RE.search(line)
            key = sm.group(2) if sm else line
            if key in seen:
                continue
            seen.add(key)
            a = m.groupdict()
            rec = {
                "verdict": a["verdict"],
                "perms": a["perms"].split(),
                "pid": int(a["pid"]),
                "scontext": a["scontext"],
                "tcontext": a["tcontext"],
                "tclass": a["tclass"],
                "permissive": None if a["permissive"] is None else int(a["permissive"]),
                "serial": int(sm.group(2)) if sm else 0,
                "extra": a["extra"].strip(),
            }
            window = line.split()[1].split("=", 1)[1]
            if window in scen:
                scen[window]["avc"].append(rec)
            else:
                late.append(rec)
    # kauditd is asynchronous: a record printed in a later window (or after the
    # last one) still belongs to the scenario whose process has its pid
    for name, s in scen.items():
        keep = []
        for rec in s["avc"]:
            owner = pid2scen.get(rec["pid"], name)
            if owner == name:
                keep.append(rec)
            else:
                scen[owner]["avc"].append(rec)
        s["avc"] = keep
    for rec in late:
        if rec["pid"] in pid2scen:
            scen[pid2scen[rec["pid"]]]["avc"].append(rec)
    for s in scen.values():
        s["avc"].sort(key=lambda r: r["serial"])
    if "CONF-END" not in text:
        errors.append("guest did not reach CONF-END (crash or timeout)")
    return {"info": info, "errors": errors, "scenarios": scen}


def run_variant(
    kernel: build.Kernel,
    base: Path,
    variant: str,
    policy: Path,
    script: str,
    logdir: Path,
    use_cache: bool = True,
) -> dict[str, Any]:
    """One boot (or its cached result) for VARIANT; returns parse() output plus timing."""
    key = build.sha(base.name, policy.name, script, kernel.version)
    cache = build.CACHE / "results" / f"{variant}-{key}.json"
    if use_cache and cache.exists():
        try:
            res: dict[str, Any] = json.loads(cache.read_text())
        except (OSError, ValueError):
            res = {}  # damaged (an interrupted write): booted again, never trusted
        if isinstance(res, dict) and isinstance(res.get("scenarios"), dict) and not res.get("errors"):
            res["cached"] = True
            return res
    initrd = build.boot_initramfs(base, policy, script)
    logdir.mkdir(parents=True, exist_ok=True)
    text, wall = boot(kernel, initrd, logdir / f"console-{variant}.log")
    res = parse(text)
    res["wall"] = round(wall, 2)
    res["cached"] = False
    if not res["errors"]:
        cache.parent.mkdir(parents=True, exist_ok=True)
        archive.write_atomic(cache, json.dumps(res).encode())
    return res
