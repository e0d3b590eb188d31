"""libauparse and the Python parser give the same events, counts and reports.

Every log under tests/data/audit, every AVC text of the denial corpus, and generated raw
logs (interleaved events, node= prefixes, EOE, SYSCALL before its AVC, hex comm, serial
reuse, unknown record types, several AVCs per event, non-network AVCs) go through both
paths from a real file; the events (key, line numbers, every AVC field, SYSCALL /
SOCKADDR / PROCTITLE as parsed), the ParseStats counters and the whole ``audit --json``
report must be equal, and the raw inputs must really have taken the raw lanes (the scan
lane for events written the kernel's usual way, libauparse for the rest).
"""

from __future__ import annotations

import dataclasses
import random
import tomllib
from pathlib import Path

import pytest

from selnet.audit import auparse_source
from selnet.audit.auditor import Auditor
from selnet.audit.auparse_source import AUPARSE_AVAILABLE, events
from selnet.audit.avclog import AvcLogParser, AvcRecord, Event, ParseStats
from selnet.policy.index import Policy
from selnet.policy.loader import load_policy
from selnet.render.audit import report_json

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "audit"
CORPUS = ROOT / "tests" / "data" / "denials" / "corpus.toml"
LOGS = sorted(DATA.glob("*.log"))

pytestmark = pytest.mark.skipif(not AUPARSE_AVAILABLE, reason="python3-audit not installed")
# the lanes a raw log may take: all of it scanned, libauparse from the first chunk the
# scan lane does not read, or from the start
RAW = ("scan", "scan+auparse", "auparse")


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy([str(ROOT / "tests" / "policies" / "base.cil"), str(DATA / "audit-policy.cil")])


def parse(path: Path, use_auparse: bool) -> tuple[list[Event], ParseStats, str]:
    parser = AvcLogParser()
    with open(path, encoding="utf-8", errors="replace") as f:
        evs = list(events(parser, f, use_auparse=use_auparse))
    return evs, parser.stats, parser.engine


def same(path: Path) -> str:
    """Assert both paths agree on ``path``; the engine libauparse's path ended with."""
    a, sa, engine = parse(path, True)
    b, sb, _ = parse(path, False)
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x == y, (x, y)
        assert (x.syscall, x.sockaddr, x.proctitle) == (y.syscall, y.sockaddr, y.proctitle)
    # the reordering buffer is not the parser's window: the only counter that may differ
    assert dataclasses.replace(sa, peak_open_events=0) == dataclasses.replace(sb, peak_open_events=0)
    return engine


def raw_lines(path: Path) -> list[str]:
    return [ln for ln in path.read_text().splitlines() if ln.startswith(("type=", "node="))
            and "msg=audit(" in ln and ") : " not in ln]  # fmt: skip


@pytest.mark.parametrize("log", LOGS, ids=lambda p: p.name)
def test_every_test_log_same_events(log: Path, tmp_path: Path) -> None:
    same(log)  # whole file: mixed formats fall back to the Python parser
    raw = raw_lines(log)
    if raw:  # and its raw records alone go through libauparse
        only = tmp_path / "raw.log"
        only.write_text("\n".join(raw) + "\n")
        assert same(only) in RAW


def test_mixed_and_other_formats_take_the_python_parser() -> None:
    engines = {log.name: parse(log, True)[2] for log in LOGS}
    assert engines["ausearch-connect.log"] == "python"
    assert engines["journald-connect.log"] == "python"
    assert engines["refpolicy-mixed.log"] == "python"  # a garbage line among raw records


def test_corpus_avcs_same_events(tmp_path: Path) -> None:
    entries = tomllib.loads(CORPUS.read_text())["denial"]
    via = set()
    for n, entry in enumerate(entries):
        log = tmp_path / f"{n}.log"
        log.write_text(entry["avc"].strip() + "\n")
        via.add(same(log))
    assert "auparse" in via  # most corpus entries are raw audit.log lines


# -- generated raw logs ------------------------------------------------------------------

_NET = [("name_connect", "dest", "tcp_socket", "db_port_t"), ("name_bind", "src", "tcp_socket",
        "gen_port_t"), ("name_bind", "src", "udp_socket", "gen_port_t"), ("node_bind", "saddr",
        "tcp_socket", "node_t")]  # fmt: skip


def _event(rng: random.Random, serial: int, t: float) -> list[str]:
    node = f"node=h{rng.randrange(3)} " if rng.random() < 0.2 else ""
    st = f"{t:.3f}:{serial}"
    perm, key, cls, tgt = rng.choice(_NET)
    value = rng.choice(("127.0.0.1", "10.0.0.7")) if key == "saddr" else rng.randrange(1, 65536)
    comm = rng.choice(('"web"', '"db"', "6D7920617070", '"x y"'))
    avcs = [f"{node}type=AVC msg=audit({st}): avc:  denied  {{ {perm} }} for  pid="
            f"{rng.randrange(1, 99)} comm={comm} {key}={value} scontext=system_u:system_r:web_t:s0 "
            f"tcontext=system_u:object_r:{tgt}:s0 tclass={cls} permissive={rng.randrange(2)}"]
    if rng.random() < 0.15:  # a second AVC in the same event
        avcs.append(f"{node}type=AVC msg=audit({st}): avc:  denied  {{ read }} for  pid=1 "
                    f'comm="web" name="f" scontext=system_u:system_r:web_t:s0 '
                    f"tcontext=system_u:object_r:etc_t:s0 tclass=file permissive=0")
    if rng.random() < 0.05:  # a granted one
        avcs.append(avcs[0].replace("denied", "granted"))
    comp = [
        f"{node}type=SYSCALL msg=audit({st}): arch=c000003e syscall={rng.choice((42, 49))} "
        f"success=no exit=-13 a0=3 items=0 ppid=1 pid=5 uid=0 comm={comm} "
        f'exe="/usr/bin/web" subj=system_u:system_r:web_t:s0 key=(null)',
        f"{node}type=SOCKADDR msg=audit({st}): saddr="
        + rng.choice(("02001538C0A800050000000000000000", "0A0020FB000000000000000000000000"
                      "0000000000000001000000", "01002F72756E2F666F6F00")),
        f"{node}type=PROCTITLE msg=audit({st}): proctitle=2F7573722F62696E2F776562002D64",
    ]
    if rng.random() < 0.1:
        comp[:2] = comp[1::-1]  # SOCKADDR before SYSCALL
    comp = comp[: rng.randrange(4)]
    recs = avcs + comp
    if comp and rng.random() < 0.1:  # the SYSCALL before the AVC
        recs = [comp[0], *avcs, *comp[1:]]
    # PROCTITLE stays last, as the kernel writes it: libauparse ends an event there
    if rng.random() < 0.1:
        recs.append(f"{node}type=EOE msg=audit({st}): ")
    return recs


def gen(path: Path, seed: int, n: int) -> None:
    rng = random.Random(seed)
    t = 1_700_000_000.0
    pending: list[str] = []
    out: list[str] = []
    for serial in range(1, n + 1):
        t += rng.random() * 0.2
        recs = _event(rng, serial, t)
        # the previous event's late records after this one's first (two CPUs)
        recs, pending = recs[:1] + pending + recs[1:], []
        if rng.random() < 0.1:  # interleave with the next event
            recs, pending = recs[: 1 + len(pending)], recs[1 + len(pending) :]
        out += recs
        if rng.random() < 0.05:
            out.append(f"type=UNKNOWN[1334] msg=audit({t:.3f}:{serial + 100000}): x=1")
        if rng.random() < 0.05:
            out.append(f"type=USER_AVC msg=audit({t:.3f}:{serial + 200000}): pid=1 uid=0 "
                       "msg='avc:  denied  { send_msg } for scontext=a tcontext=b tclass=dbus'")
        if rng.random() < 0.03:
            out.append(f"type=CRED_ACQ msg=audit({t:.3f}:{serial + 300000}): pid=9 res=success")
    out += pending
    if rng.random() < 0.5:  # the serial again after a "reboot"
        out.append(out[0].replace(f"({out[0].split('(')[1].split(':')[0]}:", "(1800000000.000:"))
    path.write_text("\n".join(out) + ("\n" if seed % 2 else ""))


@pytest.mark.parametrize("seed", range(8))
def test_generated_raw_logs_same_events(seed: int, tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    gen(log, seed, 400)
    assert same(log) in RAW
    # events wait for line order only behind interleaved ones: a handful, not the log
    assert parse(log, True)[1].peak_open_events <= 8


def test_a_raw_log_turning_mixed_switches_to_python(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    gen(log, 1, 300)
    head = log.read_text()
    journal = (DATA / "journald-connect.log").read_text()
    # far enough for the switch to happen in a later chunk than the first
    big = head * (2 * auparse_source.CHUNK // len(head) + 1)
    log.write_text(big + journal)
    a, sa, engine = parse(log, True)
    b, sb, _ = parse(log, False)
    assert engine == "auparse+python"
    assert sa.lines == sb.lines and sa.avc_records == sb.avc_records
    assert sa.malformed == sb.malformed
    # the journald denials after the switch are there, with their line numbers
    assert [r.line_no for e in a[-3:] for r in e.avcs] == [r.line_no for e in b[-3:] for r in e.avcs]


def kernel_order(path: Path, seed: int, n: int, tail: str = "") -> None:
    """Events as a kernel writes them (the scan lane's input): each event's records one
    after the other, AVC first and PROCTITLE last, serials increasing; many repeats.
    ``tail``: text appended (another lane's input, after enough chunks)."""
    rng = random.Random(seed)
    t = 1_700_000_000.0
    out: list[str] = []
    for serial in range(1, n + 1):
        t += rng.random() * 0.2
        recs = [r for r in _event(rng, 2 * serial, t) if not r.startswith(("node=", "type=EOE"))]
        if recs and recs[0].startswith("type=AVC"):
            out += recs
        if rng.random() < 0.05:  # another event between
            out.append(f"type=CRED_ACQ msg=audit({t:.3f}:{2 * serial + 1}): pid=9 res=success")
    path.write_text("\n".join(out) + "\n" + tail)


def test_the_scan_lane_reads_kernel_written_logs_the_same(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auparse_source, "CHUNK", 4096)  # many chunks, events across edges
    log = tmp_path / "audit.log"
    kernel_order(log, 5, 400)
    assert same(log) == "scan"
    # then a serial again (a reboot) and interleaved events: libauparse from that chunk
    other = tmp_path / "other.log"
    gen(other, 2, 100)
    kernel_order(log, 5, 400, tail=other.read_text().replace("audit(17", "audit(18"))
    assert same(log) == "scan+auparse"
    # and a journald line after that: the Python parser for the rest
    log.write_text(log.read_text() + (DATA / "journald-connect.log").read_text())
    _, sa, engine = parse(log, True)
    _, sb, _ = parse(log, False)
    assert engine == "scan+auparse+python"
    assert sa.lines == sb.lines and sa.avc_records == sb.avc_records


def test_reports_identical(policy: Policy, tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    gen(log, 3, 600)
    scanned = tmp_path / "kernel.log"
    kernel_order(scanned, 4, 600)
    logs = [log, scanned, *LOGS]
    for path in logs:
        reps = []
        for use in (True, False):
            a = Auditor(policy, use_interfaces=False, use_auparse=use)
            with open(path, encoding="utf-8", errors="replace") as f:
                a.feed(f)
            reps.append(report_json(a.report()))
        assert reps[0] == reps[1], path.name
    assert reps[0]["stats"]


def test_malformed_avc_counted_the_same(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_text(
        "type=AVC msg=audit(1700000000.000:1): avc:  denied  { name_bind } for  pid=1 "
        'comm="a" src=99999999999 scontext=u:r:a_t:s0 tcontext=u:object_r:p_t:s0 '
        "tclass=tcp_socket permissive=0\n"
        "type=AVC msg=audit(1700000000.000:2): avc:  received policyload notice (seqno=2)\n"
        "type=AVC msg=audit(1700000000.000:3): something else\n"
        "type=AVC msg=audit(1700000000.000:4): avc:  denied  { name_bind } for  pid=1 "
        'comm="a" src=80 tcontext=u:object_r:p_t:s0 tclass=tcp_socket\n'
    )
    assert same(log) == "scan"
    _, st, _ = parse(log, True)
    assert st.malformed == 3 and st.non_avc_records == {"AVC_NOTICE": 1}


def test_repeats_are_counted_without_their_records(policy: Policy, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The scan lane hands a repeated denial (one AVC, its text seen before but for pid
    and comm) to the auditor as a count: the report is the one the Python parser's
    records give, pids and comms included."""
    rng = random.Random(7)
    texts = [("name_connect", "dest=5432", "db_port_t"), ("name_bind", "src=8080", "gen_port_t"),
             ("name_connect", "dest=9", "db_port_t")]
    out = []
    for serial in range(1, 401):
        perm, field, tgt = rng.choice(texts)
        st = f"1700000000.{serial:03d}:{serial}"
        comm = rng.choice(('"web"', '"web2"', "6D7920617070"))
        out += [f"type=AVC msg=audit({st}): avc:  denied  {{ {perm} }} for  pid={rng.randrange(9999)} "
                f"comm={comm} {field} scontext=system_u:system_r:web_t:s0 "
                f"tcontext=system_u:object_r:{tgt}:s0 tclass=tcp_socket permissive=0",
                f"type=SYSCALL msg=audit({st}): arch=c000003e syscall=42 success=no exit=-13",
                f"type=PROCTITLE msg=audit({st}): proctitle=776562"]
    log = tmp_path / "audit.log"
    log.write_text("\n".join(out) + "\n")
    counted: list[bool] = []
    real = Auditor._repeat

    def spy(self: Auditor, first: AvcRecord, pid: str, comm: str) -> bool:
        done: bool = real(self, first, pid, comm)
        counted.append(done)
        return done

    monkeypatch.setattr(Auditor, "_repeat", spy)
    reps = []
    for use in (True, False):
        a = Auditor(policy, use_interfaces=False, use_auparse=use)
        with open(log, encoding="utf-8", errors="replace") as f:
            a.feed(f)
        assert a.parser.engine == ("scan" if use else "python")
        reps.append(report_json(a.report()))
    assert reps[0] == reps[1]
    assert sum(counted) >= 390  # all but the first of each text
    assert reps[0]["stats"]["network_denials"] == 400
