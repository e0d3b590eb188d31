"""Streaming parser of SELinux audit records in every format people paste.

Accepted, line by line and mixed freely:

* raw ``audit.log``: ``[node=N ]type=AVC msg=audit(1700000000.123:456): avc: ...``
* ``ausearch -i``: ``type=AVC msg=audit(11/25/2026 17:47:24.123:456) : avc: ...``
  (human dates, unquoted values that may contain spaces, ``----`` separators)
* journald: ``Nov 25 17:47:24 host audit[1234]: AVC avc: ...`` (no serial)
* kernel ring / dmesg / syslog: ``[  12.3] audit: type=1400 audit(1700000000.123:456): ...``
* any of the above behind pasted prefixes (``> ``, indentation, harness tags) and
  wrapped over several lines.

Grouping: records sharing ``(node, serial)`` (AVC + SYSCALL + SOCKADDR +
PROCTITLE, written by the kernel at one syscall exit) form one :class:`Event`.
Memory is bounded: at most ``window`` events are open, the oldest is flushed
first; an event is also flushed once it is ``max_age`` seconds older than the
newest record (so ``tail -f`` is not held back), on ``----`` (ausearch's event
separator), on ``type=EOE``, and at the end. Events are yielded in the order of
their first record; only events with at least one AVC are yielded. Serial-less
AVCs (journald, pasted ``avc: ...`` text) are one event each; a serial-less
SYSCALL/SOCKADDR/PROCTITLE joins the AVC just before it when host and time text
match (and, for SYSCALL, the pid): that is how journald shows one event.

Continuation rule (wrapped pastes): a line that does not start a record is
joined to the record before it when

1. *strong*: the record is visibly unfinished (an AVC without ``tclass=``, text
   ending in ``=``, in an open quote or an open ``{``) and the line looks like a
   fragment (has ``=``, ``{`` or ``}``, or at most two words), or the line starts
   with ``=`` right after a bare word (``permissive`` + ``=0``);
2. *weak*: the previous physical line was long enough to have been wrapped
   (>= 50 characters), at least half the line's words are ``key=value`` and
   none of those keys already occurs in the record (a record never repeats a
   key, so a second ``tclass=`` is another tool's line, not a continuation);
3. *cut value*: a bare word continuing the last value, when the previous line
   is exactly as wide as lines already seen cut mid-word (80 columns until one
   is seen), or a long upper-case hex value (``saddr=``, ``proctitle=``) goes on.

Never joined: blank lines and ``----`` (they end the record), other programs'
syslog lines, prose (few ``key=value`` words). Pieces are joined with a space
when whitespace survived at the break (trailing, or deeper indentation than the
record's first line), otherwise glued where a word was visibly cut (after
``=``, inside quotes, ``tcl`` + ``ass=``, ``tclass=tcp_`` + ``socket``, halves
of ``denied`` or of a permission name). In ausearch text, whose comm/exe/exit
values contain spaces, a break inside such a value is glued only when the
record's lines show a fixed wrap width.

Speed (a raw audit.log is mostly one-line records): a raw record is kept as its line until
the next line shows it is not continued, then handled without the wrapping machinery; an
AVC whose text, pid= and comm= aside, was seen before reuses that record's fields (at most
MAX_SHAPES texts remembered); SYSCALL/SOCKADDR/PROCTITLE are parsed when an :class:`Event`'s
attribute is first read; a file is read a chunk at a time.  Raw logs can also go through
libauparse (``auparse_source``), with the same results.

The parser never raises on input: unparseable AVC text is counted in
``ParseStats.malformed`` (with up to 20 samples, each cut to 200 characters) and
skipped; other audit records are counted by type; anything else is counted as
ignored.  Bounds: a physical line longer than ``MAX_LINE_CHARS`` (1 MiB) is
malformed and skipped without being kept (a file is read with a size limit, so
such a line is never built whole); a record joined from several lines stops at
``MAX_RECORD_CHARS``; an AVC whose port field has more than 10 digits is
malformed (one line, never the run).
"""

from __future__ import annotations

import codecs
import errno
import io
import ipaddress
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from selnet.kernel.classes import PACKET_CLASSES

__all__ = [
    "AvcLogParser",
    "AvcRecord",
    "Event",
    "ParseStats",
    "avc_key",
    "count_repeats",
    "fold_repeats",
    "parse_events",
]

Verdict = Literal["denied", "granted"]
SourceFormat = Literal["raw", "ausearch", "journald", "kernel"]
EventKey = tuple[str | None, float | None, int]
AvcKey = tuple[str, str, str, str, tuple[str, ...], tuple[tuple[str, str], ...]]

DEFAULT_WINDOW = 64
DEFAULT_MAX_AGE = 5.0  # seconds: one event's records are written within one syscall exit
MAX_AVCS_PER_EVENT = 1024
MAX_RECORD_CHARS = 16384  # the kernel caps one record near 8970 bytes
MAX_SAMPLES = 20
MAX_SHAPES = 4096  # distinct AVC texts (pid/comm aside) remembered for reuse
# A physical line longer than this is counted as malformed and skipped, never kept: read
# from a file, only MAX_LINE_CHARS + 1 characters of it are ever in memory at once.
MAX_LINE_CHARS = 1 << 20
MAX_SAMPLE_CHARS = 200  # a malformed sample's reason is cut to this
MAX_NUMBER_DIGITS = 10  # a port field with more digits is malformed
# AVC fields that are port numbers, which diagnosis reads as int: a longer digit string
# makes the record malformed (int() refuses more than 4300 digits; no port has more than
# 5).  Other numbers (pid, serial) are kept as text or read only when short.
_NUMERIC_FIELDS = ("src", "dest", "lport", "fport", "sport", "dport")
_READ_CHUNK = 1 << 16
_READ_CHUNK_BIG = 1 << 20
_AMBIGUOUS = "?"  # a separator decided once the whole record is seen
_WRAP_MIN_LEN = 50  # shorter lines were not wrapped by a terminal or mailer

# Packet-level classes: checked in softirq context, so pid/comm name whatever
# process happened to be running, not the one the packet belongs to.

# ---------------------------------------------------------------------------
# Output data


@dataclass(slots=True)
class AvcRecord:
    """One kernel AVC record (``type=AVC`` / ``type=1400``); never changed once made (not
    frozen: a frozen dataclass costs ~5 µs more per record, a million times per log)."""

    verdict: Verdict
    perms: tuple[str, ...]
    scontext: str
    tcontext: str
    tclass: str
    permissive: bool | None
    fields: dict[str, str]
    serial: int | None
    timestamp: float | None
    node: str | None
    source_format: SourceFormat
    line_no: int
    raw: str
    stamp: str | None = None  # the audit(...) or syslog time text as written
    # avc_key(self), shared by the repeats of one AVC text (pid/comm aside)
    key_cache: AvcKey | None = field(default=None, compare=False, repr=False)

    @property
    def packet_level(self) -> bool:
        """True when pid/comm are meaningless (the check ran in softirq context)."""
        return self.tclass in PACKET_CLASSES


class Event:
    """The records of one audit event; ``key`` is None for serial-less records.

    ``syscall``, ``sockaddr`` and ``proctitle`` are parsed on first access: a log of a
    million events repeating a few denials needs them only for the first of each."""

    __slots__ = ("_companions", "_raw", "avcs", "key", "line_no")

    def __init__(
        self, key: EventKey | None, avcs: list[AvcRecord], syscall: dict[str, str] | None,
        sockaddr: dict[str, str] | None, proctitle: str | None, line_no: int = 0,
    ) -> None:  # fmt: skip
        self.key = key
        self.avcs = avcs
        self.line_no = line_no
        self._companions: tuple[dict[str, str] | None, dict[str, str] | None, str | None] | None
        self._companions = (syscall, sockaddr, proctitle)
        self._raw: tuple[str | None, str | None, str | None, bool] | None = None

    @classmethod
    def _lazy(
        cls, key: EventKey | None, avcs: list[AvcRecord], raw: tuple[str | None, str | None,
        str | None, bool], line_no: int,
    ) -> Event:  # fmt: skip
        ev = cls.__new__(cls)
        ev.key = key
        ev.avcs = avcs
        ev.line_no = line_no
        ev._companions = None
        ev._raw = raw
        return ev

    def _parsed(self) -> tuple[dict[str, str] | None, dict[str, str] | None, str | None]:
        got = self._companions
        if got is None:
            assert self._raw is not None
            sc, sa, pt, human = self._raw
            try:
                got = (
                    None if sc is None else _parse_syscall(sc, human),
                    None if sa is None else _parse_sockaddr(sa, human),
                    None if pt is None else _parse_proctitle(pt, human),
                )
            except Exception:  # keep the AVCs even if a companion is odd
                got = (None, None, None)
            self._companions = got
            self._raw = None
        return got

    @property
    def syscall(self) -> dict[str, str] | None:
        return self._parsed()[0]

    @property
    def sockaddr(self) -> dict[str, str] | None:
        return self._parsed()[1]

    @property
    def proctitle(self) -> str | None:
        return self._parsed()[2]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Event):
            return NotImplemented
        return (self.key, self.avcs, self.line_no, self._parsed()) == (
            other.key, other.avcs, other.line_no, other._parsed())  # fmt: skip

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"Event(key={self.key!r}, avcs={self.avcs!r}, syscall={self.syscall!r}, "
                f"sockaddr={self.sockaddr!r}, proctitle={self.proctitle!r}, "
                f"line_no={self.line_no})")  # fmt: skip


@dataclass(slots=True)
class ParseStats:
    """Counters; every input line is exactly one of: record start, continuation,
    ignored, or malformed, so ``lines == records + malformed + continuation_lines +
    ignored`` and ``records == avc_records + sum(non_avc_records.values())``."""

    lines: int = 0
    records: int = 0
    avc_records: int = 0
    events: int = 0
    non_avc_records: dict[str, int] = field(default_factory=dict)
    user_avc_records: int = 0  # userspace object managers (dbus, systemd): no network check
    malformed: int = 0
    malformed_samples: list[tuple[int, str]] = field(default_factory=list)
    ignored: int = 0
    continuation_lines: int = 0
    peak_open_events: int = 0

    def add_malformed(self, line_no: int, reason: str) -> None:
        self.malformed += 1
        if len(self.malformed_samples) < MAX_SAMPLES:
            if len(reason) > MAX_SAMPLE_CHARS:
                reason = reason[: MAX_SAMPLE_CHARS - 3] + "..."
            self.malformed_samples.append((line_no, reason))


# ---------------------------------------------------------------------------
# Field knowledge

_KERNEL_TYPES = {
    "1107": "USER_AVC",
    "1300": "SYSCALL",
    "1302": "PATH",
    "1306": "SOCKADDR",
    "1307": "CWD",
    "1309": "EXECVE",
    "1320": "EOE",
    "1327": "PROCTITLE",
    "1400": "AVC",
    "1401": "SELINUX_ERR",
    "1403": "MAC_POLICY_LOAD",
    "1404": "MAC_STATUS",
    "1405": "MAC_CONFIG_CHANGE",
}

_SYSCALLS_X86_64 = {
    "41": "socket", "42": "connect", "43": "accept", "44": "sendto", "45": "recvfrom",
    "46": "sendmsg", "47": "recvmsg", "48": "shutdown", "49": "bind", "50": "listen",
    "51": "getsockname", "52": "getpeername", "54": "setsockopt", "55": "getsockopt",
    "288": "accept4", "299": "recvmmsg", "307": "sendmmsg",
}  # fmt: skip
_SYSCALLS_AARCH64 = {
    "198": "socket", "200": "bind", "201": "listen", "202": "accept", "203": "connect",
    "204": "getsockname", "205": "getpeername", "206": "sendto", "207": "recvfrom",
    "208": "setsockopt", "209": "getsockopt", "210": "shutdown", "211": "sendmsg",
    "212": "recvmsg", "242": "accept4", "243": "recvmmsg", "269": "sendmmsg",
}  # fmt: skip
_SYSCALLS_BY_ARCH = {
    "c000003e": _SYSCALLS_X86_64,
    "x86_64": _SYSCALLS_X86_64,
    "c00000b7": _SYSCALLS_AARCH64,
    "aarch64": _SYSCALLS_AARCH64,
}

# Strings the kernel logs with audit_log_untrustedstring: quoted, or hex if odd.
_UNTRUSTED_KEYS = frozenset({"comm", "exe", "path", "name", "cwd", "proctitle", "cmd"})
# values ausearch -i prints unquoted and that may contain spaces
_MULTIWORD_KEYS = _UNTRUSTED_KEYS | {"exit", "cmdline", "key", "tty", "terminal"}
_STRUCTURAL_WORDS = frozenset({"avc:", "denied", "granted", "{", "}", "for"})
# Words a hard wrap may cut in two; gluing the halves back must form one of them.
_PERM_WORDS = (
    "ioctl read write create getattr setattr lock relabelfrom relabelto append map bind "
    "connect listen accept getopt setopt shutdown recvfrom sendto name_bind node_bind "
    "name_connect connectto newconn acceptfrom recv_msg send_msg send recv forward_in "
    "forward_out ingress egress setcontext polmatch net_bind_service net_raw net_admin "
    "net_broadcast open search add_name remove_name execute use"
)
_GLUE_WORDS = _STRUCTURAL_WORDS | frozenset(_PERM_WORDS.split(" "))

# ---------------------------------------------------------------------------
# Regexes (compiled once; the hot path is one header match + one body split)

# raw audit.log and ausearch -i header
_HEAD_RE = re.compile(
    r"(?:node=(?P<node>\S+) )?type=(?P<type>[A-Z][A-Z0-9_]*(?:\[\d+\])?) "
    r"msg=audit\((?P<stamp>[^()]*)\) ?: ?"
)
# kernel printk form (dmesg, console, syslog "kernel:"); the type may be absent
# on very old kernels. The look-behind keeps "msg=audit(" out.
_KERNEL_RE = re.compile(r"(?<![\w=])(?:audit: )?(?:type=(?P<type>\d+) )?audit\((?P<stamp>[^()]*)\): ?")
_SYSLOG_TS = (
    r"(?:[A-Z][a-z]{2} [ \d]?\d \d\d:\d\d:\d\d(?:\.\d+)?"
    r"|\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?)"
)
# journald's audit transport: "<ts> <host> audit[pid]: TYPE body" (also -o short-monotonic)
_JOURNAL_RE = re.compile(
    rf"(?P<ts>{_SYSLOG_TS}|\[ *\d+\.\d+\]) (?P<host>\S+) audit(?:\[(?P<pid>\d+)\])?: "
    r"(?P<type>[A-Z][A-Z0-9_]*(?:\[\d+\])?) "
)
_SYSLOG_LINE_RE = re.compile(rf"{_SYSLOG_TS} \S+ [^\s:]+: ")
# the syslog prefix in front of a kernel-form record, for its host
_SYSLOG_PREFIX_RE = re.compile(
    rf"[\s>|]*(?P<ts>{_SYSLOG_TS}) (?P<host>[^\s\[\]]+) (?:[^\s:]+: )?(?:\[[^\]]*\] ?)?$"
)
_HEADLESS_RE = re.compile(r"avc: +(?:denied|granted) ")
_LOOSE_AVC_RE = re.compile(r"\btype=(?:AVC|1400)\b|\bavc:")

_AVC_BODY_RE = re.compile(r"\s*avc: +(denied|granted) +\{([^{}]*)\}(?: +for)? *")
_AVC_NOTICE_RE = re.compile(r"\s*avc: +(?:op=|received |policy)")
_KEY_RE = re.compile(r"[A-Za-z_][\w-]*")
_HUMAN_STAMP_RE = re.compile(r"(\d{1,4})([/.-])(\d{1,2})\2(\d{1,4}) (\d\d):(\d\d):(\d\d)(?:\.(\d+))?:(\d+)")
_HEX_RE = re.compile(r"(?:[0-9A-Fa-f]{2})+")
_UPPER_HEX_RE = re.compile(r"[0-9A-F]+")
_TAG_RE = re.compile(r"[A-Z][A-Z0-9_-]+:?")  # "ORACLE-INFO", "NOTE:": a label, not a value
_EXIT_NAME_RE = re.compile(r"(E[A-Z0-9]+)\(")
_KEY_TOKEN_RE = re.compile(r"[A-Za-z_][\w-]*=")

# ---------------------------------------------------------------------------
# Small parsing helpers


def _split_kv(text: str, raw_strings: bool = False) -> dict[str, str]:
    """key=value pairs. A word without ``=`` continues the previous value (ausearch
    prints comm/exe unquoted, spaces included); the first occurrence of a key wins.
    Quotes are removed; with ``raw_strings`` hex-encoded untrusted strings are decoded."""
    # str.split also splits on the enriched-field separator GS (\x1d)
    pairs = [tok.split("=", 1) for tok in text.split()]
    if min(map(len, pairs), default=2) == 2:  # every word is key=value: the usual case
        out = dict(reversed(pairs))  # reversed: the first occurrence wins
        if "" not in out:
            if raw_strings or '"' in text:
                for key, value in out.items():
                    if value[:1] == '"':
                        out[key] = _strip_quotes(value)
                    elif raw_strings and key in _UNTRUSTED_KEYS and _HEX_RE.fullmatch(value):
                        out[key] = _hex_text(value)
            return out
    return _split_kv_words(text, raw_strings)


def _pid_comm(rest: str, cut: int, end: int) -> tuple[str, str]:
    """pid= and comm= of a raw AVC's text from "pid=" (their values end at ``cut`` and
    ``end``), as the parser reads them: unquoted, a hex comm decoded."""
    pid = rest[4:cut]
    comm = rest[cut + 6 : end]
    if comm[:1] == '"':
        comm = _strip_quotes(comm)
    elif _HEX_RE.fullmatch(comm):
        comm = _hex_text(comm)
    return (_strip_quotes(pid) if pid[:1] == '"' else pid), comm


def _strip_quotes(value: str) -> str:
    return value[1:-1] if value[-1:] == '"' and len(value) > 1 else value[1:]


def _split_kv_words(text: str, raw_strings: bool) -> dict[str, str]:
    """The general case of :func:`_split_kv`, word by word."""
    out: dict[str, str] = {}
    last = ""
    special: list[str] = []
    for tok in text.split():
        key, sep, value = tok.partition("=")
        if sep and (key.isidentifier() or _KEY_RE.fullmatch(key) is not None):
            if key in out:
                last = ""
                continue
            out[key] = value
            last = key
            if value[:1] == '"' or (raw_strings and key in _UNTRUSTED_KEYS):
                special.append(key)
        elif last:
            out[last] += " " + tok
    for key in special:
        value = out[key]
        if value[:1] == '"':
            out[key] = _strip_quotes(value)
        elif _HEX_RE.fullmatch(value):
            out[key] = _hex_text(value)
    return out


def _indent(text: str) -> int:
    """Whitespace before the content, after any quote markers ("> ", "| ")."""
    lead = len(text) - len(text.lstrip(" \t>|"))
    if not lead:
        return 0
    prefix = text[:lead]
    return lead - max(prefix.rfind(">"), prefix.rfind("|")) - 1


def _value_key(body: str) -> str:
    """The key whose value ends ``body``."""
    eq = body.rfind("=")
    return body[body.rfind(" ", 0, eq) + 1 : eq] if eq > 0 else ""


def _hex_text(value: str) -> str:
    # audit hex-encodes strings with spaces/quotes; argv parts are NUL-separated
    raw = bytes.fromhex(value)
    return raw.replace(b"\x00", b" ").decode("utf-8", "replace").rstrip()


_MAX_EPOCH = 1e12  # far future; also keeps float("1e999") == inf out of the age arithmetic
_mktime_cache: dict[tuple[int, int, int, int, int, int], float] = {}


def _parse_stamp(stamp: str) -> tuple[float | None, int | None, bool]:
    """(epoch seconds, serial, human) from the text inside ``audit(...)``."""
    sec, colon, ser = stamp.partition(":")
    if colon and sec[:1].isdigit():  # a leading digit keeps "nan"/"inf" out of float()
        serial = _serial(ser)
        if serial is not None:
            try:
                ts = float(sec)
            except ValueError:
                pass
            else:
                return (ts if ts < _MAX_EPOCH else None), serial, False
    h = _HUMAN_STAMP_RE.fullmatch(stamp.strip())
    if h is None:
        return None, _serial(stamp.rpartition(":")[2]), " " in stamp
    return _human_epoch(h), _serial(h[9]), True


def _serial(text: str) -> int | None:
    # ASCII digits only, and short: int() refuses more than 4300 digits
    return int(text) if len(text) <= 20 and text.isascii() and text.isdigit() else None


@dataclass(frozen=True, slots=True)
class _Oversized:
    """A physical line longer than MAX_LINE_CHARS: only its length is kept."""

    chars: int


def _bounded_lines(lines: Iterable[str | bytes]) -> Iterator[str | bytes | _Oversized]:
    """The input's lines, none longer than MAX_LINE_CHARS.  A file (anything with
    ``readline``) is read with a size limit, so an endless line is skipped a chunk at a
    time and never built; other iterables have their long items replaced."""
    raw = getattr(lines, "buffer", None) if isinstance(lines, io.TextIOWrapper) else lines
    read1 = getattr(raw, "read1", None)
    if read1 is not None:
        text = isinstance(lines, io.TextIOWrapper)
        yield from _chunked_lines(read1, lines.encoding if text else "utf-8",  # type: ignore[attr-defined]
                                  (lines.errors or "strict") if text else "replace")  # type: ignore[attr-defined]
        return
    readline = getattr(lines, "readline", None)
    if readline is None:
        for item in lines:
            yield _Oversized(len(item)) if len(item) > MAX_LINE_CHARS + 2 else item
        return
    while True:
        chunk: str | bytes = readline(MAX_LINE_CHARS + 1)
        if not chunk:
            return
        if len(chunk) <= MAX_LINE_CHARS or chunk[-1:] in ("\n", b"\n"):
            yield chunk
            continue
        n = len(chunk)
        del chunk
        while True:  # skip to the end of this physical line
            rest: str | bytes = readline(_READ_CHUNK)
            n += len(rest)
            if not rest or rest[-1:] in ("\n", b"\n"):
                break
        yield _Oversized(n)


def _chunked_lines(read1: Callable[[int], bytes], encoding: str, errors: str) -> Iterator[str | _Oversized]:
    """A binary stream's lines, decoded a chunk at a time (C speed, where readline costs a
    call per line).  ``read1`` returns what is there, so a pipe (``tail -f |``) is not held
    back.  Same bounds as the readline path: a line longer than MAX_LINE_CHARS is counted
    by its length (newline included) and never kept whole."""
    decoder = codecs.getincrementaldecoder(encoding)(errors)
    carry = ""
    skipped = 0  # > 0: inside an oversized line, characters so far
    while True:
        data = read1(_READ_CHUNK_BIG)
        chunk = decoder.decode(data, final=not data)
        if chunk:
            parts = chunk.split("\n")
            last = parts.pop()
            for part in parts:
                if skipped:
                    yield _Oversized(skipped + len(part) + 1)
                    skipped = 0
                    continue
                if carry:
                    part = carry + part
                    carry = ""
                if len(part) > MAX_LINE_CHARS:
                    yield _Oversized(len(part) + 1)
                else:
                    yield part
            if skipped:
                skipped += len(last)
            elif parts:
                carry = last
            else:
                carry += last
            if len(carry) > MAX_LINE_CHARS:  # never built whole
                skipped, carry = len(carry), ""
        if not data:
            break
    if skipped:
        yield _Oversized(skipped)
    elif carry:
        yield carry


def _human_epoch(h: re.Match[str]) -> float | None:
    """Local epoch for an ausearch date; %x is locale-dependent, so guess the order."""
    a, sep, b, c = h[1], h[2], int(h[3]), h[4]
    if len(a) == 4:
        year, month, day = int(a), b, int(c)
    elif sep == "." or int(a) > 12:
        day, month, year = int(a), b, int(c)  # de_DE, en_GB
    else:
        month, day, year = int(a), b, int(c)  # C / en_US
    if year < 100:
        year += 2000
    if not (1 <= month <= 12 and 1 <= day <= 31 and 1970 <= year <= 9999):
        return None
    hms = (int(h[5]), int(h[6]), int(h[7]))
    ck = (year, month, day, *hms)
    base = _mktime_cache.get(ck)
    if base is None:
        try:
            base = time.mktime((year, month, day, *hms, 0, 0, -1))
        except (OverflowError, ValueError):
            return None
        if len(_mktime_cache) > 256:
            _mktime_cache.clear()
        _mktime_cache[ck] = base
    frac = h[8]
    return base + float("0." + frac) if frac else base


def _syslog_epoch(ts: str) -> float | None:
    """Only ISO stamps carry a year; "Nov 25 17:47:24" stays None."""
    if not ts[:1].isdigit():
        return None
    try:
        return datetime.fromisoformat(ts).timestamp()
    except (ValueError, OverflowError, OSError):
        return None


def _decode_saddr_hex(hexs: str) -> dict[str, str]:
    out = {"saddr": hexs}
    try:
        b = bytes.fromhex(hexs)
    except ValueError:
        return out
    if len(b) < 2:
        return out
    fam = int.from_bytes(b[0:2], "little")  # sa_family is host-endian
    if fam == 2 and len(b) >= 8:
        out.update(family="inet", port=str(int.from_bytes(b[2:4], "big")),
                   addr=str(ipaddress.IPv4Address(b[4:8])))  # fmt: skip
    elif fam == 10 and len(b) >= 24:
        out.update(family="inet6", port=str(int.from_bytes(b[2:4], "big")),
                   addr=str(ipaddress.IPv6Address(b[8:24])))  # fmt: skip
        if len(b) >= 28:
            out["scope_id"] = str(int.from_bytes(b[24:28], "little"))
    elif fam == 1:
        path = b[2:]
        text = "@" + path[1:].rstrip(b"\x00").decode("utf-8", "replace") if path[:1] == b"\x00" \
            else path.split(b"\x00", 1)[0].decode("utf-8", "replace")  # fmt: skip
        out.update(family="unix", addr=text)
    elif fam == 16:
        out["family"] = "netlink"
        if len(b) >= 8:
            out["port"] = str(int.from_bytes(b[4:8], "little"))  # nl_pid
    else:
        out["family"] = f"unknown({fam})"
    return out


def _parse_sockaddr(body: str, human: bool) -> dict[str, str]:
    start = body.find("{")
    if start >= 0:  # ausearch: saddr={ saddr_fam=inet laddr=127.0.0.1 lport=5432 }
        end = body.find("}", start)
        inner = _split_kv(body[start + 1 : end if end >= 0 else len(body)])
        fam = inner.pop("saddr_fam", None) or inner.pop("fam", None) or "unknown"
        out = {"family": "unix" if fam == "local" else fam}
        addr = inner.pop("laddr", None) or inner.pop("path", None)
        port = inner.pop("lport", None)
        if addr is not None:
            out["addr"] = addr
        if port is not None:
            out["port"] = port
        out.update(inner)
        return out
    kv = _split_kv(body)
    hexs = kv.get("saddr", "").strip('"')
    if human or not hexs or _HEX_RE.fullmatch(hexs) is None:
        return kv
    return _decode_saddr_hex(hexs)


def _parse_syscall(body: str, human: bool) -> dict[str, str]:
    kv = _split_kv(body, raw_strings=not human)
    nr = kv.get("syscall")
    if nr is not None and nr.isascii() and nr.isdigit():
        name = kv.get("SYSCALL") or _SYSCALLS_BY_ARCH.get(kv.get("arch", "c000003e"), {}).get(nr)
        if name:
            kv["syscall_nr"] = nr
            kv["syscall"] = name
    code = kv.get("exit")
    if code is not None:
        kv["exit_raw"] = code
        m = _EXIT_NAME_RE.match(code)
        if m is not None:
            kv["exit"] = m[1]  # ausearch: EACCES(Permission denied)
        elif code[:1] == "-" and (errno_nr := _serial(code[1:])) is not None:
            kv["exit"] = errno.errorcode.get(errno_nr, code)
    return kv


def _parse_proctitle(body: str, human: bool) -> str:
    text = body.strip()
    if text.startswith("proctitle="):
        text = text[10:]
    if text[:1] == '"':
        return text.strip('"')
    if not human and _HEX_RE.fullmatch(text):
        return _hex_text(text)
    return text


# ---------------------------------------------------------------------------
# Internal state


class _Pending:
    """A record being assembled from one or more physical lines."""

    __slots__ = (
        "ambiguous", "body_start", "ended_ws", "fmt", "human", "last_len", "line_no", "node",
        "parts", "pid", "rtype", "stamp", "syslog_ts", "widths",
    )  # fmt: skip

    def __init__(
        self, text: str, body_start: int, rtype: str, fmt: SourceFormat, node: str | None,
        stamp: str | None, line_no: int, pid: str | None = None, syslog_ts: str | None = None,
    ) -> None:  # fmt: skip
        # kept small: most records are one line, the wrap bookkeeping is made on demand
        stripped = text.rstrip()
        self.parts = [stripped]
        self.ended_ws = len(stripped) != len(text)
        self.widths = [len(text)]  # physical line widths, for the hard-wrap tests
        self.last_len = -1  # content width of the last line (-1: not measured yet)
        self.ambiguous: list[int] | None = None  # parts whose leading space may be a cut word
        self.body_start = body_start
        self.rtype = rtype
        self.fmt: SourceFormat = fmt
        self.node = node
        self.stamp = stamp
        self.line_no = line_no
        self.pid = pid
        self.syslog_ts = syslog_ts
        self.human = fmt == "ausearch"


class _Group:
    """An event being collected; turned into a frozen :class:`Event` on flush."""

    __slots__ = (
        "avcs", "closed", "human", "key", "line_no", "node", "proctitle", "sockaddr",
        "stamp", "syscall", "ts",
    )  # fmt: skip

    def __init__(
        self, key: EventKey | None, node: str | None, ts: float | None, stamp: str | None,
        line_no: int, human: bool,
    ) -> None:  # fmt: skip
        self.key = key
        self.node = node
        self.ts = ts
        self.stamp = stamp
        self.line_no = line_no
        self.human = human
        self.avcs: list[AvcRecord] = []
        self.syscall: str | None = None
        self.sockaddr: str | None = None
        self.proctitle: str | None = None
        self.closed = False


# ---------------------------------------------------------------------------
# The parser


class AvcLogParser:
    """Streaming parser; ``stats`` accumulates over every :meth:`events` call."""

    def __init__(self, window: int = DEFAULT_WINDOW, max_age: float = DEFAULT_MAX_AGE) -> None:
        self.window = max(1, window)
        self.max_age = max_age
        self.stats = ParseStats()
        self.engine = "python"  # or "auparse" / "auparse+python" (auparse_source)
        # AVC text without its pid= and comm= -> the first record parsed from it
        self._shapes: dict[tuple[str, str], AvcRecord] = {}
        self._reset()

    def _reset(self) -> None:
        self._open: dict[object, _Group] = {}
        self._ready: list[Event] = []
        self._pend: _Pending | None = None
        # a raw one-line record kept as (text, header match, line number) until the next
        # line shows it is not continued: most of a raw audit.log takes this short path
        self._lean: tuple[str, re.Match[str], int] | None = None
        self._nos_tail: _Group | None = None  # last serial-less group (journald)
        self._nos_seq = 0
        # width of a hard-wrapped paste once seen cutting a word; 80 columns until then
        self._wrap_width = 80
        self._max_ts: float | None = None
        self._limit = float("-inf")  # groups older than this are flushed
        self._stamp_memo: tuple[str, float | None, int | None] = ("", None, None)

    @property
    def open_events(self) -> int:
        """Events currently held in the grouping window."""
        return len(self._open)

    # -- public ------------------------------------------------------------

    def events(self, lines: Iterable[str | bytes]) -> Iterator[Event]:
        """Parse ``lines`` lazily, yielding each event once it is complete."""
        self._reset()
        self.engine = "python"
        yield from self.feed(lines)
        yield from self.flush()

    def feed(self, lines: Iterable[str | bytes]) -> Iterator[Event]:
        """Parse more lines, keeping state from earlier calls (for a live log): yields the
        events completed by them; the rest stays open until more lines or :meth:`flush`."""
        ready = self._ready
        feed = self._feed
        for item in _bounded_lines(lines):
            try:
                if isinstance(item, _Oversized):
                    self._oversized(item.chars)
                    continue
                text = item.decode("utf-8", "replace") if isinstance(item, bytes) else item
                text = text.rstrip("\r\n")
                if "\n" in text or "\r" in text:
                    for sub in re.split(r"\r\n|\r|\n", text):
                        if len(sub) > MAX_LINE_CHARS:
                            self._oversized(len(sub))
                        else:
                            feed(sub)
                else:
                    feed(text)
            except Exception as exc:  # never raise on input
                self.stats.add_malformed(self.stats.lines, f"internal error: {exc!r}"[:120])
            if ready:
                yield from ready
                ready.clear()

    def flush(self) -> list[Event]:
        """End the current record and every open event (end of input, or a quiet live log:
        the kernel writes an event's records together); the next line starts afresh."""
        self._finish_pending()
        self._flush(force=True)
        out = list(self._ready)
        self._ready.clear()
        return out

    # -- line classification -----------------------------------------------

    def _oversized(self, chars: int) -> None:
        """A line too long to be a record: it ends the record before it, and is counted."""
        self._finish_pending()
        st = self.stats
        st.lines += 1
        st.add_malformed(
            st.lines, f"line of {chars:,} characters, longer than {MAX_LINE_CHARS:,}: skipped")

    def _feed(self, text: str) -> None:
        st = self.stats
        st.lines += 1
        line_no = st.lines
        head = text[:5]
        if head == "type=" or head == "node=":
            m = _HEAD_RE.match(text)
            if m is not None:  # the common case, inlined
                if self._lean is not None:
                    lean = self._lean
                    self._lean = None
                    self._lean_record(*lean)
                elif self._pend is not None:
                    self._finish_pending()
                stamp = m["stamp"]
                if " " in stamp or "/" in stamp:
                    self._pend = _Pending(
                        text, m.end(), m["type"], "ausearch", m["node"], stamp, line_no)
                else:
                    self._lean = (text, m, line_no)
                return
        stripped = text.strip()
        if not stripped or stripped == "----" or stripped.startswith("```"):
            # blank line / ausearch separator: ends the record and the event
            self._finish_pending()
            if stripped == "----":
                self._close_all()
            st.ignored += 1
            return
        if "audit" in text:
            # cheap substring tests pick the one regex that can match
            if "msg=audit(" in text:
                m = _HEAD_RE.search(text)
                if m is not None:
                    self._start_head(text, m, line_no)
                    return
            elif "audit(" in text:
                m = _KERNEL_RE.search(text)
                if m is not None:
                    self._start_kernel(text, m, line_no)
                    return
            if "audit[" in text or "audit: " in text:
                m = _JOURNAL_RE.search(text)
                if m is not None:
                    self._start_journal(text, m, line_no)
                    return
        if self._try_join(text, stripped):
            st.continuation_lines += 1
            return
        self._finish_pending()
        m = _HEADLESS_RE.search(text)
        if m is not None:  # a bare "avc:  denied { ... } for ..." someone trimmed
            self._pend = _Pending(text, m.start(), "AVC", "raw", None, None, line_no)
            return
        if _LOOSE_AVC_RE.search(text) is not None:
            st.add_malformed(line_no, "AVC-like text without a recognisable record header")
            return
        st.ignored += 1

    def _start_head(self, text: str, m: re.Match[str], line_no: int) -> None:
        self._finish_pending()
        stamp = m["stamp"]
        fmt: SourceFormat = "ausearch" if (" " in stamp or "/" in stamp) else "raw"
        self._pend = _Pending(text, m.end(), m["type"], fmt, m["node"], stamp, line_no)

    def _start_kernel(self, text: str, m: re.Match[str], line_no: int) -> None:
        self._finish_pending()
        ktype = m["type"]
        if ktype is None:
            rtype = "AVC" if text.startswith("avc:", m.end()) else "UNKNOWN"
        else:
            rtype = _KERNEL_TYPES.get(ktype) or f"UNKNOWN[{ktype}]"
        node = None
        if m.start() > 16:  # "<ts> <host> kernel: audit: ..." names the host
            p = _SYSLOG_PREFIX_RE.match(text, 0, m.start())
            if p is not None:
                node = p["host"]
        self._pend = _Pending(text, m.end(), rtype, "kernel", node, m["stamp"], line_no)

    def _start_journal(self, text: str, m: re.Match[str], line_no: int) -> None:
        self._finish_pending()
        self._pend = _Pending(
            text, m.end(), m["type"], "journald", m["host"], m["ts"], line_no,
            pid=m["pid"], syslog_ts=m["ts"],
        )  # fmt: skip

    # -- continuation lines ------------------------------------------------

    def _try_join(self, text: str, stripped: str) -> bool:
        if self._lean is not None:  # a line that may continue it: the general path
            ltext, lm, lno = self._lean
            self._lean = None
            self._pend = _Pending(ltext, lm.end(), lm["type"], "raw", lm["node"], lm["stamp"], lno)
        p = self._pend
        if p is None:
            return False
        frag = stripped.lstrip(">| \t")
        if not frag or sum(map(len, p.parts)) + len(frag) > MAX_RECORD_CHARS:
            return False
        if _SYSLOG_LINE_RE.match(frag) is not None:
            return False  # another program's syslog line, never a continuation
        last = p.parts[-1]
        body = "".join(p.parts)[p.body_start :] if len(p.parts) > 1 else last[p.body_start :]
        tail = last.rsplit(None, 1)[-1] if last.strip() else ""
        # whitespace at the break (trailing, or indented deeper than the record's first
        # line) says the break fell between two words
        spaced = p.ended_ws or _indent(text) > _indent(p.parts[0])
        if p.last_len < 0:
            p.last_len = len(p.parts[0].lstrip(">| \t"))
        in_braces = body.rfind("{") > body.rfind("}")
        words = frag.split()
        if frag[0] == "=" and tail and "=" not in tail:
            ok = True  # "permissive" + "=0": a key cut just before its '='
        elif (
            last.endswith("=")
            or tail.count('"') % 2 == 1
            or in_braces
            or (p.rtype == "AVC" and " tclass=" not in body)
        ):
            # visibly unfinished: take anything that looks like a fragment, not prose
            ok = "=" in frag or "{" in frag or "}" in frag or len(words) <= 2
        elif p.last_len < _WRAP_MIN_LEN:
            ok = False
        elif p.rtype == "PROCTITLE" and "=" not in frag:
            ok = True  # one free-text field: its words carry no key
        else:
            cut = "" if spaced or "=" in tail else tail
            # a bare first word only continues an ausearch value ("httpd" + "worker ...")
            ok = (
                ("=" in words[0] or p.human) and self._looks_like_body(words, body, cut)
            ) or self._cut_value(p, tail, words, body, spaced)
        if not ok:
            return False
        sep = " " if spaced else self._join_sep(p, body, tail, words[0], in_braces)
        if not sep:  # a word was cut: the previous line's width is the paste's wrap width
            self._wrap_width = p.widths[-1]
        elif sep == _AMBIGUOUS:
            sep = " "
            if p.ambiguous is None:
                p.ambiguous = []
            p.ambiguous.append(len(p.parts))  # decided in _finish_pending
        p.widths.append(len(text))
        p.parts.append(sep + frag)
        p.last_len = len(frag)
        p.ended_ws = text[-1:].isspace()
        return True

    def _cut_value(self, p: _Pending, tail: str, words: list[str], body: str, spaced: bool) -> bool:
        """A bare word continuing the last value ("tclass=tcp_sock" + "et ...") needs
        evidence of a hard wrap: key=value words after it (and it is no tag such as
        ``ORACLE-INFO``), the previous line exactly as wide as lines already seen cut
        mid-word, or a long upper-case hex value (saddr=, proctitle=) going on."""
        if spaced or "=" not in tail or "=" in words[0]:
            return False
        first = words[0]
        if len(words) > 1:
            return self._looks_like_body(words[1:], body) and (
                _TAG_RE.fullmatch(first) is None or _UPPER_HEX_RE.fullmatch(first) is not None
            )
        if p.widths[-1] == self._wrap_width:
            return True
        value = tail.partition("=")[2]
        return (
            len(value) >= 16
            and _UPPER_HEX_RE.fullmatch(value) is not None
            and _UPPER_HEX_RE.fullmatch(first) is not None
        )

    @staticmethod
    def _looks_like_body(words: list[str], body: str, cut: str = "") -> bool:
        """Mostly key=value words with keys new to the record; ``cut`` is a bare word
        ending the previous line that may be the first key's beginning ("f" + "suid=")."""
        keys = [w.partition("=")[0] for w in words if _KEY_TOKEN_RE.match(w)]
        if not keys or 2 * len(keys) < len(words):
            return False
        if cut and "=" in words[0]:
            keys[0] = cut + keys[0]
        # a record never repeats a key: a repeated one means a new, foreign line
        return not any(body.startswith(k + "=") or f" {k}=" in body for k in keys)

    def _join_sep(self, p: _Pending, body: str, tail: str, first: str, in_braces: bool) -> str:
        """The separator for a break without whitespace: "" where a hard wrap cut a word
        in two, " " where a space was lost (or _AMBIGUOUS, settled per record)."""
        if p.parts[-1].endswith("=") or tail.count('"') % 2 == 1 or first[:1] == "=":
            return ""  # the value continues on the next line
        glued = tail + first
        if glued in _GLUE_WORDS and not (tail in _GLUE_WORDS and first in _GLUE_WORDS):
            return ""  # "d" + "enied", "name_con" + "nect"
        if first[:1] in ("{", "}"):
            return " "
        tail_key = "=" in tail
        structural = tail in _GLUE_WORDS or (tail.endswith(":") and not tail_key)
        if in_braces and not tail_key and "=" not in first:
            return " "  # a list of permissions
        # ausearch prints comm/exe/exit... unquoted with spaces: a cut inside one is told
        # from a lost space only by the paste's wrap width
        multi = p.human and _value_key(body) in _MULTIWORD_KEYS and p.widths[-1] != self._wrap_width
        if "=" in first:  # "tcl" + "ass=tcp_socket", "{ s" + "addr_fam=inet6"
            return " " if tail_key or structural else (_AMBIGUOUS if multi else "")
        if structural:
            return " "
        if multi:
            return _AMBIGUOUS
        return "" if tail_key or p.human else " "  # "tclass=tcp_" + "socket"

    def _hard_wrapped(self, p: _Pending) -> bool:
        """All lines but the last have the same width (a terminal or fold(1) cut them),
        or the first has the width already seen cutting words."""
        widths = p.widths[:-1]
        if widths[0] == self._wrap_width:
            return True
        return len(widths) >= 2 and widths.count(widths[0]) == len(widths)

    # -- records -------------------------------------------------------------

    def _finish_pending(self) -> None:
        if self._lean is not None:
            lean = self._lean
            self._lean = None
            self._lean_record(*lean)
            return
        p = self._pend
        if p is None:
            return
        self._pend = None
        if p.ambiguous and self._hard_wrapped(p):
            for i in p.ambiguous:
                p.parts[i] = p.parts[i][1:]  # a cut word, not a lost space
        raw = p.parts[0] if len(p.parts) == 1 else "".join(p.parts)
        try:
            self._record(p, raw)
        except Exception as exc:  # a bug must not stop the stream
            self.stats.add_malformed(p.line_no, f"internal error: {exc!r}"[:120])

    def _record(self, p: _Pending, raw: str) -> None:
        st = self.stats
        body = raw[p.body_start :]
        rtype = p.rtype
        if rtype == "AVC":
            m = _AVC_BODY_RE.match(body)
            if m is None:
                if _AVC_NOTICE_RE.match(body):
                    self._count_other("AVC_NOTICE")
                    return
                st.add_malformed(p.line_no, "AVC without 'avc: denied|granted { perms }'")
                return
            rec = self._make_avc(p, raw, m, body[m.end() :])
            if rec is None:
                return
            st.records += 1
            st.avc_records += 1
            self._add_avc(rec, p.human)
            return
        self._count_other(rtype)
        if rtype == "USER_AVC":
            st.user_avc_records += 1
        elif rtype in ("SYSCALL", "SOCKADDR", "PROCTITLE", "EOE"):
            self._add_companion(p, rtype, body)

    def _count_other(self, rtype: str) -> None:
        st = self.stats
        st.records += 1
        st.non_avc_records[rtype] = st.non_avc_records.get(rtype, 0) + 1

    def _make_avc(self, p: _Pending, raw: str, m: re.Match[str], rest: str) -> AvcRecord | None:
        fields = _split_kv(rest, raw_strings=not p.human)
        pop = fields.pop
        scon = pop("scontext", "")
        tcon = pop("tcontext", "")
        tclass = pop("tclass", "")
        if not (scon and tcon and tclass):
            missing = [k for k, v in (("scontext", scon), ("tcontext", tcon), ("tclass", tclass))
                       if not v]  # fmt: skip
            self.stats.add_malformed(p.line_no, "AVC missing " + ", ".join(missing))
            return None
        # untranslated contexts are what the policy knows; keep the display form too
        if "srawcon" in fields:
            fields["scontext_translated"] = scon
            scon = fields["srawcon"]
        if "trawcon" in fields:
            fields["tcontext_translated"] = tcon
            tcon = fields["trawcon"]
        for key in _NUMERIC_FIELDS:
            value = fields.get(key)
            if value is not None and len(value) > MAX_NUMBER_DIGITS and value.isdigit():
                self.stats.add_malformed(
                    p.line_no, f"AVC field {key}= is a number of {len(value):,} digits")
                return None
        flag = pop("permissive", None)
        stamp = p.stamp
        if p.fmt == "journald":
            ts, serial = _syslog_epoch(stamp or ""), None
        elif stamp is not None:
            ts, serial, _ = _parse_stamp(stamp)
        else:
            ts, serial = None, None
        return AvcRecord(
            "denied" if m[1] == "denied" else "granted",
            tuple(m[2].split()),
            scon,
            tcon,
            tclass,
            None if flag is None else flag == "1",
            fields,
            serial,
            ts,
            p.node,
            p.fmt,
            p.line_no,
            raw,
            stamp,
        )

    # -- the short path: one-line raw records ----------------------------------------

    def _lean_record(self, text: str, m: re.Match[str], line_no: int) -> None:
        """What :meth:`_record` does for a one-line raw record, without a _Pending, and
        reusing the fields of an earlier AVC that differs only in pid= and comm=."""
        try:
            raw = text.rstrip()
            rtype = m["type"]
            body = raw[m.end() :]
            st = self.stats
            if rtype == "AVC":
                rec = self._avc_repeat(raw, body, m["stamp"], m["node"], line_no) \
                    or self._avc_line(raw, m, body, line_no)  # fmt: skip
                if rec is not None:
                    self._add_avc(rec, False)
                return
            st.records += 1
            other = st.non_avc_records
            other[rtype] = other.get(rtype, 0) + 1
            if rtype == "SYSCALL" or rtype == "SOCKADDR" or rtype == "PROCTITLE" or rtype == "EOE":
                stamp = m["stamp"]
                ts, serial = self._stamp(stamp)
                if serial is None:
                    return
                g = self._group_for(m["node"], serial, ts, stamp, line_no, False)
                if rtype == "SYSCALL":
                    g.syscall = g.syscall or body
                elif rtype == "SOCKADDR":
                    g.sockaddr = g.sockaddr or body
                elif rtype == "PROCTITLE":
                    g.proctitle = g.proctitle or body
                else:
                    g.closed = True
                self._settle(g.ts)
            elif rtype == "USER_AVC":
                st.user_avc_records += 1
        except Exception as exc:  # a bug must not stop the stream
            self.stats.add_malformed(line_no, f"internal error: {exc!r}"[:120])

    def _avc_line(self, raw: str, m: re.Match[str], body: str, line_no: int) -> AvcRecord | None:
        """A one-line raw AVC record, counted; None when it is a notice or malformed."""
        st = self.stats
        bm = _AVC_BODY_RE.match(body)
        if bm is None:
            if _AVC_NOTICE_RE.match(body):
                self._count_other("AVC_NOTICE")
                return None
            st.add_malformed(line_no, "AVC without 'avc: denied|granted { perms }'")
            return None
        rec = self._lean_avc(raw, m, bm, body, line_no)
        if rec is not None:
            st.records += 1
            st.avc_records += 1
        return rec

    def _stamp(self, stamp: str) -> tuple[float | None, int | None]:
        memo = self._stamp_memo  # an event's records share one stamp
        if memo[0] != stamp:
            ts, serial, _ = _parse_stamp(stamp)
            memo = self._stamp_memo = (stamp, ts, serial)
        return memo[1], memo[2]

    def _lean_avc(
        self, raw: str, m: re.Match[str], bm: re.Match[str], body: str, line_no: int,
    ) -> AvcRecord | None:  # fmt: skip
        rest = body[bm.end() :]
        stamp = m["stamp"]
        # "pid=N comm=X " first, as the kernel writes it: the rest decides everything else
        cut = rest.find(" ", 4) if rest[:4] == "pid=" else -1
        end = rest.find(" ", cut + 6) if cut > 0 and rest[cut : cut + 6] == " comm=" else -1
        # two words exactly: no other whitespace (tabs, GS) inside (isprintable: C speed)
        if end < 0 or not rest[:end].isprintable():
            p = _Pending(raw, m.end(), "AVC", "raw", m["node"], stamp, line_no)
            return self._make_avc(p, raw, bm, rest)
        shape = (body[: bm.end()], rest[end:])
        first = self._shapes.get(shape)
        if first is None:
            p = _Pending(raw, m.end(), "AVC", "raw", m["node"], stamp, line_no)
            rec = self._make_avc(p, raw, bm, rest)
            # reusable only when every word is key=value (no word continues another)
            if rec is not None and " =" not in rest and all("=" in w for w in rest.split()):
                if len(self._shapes) >= MAX_SHAPES:
                    self._shapes.clear()
                self._shapes[shape] = rec
            return rec
        return self._reuse(first, rest, cut, end, raw, stamp, m["node"], line_no)

    def _reuse(
        self, first: AvcRecord, rest: str, cut: int, end: int, raw: str, stamp: str,
        node: str | None, line_no: int,
    ) -> AvcRecord:  # fmt: skip
        """``first``'s record with this line's pid, comm, stamp and place."""
        fields = first.fields.copy()
        fields["pid"], fields["comm"] = _pid_comm(rest, cut, end)
        ts, serial = self._stamp(stamp)
        return AvcRecord(
            first.verdict, first.perms, first.scontext, first.tcontext, first.tclass,
            first.permissive, fields, serial, ts, node, "raw", line_no, raw, stamp,
            first.key_cache or avc_key(first),  # the same key: only pid/comm differ
        )  # fmt: skip

    def _avc_repeat(
        self, raw: str, body: str, stamp: str, node: str | None, line_no: int,
    ) -> AvcRecord | None:  # fmt: skip
        """A raw AVC whose text, pid= and comm= aside, was seen before: its record without
        a regex (None: not seen; the full path decides)."""
        known = self._known_shape(body)
        if known is None:
            return None
        st = self.stats
        st.records += 1
        st.avc_records += 1
        first, rest, cut, end = known
        return self._reuse(first, rest, cut, end, raw, stamp, node, line_no)

    def _known_shape(self, body: str) -> tuple[AvcRecord, str, int, int] | None:
        """(the first record of this AVC text, pid= and comm= aside; the text from pid=;
        where pid's and comm's values end in it), or None when not seen before.  The first
        "pid=" is where the body's "avc: denied { ... } for" ends: a permission has no '='."""
        at = body.find("pid=")
        if at < 0:
            return None
        rest = body[at:]
        cut = rest.find(" ", 4)
        end = rest.find(" ", cut + 6) if cut > 0 and rest[cut : cut + 6] == " comm=" else -1
        if end < 0:
            return None
        first = self._shapes.get((body[:at], rest[end:]))
        if first is None or not rest[:end].isprintable():
            return None
        return first, rest, cut, end

    # -- grouping ----------------------------------------------------------

    def _add_avc(self, rec: AvcRecord, human: bool) -> None:
        serial = rec.serial
        if serial is None:
            self._close_nos_tail()
            self._nos_seq += 1
            g = _Group(None, rec.node, rec.timestamp, rec.stamp, rec.line_no, human)
            g.avcs.append(rec)
            self._insert(("nos", self._nos_seq), g)
            self._nos_tail = g
            self._settle(None)
            return
        ts = rec.timestamp
        g = self._group_for(rec.node, serial, ts, rec.stamp, rec.line_no, human)
        if len(g.avcs) >= MAX_AVCS_PER_EVENT:  # pathological input: cap per-event memory
            self._emit(self._open.pop((rec.node, serial)))
            g = self._group_for(rec.node, serial, ts, rec.stamp, rec.line_no, human)
        g.avcs.append(rec)
        self._settle(ts)

    def _add_companion(self, p: _Pending, rtype: str, body: str) -> None:
        if p.fmt == "journald" or p.stamp is None:
            g = self._nos_tail
            # journald shows no serial; the kernel writes SYSCALL/SOCKADDR/PROCTITLE
            # right after the AVC, with the same time (and the same pid for SYSCALL)
            if g is None or g.closed or g.node != p.node or g.stamp != p.stamp:
                self._close_nos_tail()
                return
            if rtype == "SYSCALL" and p.pid and all(a.fields.get("pid") != p.pid for a in g.avcs):
                self._close_nos_tail()
                return
        else:
            ts, serial, _ = _parse_stamp(p.stamp)
            if serial is None:
                return
            g = self._group_for(p.node, serial, ts, p.stamp, p.line_no, p.human)
        if rtype == "EOE":
            g.closed = True  # the kernel's end-of-event marker
        elif rtype == "SYSCALL":
            g.syscall = g.syscall or body
        elif rtype == "SOCKADDR":
            g.sockaddr = g.sockaddr or body
        else:
            g.proctitle = g.proctitle or body
        if g.key is not None:
            self._settle(g.ts)

    def _group_for(
        self, node: str | None, serial: int, ts: float | None, stamp: str | None, line_no: int,
        human: bool,
    ) -> _Group:  # fmt: skip
        if self._nos_tail is not None:
            self._close_nos_tail()
        gkey = (node, serial)
        g = self._open.get(gkey)
        if g is not None:
            if ts is None or g.ts is None or ts == g.ts:
                return g
            self._emit(self._open.pop(gkey))  # the serial was reused (reboot)
        g = _Group((node, ts, serial), node, ts, stamp, line_no, human)
        self._insert(gkey, g)
        return g

    def _insert(self, gkey: object, g: _Group) -> None:
        opened = self._open
        if len(opened) >= self.window:  # bounded memory: flush the oldest
            while len(opened) >= self.window:
                self._emit(opened.pop(next(iter(opened))))
        elif len(opened) >= self.stats.peak_open_events:
            self.stats.peak_open_events = len(opened) + 1
        opened[gkey] = g

    def _close_nos_tail(self) -> None:
        if self._nos_tail is not None:
            self._nos_tail.closed = True
            self._nos_tail = None

    def _close_all(self) -> None:
        self._close_nos_tail()
        self._flush(force=True)

    def _settle(self, ts: float | None) -> None:
        """After a record was added: note a newer time, then flush what is done."""
        if ts is not None and (self._max_ts is None or ts > self._max_ts):
            self._max_ts = ts
            self._limit = ts - self.max_age
        opened = self._open
        if not opened:
            return
        front = opened[next(iter(opened))]
        if front.closed or (front.ts is not None and front.ts < self._limit):
            self._drain()

    def _drain(self) -> None:
        """Flush events from the front while they are closed, or older than ``max_age``
        behind the newest time seen (so tail -f is not held back by the window). The
        newest event is never flushed by age: its companions may still come."""
        opened = self._open
        limit = self._limit
        while opened:
            first = next(iter(opened))
            g = opened[first]
            if not (g.closed or (g.ts is not None and g.ts < limit and len(opened) > 1)):
                return
            self._emit(opened.pop(first))

    def _flush(self, force: bool) -> None:
        if force:
            self._close_nos_tail()
            opened = self._open
            while opened:
                self._emit(opened.pop(next(iter(opened))))
        else:
            self._drain()

    def _emit(self, g: _Group) -> None:
        if g is self._nos_tail:
            self._nos_tail = None
        if not g.avcs:
            return  # SYSCALL/PROCTITLE of an unrelated audit rule, or an orphan
        ev = Event._lazy(g.key, g.avcs, (g.syscall, g.sockaddr, g.proctitle, g.human), g.line_no)
        self.stats.events += 1
        self._ready.append(ev)


def parse_events(lines: Iterable[str | bytes], *, window: int = DEFAULT_WINDOW) -> Iterator[Event]:
    """Stream events from log lines of any supported format (see module doc)."""
    return AvcLogParser(window=window).events(lines)


# ---------------------------------------------------------------------------
# Folding repeated denials

# Fields that make two denials different for the fix. Ephemeral ports (lport,
# fport, and the peer's src port on packet checks), pid and comm are left out.
_KEY_FIELDS_BY_PERM: dict[str, tuple[str, ...]] = {
    "name_bind": ("src",),
    "node_bind": ("saddr",),
    "name_connect": ("dest",),
    "net_bind_service": ("capability",),
}
_DEFAULT_KEY_FIELDS = ("netif", "saddr", "daddr", "capability")
_PACKET_KEY_FIELDS = ("netif", "saddr", "daddr")



def avc_key(rec: AvcRecord) -> AvcKey:
    """Identity of "the same denial repeated": verdict, contexts, class, perms and the
    address/port/netif fields that change the fix (not pid, comm or ephemeral ports)."""
    cached = rec.key_cache
    if cached is not None:
        return cached
    names: tuple[str, ...] = ()
    if rec.tclass in PACKET_CLASSES:
        names = _PACKET_KEY_FIELDS
    else:
        for perm in rec.perms:
            names += _KEY_FIELDS_BY_PERM.get(perm, ())
        if not names:
            names = _DEFAULT_KEY_FIELDS
    fields = rec.fields
    extra = tuple((n, fields[n]) for n in names if n in fields)
    key = (rec.verdict, rec.scontext, rec.tcontext, rec.tclass, tuple(sorted(rec.perms)), extra)
    rec.key_cache = key
    return key


def count_repeats(records: Iterable[AvcRecord]) -> list[tuple[AvcRecord, int]]:
    """(first record, how many times it occurred) per :func:`avc_key`, first-seen order."""
    seen: dict[AvcKey, tuple[AvcRecord, int]] = {}
    for rec in records:
        k = avc_key(rec)
        prev = seen.get(k)
        seen[k] = (rec, 1) if prev is None else (prev[0], prev[1] + 1)
    return list(seen.values())


def fold_repeats(events: Iterable[Event]) -> Iterator[tuple[Event, int]]:
    """(first event, count) for events whose AVCs have the same keys; yields at the end,
    in first-seen order (memory grows with the number of *distinct* denials only)."""
    seen: dict[tuple[AvcKey, ...], tuple[Event, int]] = {}
    for ev in events:
        k = tuple(sorted(set(map(avc_key, ev.avcs))))
        prev = seen.get(k)
        seen[k] = (ev, 1) if prev is None else (prev[0], prev[1] + 1)
    yield from seen.values()
