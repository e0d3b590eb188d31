"""Property tests: the AVC log parser never raises and its counters always add up."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from selnet.audit.avclog import AvcLogParser, Event, ParseStats

SEEDS = [
    "type=AVC msg=audit(1700000000.123:456): avc:  denied  { name_connect } for  pid=1234 "
    'comm="httpd" dest=5432 scontext=system_u:system_r:httpd_t:s0 '
    "tcontext=system_u:object_r:postgresql_port_t:s0 tclass=tcp_socket permissive=0",
    "type=SYSCALL msg=audit(1700000000.123:456): arch=c000003e syscall=42 success=no exit=-13 "
    'a0=3 a1=7ffd2a3c1e40 a2=10 a3=0 items=0 ppid=1 pid=1234 comm="httpd" '
    'exe="/usr/sbin/httpd" subj=system_u:system_r:httpd_t:s0 key=(null)',
    "type=SOCKADDR msg=audit(1700000000.123:456): saddr=020015387F0000010000000000000000",
    "type=PROCTITLE msg=audit(1700000000.123:456): "
    "proctitle=2F7573722F7362696E2F6874747064002D44464F524547524F554E44",
    "node=web01 type=AVC msg=audit(1700000001.5:457): avc:  granted  { read write } for  "
    "pid=5 laddr=10.0.0.1 lport=5432 faddr=10.0.0.9 fport=40112 scontext=u:r:a_t:s0 "
    "tcontext=u:r:a_t:s0 tclass=tcp_socket",
    "type=AVC msg=audit(11/25/2026 17:47:24.123:458) : avc:  denied  { name_connect } for  "
    "pid=1234 comm=httpd worker dest=5432 scontext=system_u:system_r:httpd_t:s0 "
    "tcontext=system_u:object_r:postgresql_port_t:s0 tclass=tcp_socket permissive=0 ",
    "type=SOCKADDR msg=audit(11/25/2026 17:47:24.123:458) : saddr={ saddr_fam=inet "
    "laddr=127.0.0.1 lport=5432 } ",
    "type=SYSCALL msg=audit(11/25/2026 17:47:24.123:458) : arch=x86_64 syscall=connect "
    "success=no exit=EACCES(Permission denied) comm=httpd worker key=(null) ",
    "----",
    "Nov 25 17:47:24 web01 audit[1234]: AVC avc:  denied  { name_bind } for  pid=1234 "
    'comm="httpd" src=8081 scontext=system_u:system_r:httpd_t:s0 '
    "tcontext=system_u:object_r:unreserved_port_t:s0 tclass=tcp_socket permissive=0",
    "Nov 25 17:47:24 web01 audit[1234]: SYSCALL arch=c000003e syscall=49 success=no exit=-13",
    "Nov 25 17:47:24 web01 audit: SOCKADDR saddr=0A001F91000000000000000000000000000000000000",
    "[    3.047447] audit: type=1400 audit(1795626094.031:11): avc:  denied  { name_bind } "
    'for  pid=116 comm="sockop" src=8080 scontext=system_u:system_r:client_t '
    "tcontext=system_u:object_r:http_port_t tclass=tcp_socket permissive=1",
    "Nov 25 17:47:24 web01 kernel: audit: type=1300 audit(1795626094.031:11): arch=c000003e "
    "syscall=49 success=no exit=-13",
    "type=USER_AVC msg=audit(1700000005.000:500): pid=1 uid=81 msg='avc:  denied  { send_msg } "
    "for scontext=u:r:a_t:s0 tcontext=u:r:b_t:s0 tclass=dbus permissive=0'",
    "> tcontext=system_u:object_r:postgresql_port_t:s0 tclass=tcp_socket",
    "avc:  denied  { node_bind } for  saddr=127.0.0.2 src=40000 scontext=u:r:c_t "
    "tcontext=u:object_r:n_t tclass=tcp_socket permissive=0",
    "",
    "Restarting httpd did not help.",
]

# characters audit text is made of, so random text reaches the deeper paths
AUDIT_ALPHABET = (
    "type=AVCSYSCALLmsg audit(0123456789.:) {}avc: denied granted for scontext tcontext "
    "tclass permissive node saddr=\"'>|-[]\r\n\t\x1d_/ABCDEFabcdef"
)


def check(lines: list[str] | list[bytes], window: int = 8) -> tuple[list[Event], ParseStats]:
    parser = AvcLogParser(window=window)
    events = []
    for ev in parser.events(lines):
        assert parser.open_events <= window
        events.append(ev)
    s = parser.stats
    assert s.lines == s.records + s.malformed + s.continuation_lines + s.ignored
    assert s.records == s.avc_records + sum(s.non_avc_records.values())
    assert s.events == len(events)
    assert sum(len(e.avcs) for e in events) == s.avc_records
    assert s.user_avc_records <= s.non_avc_records.get("USER_AVC", 0)
    assert len(s.malformed_samples) == min(s.malformed, 20)
    assert s.peak_open_events <= window
    assert not any("internal error" in why for _, why in s.malformed_samples)
    for ev in events:
        assert ev.avcs
        for a in ev.avcs:
            assert a.verdict in ("denied", "granted")
            assert a.scontext and a.tcontext and a.tclass
            assert a.source_format in ("raw", "ausearch", "journald", "kernel")
            assert a.line_no >= 1
            if ev.key is not None:
                assert (a.node, a.serial) == (ev.key[0], ev.key[2])
    return events, s


FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.lists(st.text(max_size=200), max_size=25), st.integers(1, 8))
def test_arbitrary_text(lines: list[str], window: int) -> None:
    check(lines, window)


@FAST
@given(st.lists(st.text(alphabet=AUDIT_ALPHABET, max_size=300), max_size=25))
def test_audit_flavoured_text(lines: list[str]) -> None:
    check(lines)


@FAST
@given(st.lists(st.binary(max_size=200), max_size=20))
def test_arbitrary_bytes(lines: list[bytes]) -> None:
    check(lines)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    line = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(0, 4))):
        if not line:
            break
        i = draw(st.integers(0, len(line)))
        op = draw(st.sampled_from(["delete", "insert", "truncate", "split", "dup", "case", "digits"]))
        if op == "delete":
            line = line[:i] + line[i + draw(st.integers(1, 20)) :]
        elif op == "insert":
            junk = draw(st.text(alphabet=AUDIT_ALPHABET + "\x00\ufffd", max_size=12))
            line = line[:i] + junk + line[i:]
        elif op == "truncate":
            line = line[:i]
        elif op == "split":
            line = line[:i] + "\n" + line[i:]
        elif op == "digits":  # int() refuses > 4300 digits; float() gives inf
            line = line[:i] + "9" * draw(st.sampled_from([19, 21, 400, 5000])) + line[i:]
        elif op == "dup":
            line = line[:i] + line[i : i + 30] + line[i:]
        else:
            line = line[:i] + line[i:].upper()
    return line


@FAST
@given(st.lists(mutated(), min_size=1, max_size=30), st.integers(1, 8))
def test_mutated_real_lines(lines: list[str], window: int) -> None:
    check(lines, window)


@FAST
@given(st.permutations(SEEDS), st.integers(40, 130), st.sampled_from(["", "> ", "    "]))
def test_shuffled_and_wrapped_real_lines(lines: list[str], width: int, quote: str) -> None:
    wrapped = [quote + ln[i : i + width] for ln in lines for i in range(0, max(len(ln), 1), width)]
    _, s = check(wrapped)
    # a wrap may corrupt a field, but every AVC record survives as a record of some kind
    assert s.avc_records + s.malformed >= 1


def test_huge_numbers() -> None:
    big = "9" * 5000
    lines = [
        f"type=AVC msg=audit({big}.1:{big}): avc:  denied  {{ bind }} for  pid={big} "
        "scontext=u:r:a_t tcontext=u:r:a_t tclass=tcp_socket",
        f"type=SYSCALL msg=audit(1.1:{big}): arch=c000003e syscall={big} exit=-{big}",
        f"type=AVC msg=audit(11/25/2026 17:47:24.{big}:{big}) : avc:  denied  {{ bind }} for  "
        "scontext=u:r:a_t tcontext=u:r:a_t tclass=tcp_socket",
        f"type=SYSCALL msg=audit(1.1:5): arch=c000003e syscall=42 exit=-{big}",
        "type=AVC msg=audit(1e999:5): avc:  denied  { bind } for  scontext=u:r:a_t "
        "tcontext=u:r:a_t tclass=tcp_socket",
    ]
    events, s = check(lines)
    assert s.avc_records == 3
    assert all(a.timestamp is None or a.timestamp < 1e12 for e in events for a in e.avcs)


def test_unmodified_seeds_parse_cleanly() -> None:
    _, s = check(SEEDS)
    assert s.malformed == 0
    assert s.avc_records == 6
    assert s.ignored == 4  # "----", the orphan "> tcontext=" fragment, "", prose
    assert s.user_avc_records == 1
