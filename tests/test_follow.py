"""selnet audit --follow: a real writer appends AVCs to a log, rotates it (rename + new
file, then copytruncate); the follower explains each distinct denial once, counts the
repeats, stays bounded, and ends on SIGTERM with a summary and the usual exit status."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from selnet.audit.follow import Follower, FollowGroup, Tail, follow
from selnet.policy.index import Policy
from selnet.policy.loader import load_policy

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "audit"
BASE = ROOT / "tests" / "policies" / "base.cil"
SNIPPET = DATA / "audit-policy.cil"
POLL = 0.05
DEADLINE = 20.0  # generous on a loaded machine; each step normally takes < 1 s


def avc(serial: int, perm: str, field: str, tcon: str, pid: int = 812) -> str:
    return (f"type=AVC msg=audit(1700000000.{serial % 1000:03d}:{serial}): avc:  denied  "
            f'{{ {perm} }} for  pid={pid} comm="web" {field} scontext=system_u:system_r:web_t '
            f"tcontext=system_u:object_r:{tcon} tclass=tcp_socket permissive=0")


def syscall(serial: int) -> str:
    return (f"type=SYSCALL msg=audit(1700000000.{serial % 1000:03d}:{serial}): arch=c000003e "
            'syscall=42 success=no exit=-13 a0=3 pid=812 comm="web" exe="/usr/bin/web"')


BIND = ("name_bind", "src=8500", "gen_port_t")
CONNECT = ("name_connect", "dest=5432", "db_port_t")


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy([str(BASE), str(SNIPPET)])


def append(path: Path, lines: list[str]) -> None:
    with open(path, "a") as f:
        f.write("".join(ln + "\n" for ln in lines))


def wait_for(cond: object, what: str) -> None:
    end = time.monotonic() + DEADLINE
    while not cond():  # type: ignore[operator]
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(POLL)


def test_follow_rotation_counts_and_bounds(policy: Policy, tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_text(avc(1, *BIND) + "\n")  # already there: not reported (tail from the end)
    new: list[FollowGroup] = []
    updates: list[tuple[int, int]] = []
    f = Follower(policy, on_new=new.append, on_update=lambda g: updates.append((g.number, g.count)),
                 update_every=0.0, use_interfaces=False)  # fmt: skip
    tail = Tail(str(log))
    stop = threading.Event()
    box: dict[str, object] = {}
    reader = threading.Thread(target=lambda: box.setdefault(
        "summary", follow(tail, f, poll=POLL, stop=stop.is_set)))
    reader.start()
    try:
        serial = 10
        # 1. three repeats of one denial (different pids), with their SYSCALL
        for pid in (1, 2, 3):
            serial += 1
            append(log, [avc(serial, *BIND, pid=pid), syscall(serial)])
        wait_for(lambda: new and new[0].count == 3, "the first group and its repeats")
        assert len(new) == 1 and new[0].group.entries[0].pids == {"1", "2", "3"}
        assert new[0].group.entries[0].syscall is not None  # joined to its AVC
        # 2. rotation: rename + new file; the old file's last line is still read
        append(log, [avc(serial + 1, *BIND)])
        os.rename(log, tmp_path / "audit.log.1")
        serial += 1
        append(log, [avc(serial + 1, *CONNECT)])
        serial += 1
        wait_for(lambda: len(new) == 2, "the denial written after rotation")
        assert new[0].count == 4 and new[1].group.situation == "boolean-off"
        # 3. copytruncate: the file is cut to zero and written again from the start
        shutil.copy(log, tmp_path / "audit.log.2")
        with open(log, "r+") as fh:
            fh.truncate(0)
        time.sleep(3 * POLL)  # the follower notices the shorter file
        append(log, [avc(serial + 1, *CONNECT), avc(serial + 2, *CONNECT)])
        wait_for(lambda: new[1].count == 3, "the repeats after copytruncate")
    finally:
        stop.set()
        reader.join(DEADLINE)
    assert not reader.is_alive()
    s = box["summary"]
    assert s.network_denials == 7 and s.groups_seen == 2 and s.evicted == 0  # type: ignore[attr-defined]
    assert s.rotations == 2 and s.still_denied  # type: ignore[attr-defined]
    assert [g.count for g in s.groups_kept] == [4, 3]  # type: ignore[attr-defined]
    assert updates and updates[-1][1] >= 2  # counts were reported as they grew


def test_follow_lru_bounded(policy: Policy, tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.touch()
    new: list[FollowGroup] = []
    f = Follower(policy, on_new=new.append, on_update=lambda g: None, max_groups=3,
                 use_interfaces=False)  # fmt: skip
    lines = [avc(i, "name_bind", f"src={9000 + i % 5}", "gen_port_t") for i in range(1, 41)]
    f.feed(lines)
    f.idle()
    s = f.summary()
    # 5 distinct ports round robin, 3 kept: each comes back after eviction, reported anew
    assert len(s.groups_kept) == 3 and s.network_denials == 40
    assert s.evicted == s.groups_seen - 3 and s.groups_seen == len(new) == 40
    f2 = Follower(policy, on_new=new.append, on_update=lambda g: None, max_groups=3,
                  use_interfaces=False)  # fmt: skip
    f2.feed([avc(i, "name_bind", f"src={9000 + i % 3}", "gen_port_t") for i in range(1, 31)])
    s2 = f2.summary()
    assert s2.groups_seen == 3 and s2.evicted == 0 and sorted(g.count for g in s2.groups_kept) == [10] * 3


def test_follow_never_writes_the_log(policy: Policy, tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_text(avc(1, *BIND) + "\n")
    before = (log.stat().st_mtime_ns, log.read_bytes())
    f = Follower(policy, on_new=lambda g: None, on_update=lambda g: None, use_interfaces=False)
    tail = Tail(str(log), from_start=True)
    calls = iter(range(3))
    s = follow(tail, f, poll=POLL, stop=lambda: next(calls, None) is None)
    assert s.network_denials == 1
    assert (log.stat().st_mtime_ns, log.read_bytes()) == before


def test_cli_follow_json_lines_sigterm_summary(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.touch()
    cmd = [sys.executable, "-m", "selnet", "audit", "--follow", "--json", "--no-interfaces",
           "--poll", str(POLL), "--policy", str(BASE), "--policy", str(SNIPPET), str(log)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.extend(proc.stdout or []))
    reader.start()
    try:
        start = time.monotonic()
        # the follower starts at the file's end: keep writing until the first group shows
        serial = 0
        while not out and time.monotonic() - start < DEADLINE:
            serial += 1
            append(log, [avc(serial, *BIND)])
            time.sleep(0.2)
        append(log, [avc(900, *CONNECT), avc(901, *CONNECT, pid=9)])
        wait_for(lambda: len(out) >= 2, "the second group")
        time.sleep(3 * POLL)
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(DEADLINE)
    finally:
        if proc.poll() is None:
            proc.kill()
        reader.join(DEADLINE)
    objs = [json.loads(line) for line in out]
    assert rc == 1  # network denials found, as `audit` says it
    assert all(o["schema_version"] == 1 for o in objs)
    groups = [o for o in objs if o["type"] == "group"]
    assert [(g["number"], g["situation"]) for g in groups] == [(1, "generic-port-type"),
                                                              (2, "boolean-off")]  # fmt: skip
    summary = objs[-1]
    assert summary["type"] == "summary" and summary["distinct_network_denials"] == 2
    counts = {g["situation"]: g["count"] for g in summary["groups"]}
    assert counts["boolean-off"] == 2 and counts["generic-port-type"] >= 1
    assert summary["network_denials"] == sum(counts.values())


def test_follow_refuses_a_fifo_without_blocking(tmp_path: Path) -> None:
    from selnet.errors import InputError

    fifo = tmp_path / "log.fifo"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        Tail(str(fifo))  # open() of a FIFO would wait for a writer
