"""selnet.audit.avclog: every log format, grouping, wrapped pastes, accounting."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator

import pytest

from selnet.audit.avclog import (
    AvcLogParser,
    AvcRecord,
    Event,
    ParseStats,
    avc_key,
    count_repeats,
    fold_repeats,
    parse_events,
)

# --- realistic samples ---------------------------------------------------------

HTTPD = "system_u:system_r:httpd_t:s0"
PGPORT = "system_u:object_r:postgresql_port_t:s0"

# raw /var/log/audit/audit.log: one connect(2) denied, four records, one serial
RAW_EVENT = [
    "type=AVC msg=audit(1700000000.123:456): avc:  denied  { name_connect } for  pid=1234 "
    'comm="httpd" dest=5432 scontext=system_u:system_r:httpd_t:s0 '
    "tcontext=system_u:object_r:postgresql_port_t:s0 tclass=tcp_socket permissive=0",
    "type=SYSCALL msg=audit(1700000000.123:456): arch=c000003e syscall=42 success=no exit=-13 "
    "a0=3 a1=7ffd2a3c1e40 a2=10 a3=0 items=0 ppid=1 pid=1234 auid=4294967295 uid=48 gid=48 "
    "euid=48 suid=48 fsuid=48 egid=48 sgid=48 fsgid=48 tty=(none) ses=4294967295 "
    'comm="httpd" exe="/usr/sbin/httpd" subj=system_u:system_r:httpd_t:s0 key=(null)',
    "type=SOCKADDR msg=audit(1700000000.123:456): saddr=020015387F0000010000000000000000",
    "type=PROCTITLE msg=audit(1700000000.123:456): "
    "proctitle=2F7573722F7362696E2F6874747064002D44464F524547524F554E44",
]

# audit >= 3.0 enriched format: interpreted fields after a GS (0x1d) separator
RAW_ENRICHED = [
    "type=AVC msg=audit(1700000100.500:900): avc:  denied  { name_bind } for  pid=77 "
    'comm="nginx" src=8443 scontext=system_u:system_r:httpd_t:s0 '
    "tcontext=system_u:object_r:unreserved_port_t:s0 tclass=tcp_socket permissive=0",
    "type=SYSCALL msg=audit(1700000100.500:900): arch=c000003e syscall=49 success=no exit=-13 "
    'a0=6 a1=5581 a2=1c a3=0 items=0 ppid=1 pid=77 comm="nginx" exe="/usr/sbin/nginx" '
    'subj=system_u:system_r:httpd_t:s0 key=(null)\x1dARCH=x86_64 SYSCALL=bind AUID="unset" '
    'UID="root"',
    "type=SOCKADDR msg=audit(1700000100.500:900): "
    "saddr=0A0020FB000000000000000000000000000000000000000100000000"
    "\x1dSADDR={ saddr_fam=inet6 laddr=::1 lport=8443 }",
]

# ausearch -i: human date, " : ", unquoted comm with a space, records reversed, ----
AUSEARCH = [
    "----",
    "type=PROCTITLE msg=audit(11/25/2026 17:47:24.123:456) : proctitle=/usr/sbin/httpd -DFOREGROUND ",
    "type=SOCKADDR msg=audit(11/25/2026 17:47:24.123:456) : saddr={ saddr_fam=inet "
    "laddr=127.0.0.1 lport=5432 } ",
    "type=SYSCALL msg=audit(11/25/2026 17:47:24.123:456) : arch=x86_64 syscall=connect "
    "success=no exit=EACCES(Permission denied) a0=0x3 a1=0x7ffd2a3c1e40 a2=0x10 a3=0x0 items=0 "
    "ppid=1 pid=1234 auid=unset uid=apache gid=apache euid=apache suid=apache fsuid=apache "
    "egid=apache sgid=apache fsgid=apache tty=(none) ses=unset comm=httpd worker "
    "exe=/usr/sbin/httpd subj=system_u:system_r:httpd_t:s0 key=(null) ",
    "type=AVC msg=audit(11/25/2026 17:47:24.123:456) : avc:  denied  { name_connect } for  "
    "pid=1234 comm=httpd worker dest=5432 scontext=system_u:system_r:httpd_t:s0 "
    "tcontext=system_u:object_r:postgresql_port_t:s0 tclass=tcp_socket permissive=0 ",
    "----",
    "type=PROCTITLE msg=audit(11/25/2026 17:47:25.020:457) : proctitle=/usr/sbin/httpd ",
    "type=SYSCALL msg=audit(11/25/2026 17:47:25.020:457) : arch=x86_64 syscall=bind "
    "success=yes exit=0 a0=0x4 a1=0x55d0 a2=0x10 a3=0x0 items=0 ppid=1 pid=1234 auid=unset "
    "uid=root comm=httpd exe=/usr/sbin/httpd subj=system_u:system_r:httpd_t:s0 key=(null) ",
    "type=AVC msg=audit(11/25/2026 17:47:25.020:457) : avc:  denied  { name_bind } for  "
    "pid=1234 comm=httpd src=8081 scontext=system_u:system_r:httpd_t:s0 "
    "tcontext=system_u:object_r:unreserved_port_t:s0 tclass=tcp_socket permissive=1 ",
]

# journalctl: the audit transport shows no serial; SOCKADDR/PROCTITLE have no pid
JOURNALD = [
    "Nov 25 17:47:24 web01 audit[1234]: AVC avc:  denied  { name_bind } for  pid=1234 "
    'comm="httpd" src=8081 scontext=system_u:system_r:httpd_t:s0 '
    "tcontext=system_u:object_r:unreserved_port_t:s0 tclass=tcp_socket permissive=0",
    "Nov 25 17:47:24 web01 audit[1234]: SYSCALL arch=c000003e syscall=49 success=no exit=-13 "
    "a0=3 a1=55d0c3e5a2b0 a2=10 a3=0 items=0 ppid=1 pid=1234 auid=4294967295 uid=0 gid=0 "
    'euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="httpd" '
    'exe="/usr/sbin/httpd" subj=system_u:system_r:httpd_t:s0 key=(null)',
    "Nov 25 17:47:24 web01 audit: SOCKADDR saddr=02001F91000000000000000000000000",
    "Nov 25 17:47:24 web01 audit: PROCTITLE "
    "proctitle=2F7573722F7362696E2F6874747064002D44464F524547524F554E44",
    "Nov 25 17:47:24 web01 systemd[1]: httpd.service: Main process exited, code=exited, status=1/FAILURE",
    "Nov 25 17:47:25 web01 audit[1240]: AVC avc:  denied  { name_connect } for  pid=1240 "
    'comm="php-fpm" dest=3306 scontext=system_u:system_r:httpd_t:s0 '
    "tcontext=system_u:object_r:mysqld_port_t:s0 tclass=tcp_socket permissive=0",
]

# verbatim from the kernel oracle's serial console (QEMU, Debian kernel)
KERNEL_CONSOLE = [
    "[    3.047447] audit: type=1400 audit(1795626094.031:11): avc:  denied  { name_bind } "
    'for  pid=116 comm="sockop" src=8080 scontext=system_u:system_r:client_t '
    "tcontext=system_u:object_r:http_port_t tclass=tcp_socket permissive=0",
    "[    4.066504] audit: type=1400 audit(1795626095.051:38): avc:  denied  { node_bind } "
    'for  pid=148 comm="sockop" saddr=127.0.0.2 src=40000 scontext=system_u:system_r:client_t '
    "tcontext=system_u:object_r:other_node_t tclass=tcp_socket permissive=0",
    "[    2.973652] audit: type=1400 audit(1795626100.123:8): avc:  granted  { net_bind_service "
    '} for  pid=110 comm="sockop" capability=10  scontext=system_u:system_r:httpd_t:s0 '
    "tcontext=system_u:system_r:httpd_t:s0 tclass=capability",
    "[    2.548665] audit: type=1403 audit(1795626093.535:2): auid=4294967295 ses=4294967295 "
    "lsm=selinux res=1",
]


def run(lines: list[str], **kw: int) -> tuple[list[Event], ParseStats]:
    parser = AvcLogParser(**kw)
    events = list(parser.events(lines))
    return events, parser.stats


def only_avc(lines: list[str]) -> AvcRecord:
    events, _ = run(lines)
    assert len(events) == 1 and len(events[0].avcs) == 1, events
    return events[0].avcs[0]


def assert_accounting(st: ParseStats) -> None:
    assert st.lines == st.records + st.malformed + st.continuation_lines + st.ignored
    assert st.records == st.avc_records + sum(st.non_avc_records.values())


# --- raw audit.log ---------------------------------------------------------------


def test_raw_event_grouped_with_syscall_sockaddr_proctitle() -> None:
    events, st = run(RAW_EVENT)
    assert len(events) == 1
    ev = events[0]
    assert ev.key == (None, 1700000000.123, 456)
    (avc,) = ev.avcs
    assert avc.verdict == "denied"
    assert avc.perms == ("name_connect",)
    assert (avc.scontext, avc.tcontext, avc.tclass) == (HTTPD, PGPORT, "tcp_socket")
    assert avc.permissive is False
    assert avc.fields == {"pid": "1234", "comm": "httpd", "dest": "5432"}
    assert (avc.serial, avc.timestamp, avc.node) == (456, 1700000000.123, None)
    assert avc.source_format == "raw" and avc.line_no == 1
    assert avc.raw == RAW_EVENT[0]
    assert not avc.packet_level
    assert ev.syscall is not None
    assert ev.syscall["syscall"] == "connect" and ev.syscall["syscall_nr"] == "42"
    assert ev.syscall["exit"] == "EACCES" and ev.syscall["exit_raw"] == "-13"
    assert ev.syscall["success"] == "no"
    assert ev.syscall["exe"] == "/usr/sbin/httpd" and ev.syscall["comm"] == "httpd"
    assert ev.sockaddr == {
        "saddr": "020015387F0000010000000000000000",
        "family": "inet",
        "addr": "127.0.0.1",
        "port": "5432",
    }
    assert ev.proctitle == "/usr/sbin/httpd -DFOREGROUND"
    assert st.avc_records == 1 and st.events == 1 and st.malformed == 0
    assert st.non_avc_records == {"SYSCALL": 1, "SOCKADDR": 1, "PROCTITLE": 1}
    assert_accounting(st)


def test_raw_enriched_fields_and_ipv6_sockaddr() -> None:
    events, st = run(RAW_ENRICHED)
    (ev,) = events
    assert ev.syscall is not None
    assert ev.syscall["syscall"] == "bind" and ev.syscall["UID"] == "root"
    assert ev.syscall["key"] == "(null)"
    assert ev.sockaddr is not None
    assert ev.sockaddr["family"] == "inet6"
    assert (ev.sockaddr["addr"], ev.sockaddr["port"]) == ("::1", "8443")
    assert st.malformed == 0


def test_raw_ipv6_sockaddr_hex_decoding() -> None:
    lines = [
        RAW_EVENT[0],
        "type=SOCKADDR msg=audit(1700000000.123:456): "
        "saddr=0A0015380000000020010DB8000000000000000000000001000000000000",
    ]
    (ev,) = run(lines)[0]
    assert ev.sockaddr is not None
    assert ev.sockaddr["family"] == "inet6"
    assert (ev.sockaddr["addr"], ev.sockaddr["port"]) == ("2001:db8::1", "5432")


def test_unix_and_netlink_sockaddr() -> None:
    unix = "type=SOCKADDR msg=audit(1700000000.123:456): saddr=01002F72756E2F666F6F00"
    (ev,) = run([RAW_EVENT[0], unix])[0]
    assert ev.sockaddr is not None
    assert (ev.sockaddr["family"], ev.sockaddr["addr"]) == ("unix", "/run/foo")
    nl = "type=SOCKADDR msg=audit(1700000000.123:456): saddr=100000000000000000000000"
    (ev,) = run([RAW_EVENT[0], nl])[0]
    assert ev.sockaddr is not None and ev.sockaddr["family"] == "netlink"


def test_node_prefix_separates_hosts_with_same_serial() -> None:
    a = "node=web01 " + RAW_EVENT[0]
    b = "node=db01 " + RAW_EVENT[0].replace("httpd_t", "nginx_t")
    syscall_b = "node=db01 " + RAW_EVENT[1]
    events, _ = run([a, b, syscall_b])
    assert [e.key for e in events] == [
        ("web01", 1700000000.123, 456),
        ("db01", 1700000000.123, 456),
    ]
    assert events[0].syscall is None
    assert events[1].syscall is not None
    assert events[1].avcs[0].scontext == "system_u:system_r:nginx_t:s0"
    assert events[0].avcs[0].node == "web01"


def test_several_perms_granted_and_permissive() -> None:
    rw = only_avc(
        [
            "type=AVC msg=audit(1700000001.000:10): avc:  denied  { read write } for  "
            'pid=5 comm="nc" laddr=10.0.0.1 lport=5432 faddr=10.0.0.9 fport=40112 '
            "scontext=system_u:system_r:httpd_t:s0 tcontext=system_u:system_r:httpd_t:s0 "
            "tclass=tcp_socket permissive=1"
        ]
    )
    assert rw.perms == ("read", "write")
    assert rw.permissive is True
    assert rw.fields["lport"] == "5432" and rw.fields["fport"] == "40112"
    granted = only_avc(
        [
            "type=AVC msg=audit(1700000001.000:11): avc:  granted  { name_bind } for  "
            'pid=5 comm="nc" src=80 scontext=system_u:system_r:httpd_t:s0 '
            "tcontext=system_u:object_r:http_port_t:s0 tclass=tcp_socket"
        ]
    )
    assert granted.verdict == "granted"
    assert granted.permissive is None  # granted records carry no permissive=


def test_packet_level_record_fields() -> None:
    rec = only_avc(
        [
            "type=AVC msg=audit(1700000002.250:31): avc:  denied  { recv } for  pid=0 "
            'comm="swapper/1" saddr=10.0.0.2 src=51234 daddr=10.0.0.1 dest=80 netif=eth0 '
            "scontext=system_u:system_r:httpd_t:s0 tcontext=system_u:object_r:unlabeled_t:s0 "
            "tclass=peer permissive=0"
        ]
    )
    assert rec.packet_level
    assert rec.fields["netif"] == "eth0"
    assert (rec.fields["saddr"], rec.fields["daddr"]) == ("10.0.0.2", "10.0.0.1")
    assert (rec.fields["src"], rec.fields["dest"]) == ("51234", "80")


def test_rawcon_preferred_and_untrusted_strings_decoded() -> None:
    rec = only_avc(
        [
            "type=AVC msg=audit(1700000003.000:40): avc:  denied  { name_bind } for  pid=9 "
            "comm=6D7920617070 src=7000 scontext=staff_u:staff_r:staff_t:SystemLow "
            "tcontext=system_u:object_r:afs_port_t:SystemLow tclass=udp_socket permissive=0 "
            "srawcon=staff_u:staff_r:staff_t:s0 trawcon=system_u:object_r:afs_port_t:s0"
        ]
    )
    assert rec.scontext == "staff_u:staff_r:staff_t:s0"
    assert rec.tcontext == "system_u:object_r:afs_port_t:s0"
    assert rec.fields["tcontext_translated"] == "system_u:object_r:afs_port_t:SystemLow"
    assert rec.fields["comm"] == "my app"  # hex because of the space
    assert rec.tclass == "udp_socket"


def test_other_fields_kept() -> None:
    rec = only_avc(
        [
            "type=AVC msg=audit(1700000004.000:41): avc:  denied  { connectto } for  pid=3 "
            'comm="curl" path="/run/docker.sock" ino=1234 dev="tmpfs" '
            "scontext=system_u:system_r:httpd_t:s0 "
            "tcontext=system_u:system_r:container_runtime_t:s0 tclass=unix_stream_socket "
            "permissive=0"
        ]
    )
    assert rec.fields == {
        "pid": "3",
        "comm": "curl",
        "path": "/run/docker.sock",
        "ino": "1234",
        "dev": "tmpfs",
    }


# --- ausearch -i -------------------------------------------------------------


def test_ausearch_interpreted() -> None:
    events, st = run(AUSEARCH)
    assert len(events) == 2
    ev = events[0]
    (avc,) = ev.avcs
    assert avc.source_format == "ausearch"
    assert avc.fields["comm"] == "httpd worker"
    assert avc.fields["dest"] == "5432"
    assert avc.serial == 456
    assert avc.stamp == "11/25/2026 17:47:24.123:456"
    expected = time.mktime((2026, 11, 25, 17, 47, 24, 0, 0, -1)) + 0.123
    assert avc.timestamp == pytest.approx(expected)
    assert ev.key == (None, avc.timestamp, 456)
    assert ev.syscall is not None
    assert ev.syscall["syscall"] == "connect"
    assert ev.syscall["exit"] == "EACCES"
    assert ev.syscall["exit_raw"] == "EACCES(Permission denied)"
    assert ev.syscall["comm"] == "httpd worker" and ev.syscall["key"] == "(null)"
    assert ev.sockaddr == {"family": "inet", "addr": "127.0.0.1", "port": "5432"}
    assert ev.proctitle == "/usr/sbin/httpd -DFOREGROUND"
    second = events[1].avcs[0]
    assert second.permissive is True and second.fields["src"] == "8081"
    assert events[1].syscall is not None and events[1].syscall["exit"] == "0"
    assert st.ignored == 2  # the two ---- separators
    assert_accounting(st)


@pytest.mark.parametrize(
    ("stamp", "ymd"),
    [
        ("11/25/26 17:47:24.123:456", (2026, 11, 25)),  # C locale %x
        ("25/11/2026 17:47:24.123:456", (2026, 11, 25)),  # en_GB
        ("25.11.2026 17:47:24.123:456", (2026, 11, 25)),  # de_DE
        ("2026-11-25 17:47:24.123:456", (2026, 11, 25)),  # ISO locales
    ],
)
def test_ausearch_locale_dates(stamp: str, ymd: tuple[int, int, int]) -> None:
    line = AUSEARCH[4].replace("11/25/2026 17:47:24.123:456", stamp)
    rec = only_avc([line])
    assert rec.serial == 456
    expected = time.mktime((*ymd, 17, 47, 24, 0, 0, -1)) + 0.123
    assert rec.timestamp == pytest.approx(expected)


def test_ausearch_with_node_and_unparseable_date_keeps_text() -> None:
    line = "node=web01 " + AUSEARCH[4].replace("11/25/2026", "Mi 25 Nov 2026")
    rec = only_avc([line])
    assert rec.node == "web01" and rec.serial == 456
    assert rec.timestamp is None
    assert rec.stamp == "Mi 25 Nov 2026 17:47:24.123:456"


# --- journald / syslog / kernel ring ---------------------------------------------


def test_journald_records_without_serial() -> None:
    events, st = run(JOURNALD)
    assert len(events) == 2
    first, second = events
    assert first.key is None
    (avc,) = first.avcs
    assert avc.source_format == "journald"
    assert avc.serial is None and avc.timestamp is None  # no year in "Nov 25"
    assert avc.node == "web01"
    assert avc.stamp == "Nov 25 17:47:24"
    assert avc.perms == ("name_bind",) and avc.fields["src"] == "8081"
    # the SYSCALL/SOCKADDR/PROCTITLE written right after it belong to it
    assert first.syscall is not None and first.syscall["syscall"] == "bind"
    assert first.sockaddr is not None and first.sockaddr["port"] == "8081"
    assert first.proctitle == "/usr/sbin/httpd -DFOREGROUND"
    assert second.avcs[0].fields["comm"] == "php-fpm"
    assert second.syscall is None
    assert st.ignored == 1  # the systemd line
    assert_accounting(st)


def test_journald_iso_timestamp() -> None:
    line = JOURNALD[0].replace("Nov 25 17:47:24", "2026-11-25T17:47:24.250000+0000")
    rec = only_avc([line])
    assert rec.timestamp == pytest.approx(1795628844.25)


def test_kernel_console_lines() -> None:
    events, st = run(KERNEL_CONSOLE)
    assert [e.avcs[0].perms for e in events] == [
        ("name_bind",),
        ("node_bind",),
        ("net_bind_service",),
    ]
    first = events[0].avcs[0]
    assert first.source_format == "kernel"
    assert (first.serial, first.timestamp) == (11, 1795626094.031)
    assert first.scontext == "system_u:system_r:client_t"  # a non-MLS policy
    assert events[1].avcs[0].fields["saddr"] == "127.0.0.2"
    cap = events[2].avcs[0]
    assert cap.verdict == "granted" and cap.fields["capability"] == "10"
    assert st.non_avc_records == {"MAC_POLICY_LOAD": 1}
    assert_accounting(st)


@pytest.mark.parametrize(
    "prefix",
    [
        "",
        "[   12.345678] ",
        "Nov 25 17:47:24 web01 kernel: ",
        "Nov 25 17:47:24 web01 kernel: [   12.345678] ",
        "<5>[   12.345678] ",
        "[Tue Nov 25 17:47:24 2026] ",  # dmesg -T
        "AVC scenario=bind_8080_client [    3.047447] ",  # a harness tag in front
    ],
)
def test_kernel_printk_prefixes(prefix: str) -> None:
    body = KERNEL_CONSOLE[0].split("] ", 1)[1]
    rec = only_avc([prefix + body])
    assert rec.source_format == "kernel"
    assert rec.serial == 11 and rec.tcontext == "system_u:object_r:http_port_t"
    assert rec.node == ("web01" if "web01" in prefix else None)


def test_kernel_groups_syscall_by_serial() -> None:
    lines = [
        "audit: type=1400 audit(1700000000.500:77): avc:  denied  { name_connect } for  "
        'pid=9 comm="curl" dest=8080 scontext=u:r:a_t:s0 tcontext=u:object_r:b_port_t:s0 '
        "tclass=tcp_socket permissive=0",
        "audit: type=1300 audit(1700000000.500:77): arch=c000003e syscall=42 success=no "
        'exit=-13 a0=5 a1=7ffc a2=10 a3=0 items=0 ppid=1 pid=9 comm="curl" exe="/usr/bin/curl"',
        "audit: type=1306 audit(1700000000.500:77): saddr=02001F907F0000010000000000000000",
        "audit: type=1327 audit(1700000000.500:77): "
        "proctitle=6375726C00687474703A2F2F6C6F63616C686F73743A38303830",
        "audit: type=1320 audit(1700000000.500:77): ",
    ]
    events, st = run(lines)
    (ev,) = events
    assert ev.syscall is not None and ev.syscall["syscall"] == "connect"
    assert ev.sockaddr is not None and ev.sockaddr["port"] == "8080"
    assert ev.proctitle == "curl http://localhost:8080"
    assert st.non_avc_records["EOE"] == 1


# --- pasted / wrapped ------------------------------------------------------------

EXPECTED_PASTED = (HTTPD, PGPORT, "tcp_socket", ("name_connect",), "5432")


def _summary(rec: AvcRecord) -> tuple[str, str, str, tuple[str, ...], str]:
    return (rec.scontext, rec.tcontext, rec.tclass, rec.perms, rec.fields.get("dest", ""))


def test_email_quoted_and_wrapped_at_spaces() -> None:
    lines = [
        "Hi, httpd cannot reach the database. From audit.log:",
        "",
        "> type=AVC msg=audit(1700000000.123:456): avc:  denied  { name_connect } for",
        '> pid=1234 comm="httpd" dest=5432 scontext=system_u:system_r:httpd_t:s0',
        "> tcontext=system_u:object_r:postgresql_port_t:s0 tclass=tcp_socket",
        "> permissive=0",
        "> type=SYSCALL msg=audit(1700000000.123:456): arch=c000003e syscall=42 success=no",
        "> exit=-13 a0=3 a1=7ffd2a3c1e40 a2=10 a3=0 items=0 ppid=1 pid=1234 auid=4294967295",
        '> uid=48 gid=48 comm="httpd" exe="/usr/sbin/httpd" subj=system_u:system_r:httpd_t:s0',
        "",
        "Any idea? I tried setsebool and it did nothing.",
    ]
    events, st = run(lines)
    (ev,) = events
    (rec,) = ev.avcs
    assert _summary(rec) == EXPECTED_PASTED
    assert rec.permissive is False
    assert rec.line_no == 3
    assert rec.fields == {"pid": "1234", "comm": "httpd", "dest": "5432"}
    assert ev.syscall is not None
    assert ev.syscall["exit"] == "EACCES" and ev.syscall["exe"] == "/usr/sbin/httpd"
    assert st.continuation_lines == 5
    assert st.malformed == 0 and st.ignored == 4
    assert_accounting(st)


def test_terminal_hard_wrap_inside_tokens() -> None:
    text = RAW_EVENT[0]
    lines = [text[i : i + 80] for i in range(0, len(text), 80)]
    assert len(lines) >= 3
    rec = only_avc(lines)
    assert _summary(rec) == EXPECTED_PASTED
    assert rec.permissive is False
    # every cut of a terminal-wide line, whatever it splits, must reassemble
    for width in range(50, 130):
        parts = [text[i : i + width] for i in range(0, len(text), width)]
        assert _summary(only_avc(parts)) == EXPECTED_PASTED, width


def _shape(events: list[Event]) -> list[object]:
    return [
        (
            [(a.perms, a.scontext, a.tcontext, a.tclass, a.fields, a.permissive) for a in e.avcs],
            e.syscall,
            e.sockaddr,
            e.proctitle,
        )
        for e in events
    ]


@pytest.mark.parametrize(
    "sample",
    [RAW_EVENT, RAW_ENRICHED, JOURNALD, KERNEL_CONSOLE],
    ids=["raw", "enriched", "journald", "kernel"],
)
def test_hard_wrap_sweep_reassembles_whole_events(sample: list[str]) -> None:
    reference = _shape(run(sample)[0])
    for width in range(60, 140, 3):
        for quote in ("", "> "):
            wrapped = [quote + ln[i : i + width] for ln in sample for i in range(0, len(ln), width)]
            assert _shape(run(wrapped)[0]) == reference, (width, quote)


def test_ausearch_hard_wrapped_at_80_columns() -> None:
    wrapped = [ln[i : i + 80] for ln in AUSEARCH for i in range(0, max(len(ln), 1), 80)]
    assert _shape(run(wrapped)[0]) == _shape(run(AUSEARCH)[0])


def test_indented_crlf_paste() -> None:
    lines = ["    " + line + "\r\n" for line in RAW_EVENT]
    events, st = run(lines)
    (ev,) = events
    assert _summary(ev.avcs[0]) == EXPECTED_PASTED
    assert ev.syscall is not None and ev.proctitle == "/usr/sbin/httpd -DFOREGROUND"
    assert st.malformed == 0


def test_ausearch_wrapped_comm_with_space() -> None:
    lines = [
        "type=AVC msg=audit(11/25/2026 17:47:24.123:456) : avc:  denied  { name_connect } for",
        "pid=1234 comm=httpd worker dest=5432 scontext=system_u:system_r:httpd_t:s0",
        "tcontext=system_u:object_r:postgresql_port_t:s0 tclass=tcp_socket permissive=0",
    ]
    rec = only_avc(lines)
    assert rec.fields["comm"] == "httpd worker"
    assert _summary(rec) == EXPECTED_PASTED


def test_foreign_key_value_line_is_not_joined() -> None:
    # a complete AVC followed by another tool's key=value line that repeats tclass=
    lines = [
        KERNEL_CONSOLE[0],
        "EXPECT_AVC name=bind_8080_client verdict=denied perm=name_bind ttype=http_port_t tclass=tcp_socket",
    ]
    events, st = run(lines)
    assert events[0].avcs[0].tclass == "tcp_socket"
    assert "EXPECT_AVC" not in events[0].avcs[0].raw
    assert st.ignored == 1 and st.continuation_lines == 0
    # nor a tagged key=value line after a long non-AVC record
    lines = [
        "ORACLE-LOAD [    2.552628] audit: type=1404 audit(1795626093.539:3): enforcing=1 "
        "old_enforcing=0 auid=4294967295 ses=4294967295 enabled=1 old-enabled=1 lsm=selinux res=1",
        "ORACLE-INFO enforce=1 policyvers=33",
    ]
    _, st = run(lines)
    assert st.non_avc_records == {"MAC_STATUS": 1}
    assert st.ignored == 1 and st.continuation_lines == 0


def test_bytes_and_multi_line_items() -> None:
    blob = "\n".join(RAW_EVENT).encode() + b"\n\xff\n"
    events, st = run([blob])  # type: ignore[list-item]
    assert len(events) == 1 and events[0].syscall is not None
    assert st.lines == 5


def test_headless_avc_pasted_without_header() -> None:
    rec = only_avc(
        [
            'avc:  denied  { name_bind } for  pid=1234 comm="httpd" src=8081 '
            "scontext=system_u:system_r:httpd_t:s0 "
            "tcontext=system_u:object_r:unreserved_port_t:s0 tclass=tcp_socket permissive=0"
        ]
    )
    assert rec.serial is None and rec.fields["src"] == "8081"


# --- non-AVC, ignored and malformed ---------------------------------------------


def test_non_avc_records_counted_not_malformed() -> None:
    lines = [
        "type=USER_AVC msg=audit(1700000005.000:500): pid=1 uid=81 auid=4294967295 "
        "ses=4294967295 subj=system_u:system_r:system_dbusd_t:s0-s0:c0.c1023 msg='avc:  denied  "
        "{ send_msg } for msgtype=method_return dest=:1.31 spid=1 tpid=512 "
        "scontext=system_u:system_r:init_t:s0 tcontext=system_u:system_r:httpd_t:s0 "
        'tclass=dbus permissive=0  exe="/usr/bin/dbus-daemon" sauid=81 hostname=? addr=? '
        "terminal=?'",
        "Nov 25 17:47:24 web01 audit[1]: USER_AVC pid=1 uid=0 auid=4294967295 ses=4294967295 "
        "subj=system_u:system_r:init_t:s0 msg='avc:  denied  { status } for auid=n/a uid=0 "
        'gid=0 cmdline="systemctl status httpd" scontext=system_u:system_r:httpd_t:s0 '
        "tcontext=system_u:system_r:init_t:s0 tclass=system permissive=0 "
        'exe="/usr/lib/systemd/systemd" sauid=0 hostname=? addr=? terminal=?\'',
        "type=SELINUX_ERR msg=audit(1700000005.100:501): op=security_compute_sav "
        'invalid_context="u:r:foo_t:s0" scontext=u:r:a_t:s0 tcontext=u:r:b_t:s0 tclass=process',
        'type=CWD msg=audit(1700000005.200:502): cwd="/"',
        'type=PATH msg=audit(1700000005.200:502): item=0 name="/etc/shadow" inode=1234 '
        "dev=fd:00 mode=0100000 ouid=0 ogid=0 rdev=00:00 obj=system_u:object_r:shadow_t:s0 "
        "nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0",
        'type=EXECVE msg=audit(1700000005.200:502): argc=2 a0="cat" a1="/etc/shadow"',
        "type=AVC msg=audit(1700000005.300:503): avc:  op=load_policy lsm=selinux seqno=2 res=1",
        "time->Wed Nov 25 17:47:24 2026",
        "Nov 25 17:47:24 web01 sshd[812]: Accepted publickey for admin from 10.0.0.5",
        "```",
        "This is prose; the audit subsystem is fine, it says res=1.",
    ]
    events, st = run(lines)
    assert events == []
    assert st.user_avc_records == 2
    assert st.non_avc_records == {
        "USER_AVC": 2,
        "SELINUX_ERR": 1,
        "CWD": 1,
        "PATH": 1,
        "EXECVE": 1,
        "AVC_NOTICE": 1,
    }
    assert st.malformed == 0
    assert st.ignored == 4
    assert_accounting(st)


def test_malformed_counted_and_rest_processed() -> None:
    lines = [
        "type=AVC msg=audit(1700000006.000:600): avc:  denied  name_connect for  pid=1 "
        "scontext=u:r:a_t:s0 tcontext=u:object_r:b_t:s0 tclass=tcp_socket",  # no braces
        RAW_EVENT[0],
        "type=AVC msg=audit(1700000006.000:601): avc:  denied  { name_bind } for  pid=1 "
        "src=80 tcontext=u:object_r:http_port_t:s0 tclass=tcp_socket permissive=0",  # no scontext
        "",
        "type=AVC msg=audit(1700000006.000:602: avc:  denied",  # broken header, truncated
        "",
        KERNEL_CONSOLE[0],
    ]
    events, st = run(lines)
    assert [e.avcs[0].serial for e in events] == [456, 11]
    assert st.malformed == 3
    reasons = dict(st.malformed_samples)
    assert set(reasons) == {1, 3, 5}
    assert "braces" in reasons[1] or "perms" in reasons[1]
    assert "scontext" in reasons[3]
    assert_accounting(st)


def test_malformed_samples_are_capped() -> None:
    lines = [f"type=AVC msg=audit(1.0:{i}): avc: denied nothing" for i in range(100)]
    _, st = run(lines)
    assert st.malformed == 100 and len(st.malformed_samples) == 20


# --- grouping and memory --------------------------------------------------------


def test_interleaved_events_grouped_by_serial() -> None:
    a = [line.replace(":456)", ":500)") for line in RAW_EVENT]
    b = [line.replace(":456)", ":501)").replace("5432", "3306") for line in RAW_EVENT]
    lines = [a[0], b[0], a[1], b[1], b[2], a[2], a[3], b[3]]
    events, _ = run(lines)
    assert [e.key for e in events] == [
        (None, 1700000000.123, 500),
        (None, 1700000000.123, 501),
    ]
    assert all(e.syscall and e.sockaddr and e.proctitle for e in events)
    assert events[1].avcs[0].fields["dest"] == "3306"


def test_several_avcs_in_one_event() -> None:
    second = RAW_EVENT[0].replace("name_connect", "connect").replace(" dest=5432", "")
    events, _ = run([RAW_EVENT[0], second, RAW_EVENT[1]])
    (ev,) = events
    assert [a.perms for a in ev.avcs] == [("name_connect",), ("connect",)]


def test_serial_reuse_after_reboot_is_a_new_event() -> None:
    later = RAW_EVENT[0].replace("1700000000.123", "1700000900.001")
    events, _ = run([RAW_EVENT[0], later])
    assert [e.key for e in events] == [
        (None, 1700000000.123, 456),
        (None, 1700000900.001, 456),
    ]


def test_old_events_flushed_by_age_while_streaming() -> None:
    parser = AvcLogParser(window=1000, max_age=5.0)
    seen: list[Event] = []

    def feed() -> Iterator[str]:
        for i in range(20):
            yield RAW_EVENT[0].replace("1700000000.123:456", f"{1700000000 + i}.000:{i + 1}")
            if i == 10:
                # the first events are flushed long before the input ends
                assert len(seen) >= 4

    for ev in parser.events(feed()):
        seen.append(ev)
    assert len(seen) == 20
    assert parser.stats.peak_open_events <= 7


def test_window_is_bounded_on_many_serials() -> None:
    window = 64
    parser = AvcLogParser(window=window)
    n = 20_000  # 300 windows' worth: enough to show the bound holds, not grows
    avc = (
        "type=AVC msg=audit(1700000000.000:{s}): avc:  denied  {{ name_connect }} for  pid=7 "
        'comm="a" dest=5432 scontext=u:r:a_t:s0 tcontext=u:object_r:p_t:s0 tclass=tcp_socket '
        "permissive=0"
    )
    sysc = "type=SYSCALL msg=audit(1700000000.000:{s}): arch=c000003e syscall=42 exit=-13"

    def lines() -> Iterator[str]:
        # every 50th serial's SYSCALL arrives 30 serials late: still inside the window
        for s in range(1, n + 1):
            yield avc.format(s=s)
            if s > 30 and (s - 30) % 50 == 0:
                yield sysc.format(s=s - 30)

    count = with_syscall = 0
    for ev in parser.events(lines()):
        count += 1
        with_syscall += ev.syscall is not None
        assert parser.open_events <= window
    st = parser.stats
    assert count == n == st.events == st.avc_records
    assert with_syscall == len(range(50, n - 30 + 1, 50))
    assert st.peak_open_events == window
    assert_accounting(st)


def test_companion_beyond_window_is_dropped_not_misgrouped() -> None:
    avcs = [RAW_EVENT[0].replace(":456)", f":{s})") for s in range(1, 11)]
    late = RAW_EVENT[1].replace(":456)", ":1)")
    events, st = run([*avcs, late], window=4)
    assert len(events) == 10 and all(e.syscall is None for e in events)
    assert st.peak_open_events == 4


def test_parse_events_function() -> None:
    evs = list(parse_events(RAW_EVENT + JOURNALD))
    assert len(evs) == 3


# --- folding repeats --------------------------------------------------------------


def test_avc_key_ignores_pid_and_ephemeral_ports() -> None:
    base = RAW_EVENT[0]
    other_pid = base.replace("pid=1234", "pid=99").replace(":456)", ":457)")
    other_port = base.replace("dest=5432", "dest=5433").replace(":456)", ":458)")
    events = list(parse_events([base, other_pid, other_port, base.replace(":456)", ":459)")]))
    recs = [e.avcs[0] for e in events]
    assert avc_key(recs[0]) == avc_key(recs[1]) != avc_key(recs[2])
    counts = count_repeats(recs)
    assert [(r.fields["dest"], c) for r, c in counts] == [("5432", 3), ("5433", 1)]
    folded = list(fold_repeats(events))
    assert [(e.avcs[0].serial, c) for e, c in folded] == [(456, 3), (458, 1)]
    rw = RAW_EVENT[0].replace("{ name_connect }", "{ write }").replace("dest=5432", "lport=1")
    rw2 = rw.replace("lport=1", "lport=2")
    r1, r2 = (e.avcs[0] for e in parse_events([rw, rw2.replace(":456)", ":460)")]))
    assert avc_key(r1) == avc_key(r2)


# --- the short path for one-line raw records, and chunked file reading -------------------


def test_repeats_reuse_fields_exactly_as_a_full_parse() -> None:
    """AVCs differing only in pid/comm reuse the first one's fields; each must equal the
    record a fresh parser (nothing to reuse) makes from that line alone."""
    base = RAW_EVENT[0]
    variants = [
        base,
        base.replace("pid=1234", "pid=99").replace('comm="httpd"', 'comm="h2"'),
        base.replace('comm="httpd"', "comm=6D7920617070"),  # hex: "my app"
        base.replace('comm="httpd"', "comm=(null)"),
        base.replace('comm="httpd"', 'comm="a\x1db"'),  # GS inside: not two words
        base.replace('comm="httpd"', 'comm="a b"'),  # a space inside quotes
        base.replace("dest=5432", "dest=5433"),  # another shape
        base.replace("pid=1234", 'pid="77"'),
    ]
    lines = [v.replace(":456)", f":{500 + i})") for i, v in enumerate(variants)]
    shared = [dataclasses.replace(e.avcs[0], line_no=0) for e in parse_events(lines)]
    alone = [dataclasses.replace(run([ln])[0][0].avcs[0], line_no=0) for ln in lines]
    assert shared == alone
    assert [r.fields.get("comm") for r in shared[:4]] == ["httpd", "h2", "my app", "(null)"]
    assert [r.fields["pid"] for r in shared[:2]] == ["1234", "99"]
    assert [avc_key(r) for r in shared] == [avc_key(r) for r in alone]
    assert len({avc_key(r) for r in shared}) == 2  # only dest=5433 is another denial


def test_file_read_in_chunks_equals_lines(tmp_path: object) -> None:
    from pathlib import Path

    from selnet.audit.avclog import MAX_LINE_CHARS

    text = ("\r\n".join(RAW_EVENT) + "\r\n" + "x" * (MAX_LINE_CHARS + 5) + "\n"
            + "\n".join(RAW_ENRICHED) + "\rtype=AVC msg=audit(1700000001.000:9): avc:  denied  "
            "{ name_bind } for  pid=1 comm=\"a\" src=80 scontext=u:r:a_t:s0 "
            "tcontext=u:object_r:p_t:s0 tclass=tcp_socket")  # no newline at the end
    path = Path(str(tmp_path)) / "a.log"
    path.write_bytes(text.encode())
    p1, p2 = AvcLogParser(), AvcLogParser()
    with open(path, encoding="utf-8", errors="replace") as f:
        from_file = list(p1.events(f))
    from_lines = list(p2.events(text.replace("\r\n", "\n").replace("\r", "\n").split("\n")))
    assert from_file == from_lines and len(from_file) == 3
    # a file's long line is measured with its newline (as readline did), a list item without
    no_samples = [dataclasses.replace(p.stats, malformed_samples=[]) for p in (p1, p2)]
    assert no_samples[0] == no_samples[1] and p1.stats.malformed == 1
    assert p1.stats.malformed_samples[0][1].startswith(f"line of {MAX_LINE_CHARS + 6:,} ")
    assert_accounting(p1.stats)
