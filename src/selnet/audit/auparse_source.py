"""Raw ``audit.log`` through libauparse (Debian ``python3-audit``), the rest in Python.

libauparse splits and groups records into events in C; Python then looks only at the
records that matter: every AVC (parsed by the same code as :class:`AvcLogParser`, so
the records are the same), the SYSCALL/SOCKADDR/PROCTITLE text of AVC events (parsed
later, and only when read: :class:`Event`), and the type of every other record (counted).

libauparse understands raw records only, so it is used for a stream only while every
line is one: each chunk read (1 MiB) is checked first -- every line
``[node=N ]type=T msg=audit(SEC.MSEC:SERIAL): ...``, ASCII, no CR, no NUL, no blank
line.  ``ausearch -i`` text, journald, dmesg, pasted or wrapped text, anything else goes
to the Python parser from the first chunk that is not raw (events already open at that
point are finished first, so one event cut by the switch may lose its SYSCALL).

Before libauparse, a scan lane reads the chunks a kernel writes in the usual way: no
node= prefix, no EOE, each event's records one after the other (its serial not seen in
this chunk or the one before), with one stamp, PROCTITLE last.  One regex then lists every
record's type and stamp in C, and each event with an AVC is built in Python from its own
lines, by the same code as libauparse's events (so the same events); the lines of other
events are only counted.  libauparse's per-record calls were most of the time of a raw
log.  The first chunk that is not like that goes to libauparse, from its first line.

Same results as the Python parser: events come out in the order of their first record
(auparse completes them in its own order; a small reordering buffer restores the line
order), with the same key, line numbers, records and counters.  Differences, all outside
what a kernel writes: libauparse ends an event at its PROCTITLE record (the kernel writes
it last), and keeps an event open for 2 seconds of log time where the Python parser waits
5 s or 64 events, so records of one serial after its PROCTITLE, or written further apart,
make a second event; ``ParseStats.peak_open_events`` counts the reordering buffer.
"""

from __future__ import annotations

import heapq
import io
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from itertools import groupby
from operator import itemgetter
from typing import Any

from selnet.audit.avclog import (
    _HEAD_RE,
    MAX_AVCS_PER_EVENT,
    AvcLogParser,
    AvcRecord,
    Event,
    EventKey,
    _parse_stamp,
    _pid_comm,
)

try:  # Debian: python3-audit
    import auparse as _auparse
except ImportError:  # pragma: no cover - bootstrap installs it
    _auparse = None

__all__ = ["AUPARSE_AVAILABLE", "events"]

AUPARSE_AVAILABLE = _auparse is not None
CHUNK = 1 << 20
# events held for line order at most: a line libauparse never reports (it swallows some
# EOE records, handled; any other would be a bug) must not grow memory with the log
MAX_REORDER = 4096
# a line start that is not a raw record header (the check runs in C over a whole chunk)
_NOT_RAW = re.compile(
    rb"\n(?!(?:node=[!-~]+ )?type=[A-Z][A-Z0-9_]*(?:\[[0-9]{1,6}\])? "
    rb"msg=audit\([0-9]{1,11}\.[0-9]{1,9}:[0-9]{1,19}\): )"
)
# every record's type, counted per chunk in C (the AVCs are counted as they are parsed)
_TYPES = re.compile(rb"\n(?:node=[!-~]+ )?type=([A-Z][A-Z0-9_]*(?:\[[0-9]{1,6}\])?) ")
_EOE = re.compile(rb"\n(?:node=[!-~]+ )?type=EOE ")
_SYSCALL, _SOCKADDR, _PROCTITLE, _AVC = 1300, 1306, 1327, 1400
# the scan lane: each line's type, stamp and serial (a checked chunk: one match a line)
# (searched in b"\n" + chunk: a literal first character is found fast, "^" in re.M is not)
# (each line's type and stamp: the chunk check proved every line starts with them)
_HEADER = re.compile(rb"\ntype=([^ ]*) msg=audit\(([^)]*)\)")
_COMPANION = {b"SYSCALL": 0, b"SOCKADDR": 1, b"PROCTITLE": 2}


def _raw_chunk(data: bytes) -> bool:
    """Every line of ``data`` (whole lines) is a raw record libauparse reads as we do."""
    return (
        data.isascii()
        and b"\r" not in data
        and b"\x00" not in data
        and _NOT_RAW.match(b"\n" + data[:200]) is None
        and _NOT_RAW.search(data, 0, len(data) - 1) is None
    )


def _reader(lines: object) -> Callable[[int], bytes] | None:
    """``read1`` of a binary stream under ``lines`` (a text file's buffer), if any."""
    raw = lines.buffer if isinstance(lines, io.TextIOWrapper) else lines
    read1 = getattr(raw, "read1", None)
    return read1 if callable(read1) else None


class _Replay:
    """A binary stream whose first bytes were already read: ``read1`` gives them first."""

    def __init__(self, head: bytes, read1: Callable[[int], bytes]) -> None:
        self._head = head
        self._read1 = read1

    def read1(self, size: int = -1) -> bytes:
        if self._head:
            out, self._head = self._head, b""
            return out
        return self._read1(size)


# Offered a repeat the scan lane read: an event of one AVC whose text, pid and comm
# aside, is that of an earlier record (given), with this event's pid and comm.  True: the
# caller counted it, so no record or event is made for it (the parser's counters still
# count it); False: it comes as an Event.
RepeatHook = Callable[[AvcRecord, str, str], bool]


def events(parser: AvcLogParser, lines: Iterable[str | bytes], *,
           use_auparse: bool = True, on_repeat: RepeatHook | None = None) -> Iterator[Event]:
    """``parser.events(lines)``, through the scan lane or libauparse while the input is raw
    records (``on_repeat``: see :data:`RepeatHook`).

    Only a binary stream or text file (``read1`` underneath) is eligible: lists and
    generators (tests, pasted text) go to the Python parser."""
    read1 = _reader(lines) if use_auparse and AUPARSE_AVAILABLE else None
    if read1 is None:
        yield from parser.events(lines)
        return
    yield from _Source(parser, read1, on_repeat).run()


class _Source:
    def __init__(self, parser: AvcLogParser, read1: Callable[[int], bytes],
                 on_repeat: RepeatHook | None = None) -> None:
        self.parser = parser
        self.on_repeat = on_repeat
        self.read1 = read1
        self.stats = parser.stats
        self.base = 0  # lines before this source
        self.wm = 1  # lowest auparse line number not yet delivered
        self.done: set[int] = set()
        self.heap: list[tuple[int, int, Event]] = []
        self.out: list[Event] = []
        self.seq = 0
        self.scan = True  # the scan lane, until a chunk is not what it reads
        # the serials of the scan lane's previous chunk: one seen again within two chunks
        # (far more than the Python parser's window) could belong to an open event
        self.recent: set[int] = set()
        # what _scan read, for _scan_out: (headers, lines, events as line spans, the
        # first line's number)
        self._plan: tuple[list[tuple[bytes, bytes]], list[bytes],
                          list[tuple[int, int, int]], int] | None = None
        self.lanes: list[str] = []  # the lanes that read lines, in order

    def _lane(self, name: str) -> None:
        if not self.lanes or self.lanes[-1] != name:
            self.lanes.append(name)
        self.parser.engine = "+".join(self.lanes)

    def run(self) -> Iterator[Event]:
        parser = self.parser
        parser._reset()
        parser.engine = "auparse"
        self.base = self.stats.lines
        assert _auparse is not None
        au = _auparse.AuParser(_auparse.AUSOURCE_FEED)
        callback = self._callback  # auparse wants a plain function, not a bound method
        au.add_callback(lambda au, cbtype, data: callback(au), None)
        carry = b""
        read1 = self.read1
        while True:
            data = read1(CHUNK)
            if not data:
                break
            data = carry + data
            cut = data.rfind(b"\n") + 1
            if cut == 0 and len(data) < 2 * CHUNK:
                carry = data  # no whole line yet
                continue
            whole, carry = data[:cut], data[cut:]
            if not _raw_chunk(whole):
                yield from self._switch(au, whole + carry)
                return
            if self.scan:
                done = self._scan(whole, final=False)
                if done >= 0:  # the last event may go on in the next chunk: held back
                    whole, carry = b"", whole[done:] + carry
                    yield from self._scan_out()
            if whole:
                self._auparse(au, whole)
            if self.out:
                yield from self.out
                self.out.clear()
        if carry:  # a last line without a newline, or the scan lane's last event
            last = carry if carry.endswith(b"\n") else carry + b"\n"
            if not _raw_chunk(last):
                yield from self._switch(au, carry)
                return
            if self.scan and self._scan(last, final=True) >= 0:
                yield from self._scan_out()
            else:
                self._auparse(au, last)
        au.flush_feed()
        self._release(final=True)
        yield from self.out
        self.out.clear()

    def _auparse(self, au: Any, whole: bytes) -> None:
        if self.scan:  # libauparse from here on, numbering its lines from 1
            self.scan = False
            self.base = self.stats.lines
        self._lane("auparse")
        self._count(whole)
        au.feed(whole)

    def _switch(self, au: Any, head: bytes) -> Iterator[Event]:
        """The input is not (only) raw records from here on: the Python parser goes on."""
        au.flush_feed()
        self._release(final=True)
        yield from self.out
        self.out.clear()
        self._lane("python")
        yield from self.parser.feed(_Replay(head, self.read1))  # type: ignore[arg-type]
        yield from self.parser.flush()

    def _count(self, whole: bytes) -> None:
        """Lines and non-AVC records of a checked chunk, by type, as the parser counts them."""
        st = self.stats
        first = st.lines - self.base + 1  # auparse's number for the chunk's first line
        if b"type=EOE " in whole:
            # libauparse consumes most EOE records without reporting them: they are
            # delivered here, or the reordering buffer would wait for them forever
            eoe = []
            nl, last = 0, 0
            for m in _EOE.finditer(b"\n" + whole):
                nl += whole.count(b"\n", last, max(last, m.start() - 1))
                last = max(last, m.start() - 1)
                eoe.append(first + nl + (1 if m.start() else 0))
            self._deliver(eoe)
        self._count_types(Counter(_TYPES.findall(b"\n" + whole)), whole.count(b"\n"))

    def _count_types(self, names: Counter[bytes], lines: int) -> None:
        st = self.stats
        st.lines += lines
        avc = names.pop(b"AVC", 0)
        other = st.non_avc_records
        for name, n in names.items():
            key = name.decode()
            other[key] = other.get(key, 0) + n
        st.records += lines - avc
        st.user_avc_records += names.get(b"USER_AVC", 0)

    # -- the scan lane ----------------------------------------------------------------

    def _scan(self, whole: bytes, final: bool) -> int:
        """Read ``whole`` (checked raw lines) as libauparse would, when it is what the scan
        lane reads: the bytes read (the last event held back unless ``final``), or -1
        with nothing read (libauparse then reads it)."""
        heads = _HEADER.findall(b"\n" + whole)
        lines = whole.split(b"\n")
        n = len(heads)
        if n != len(lines) - 1:  # a node= prefix: not the usual shape
            return -1
        # Each event's records one after the other: every stamp one run of lines, every
        # serial one stamp, none seen in the chunk before (C-level: groupby, dict, set).
        types = list(map(itemgetter(0), heads))
        if b"EOE" in types:
            return -1
        stamps = list(map(itemgetter(1), heads))
        lengths = [len(list(g)) for _, g in groupby(stamps)]
        distinct = list(dict.fromkeys(stamps))
        if len(distinct) != len(lengths):
            return -1
        serials = {int(st[st.index(b":") + 1 :]) for st in distinct}
        if len(serials) != len(distinct) or not self.recent.isdisjoint(serials):
            return -1
        # (first line, end line, AVCs) of each event
        runs: list[tuple[int, int, int]] = []
        i = 0
        for length in lengths:
            j = i + length
            if length == 1:
                runs.append((i, j, types[i] == b"AVC"))
            else:
                ts = types[i:j]
                if b"PROCTITLE" in ts[:-1]:
                    return -1  # libauparse ends an event at its PROCTITLE
                runs.append((i, j, ts.count(b"AVC")))
            i = j
        if not final:
            if len(runs) < 2:
                return -1  # an event as long as the chunk: libauparse
            runs.pop()
        if not runs:  # no line at all (the chunk check refuses blank lines): libauparse
            return -1
        end = runs[-1][1]
        used = len(b"\n".join(lines[:end])) + 1 if end < n else len(whole)
        # the held-back event is read again with the next chunk
        if end < n:
            serials.discard(int(stamps[end][stamps[end].index(b":") + 1 :]))
        self.recent = serials
        self._lane("scan")
        first = self.stats.lines + 1  # the line number of the chunk's first line
        self._count_types(Counter(types[:end]), end)
        self._plan = (heads, lines, runs, first)
        return used

    def _scan_out(self) -> Iterator[Event]:
        """The events of the chunk :meth:`_scan` read, one at a time: the caller has
        seen every earlier event when it is offered a repeat."""
        assert self._plan is not None
        heads, lines, runs, first = self._plan
        self._plan = None
        st = self.stats
        parser, on_repeat = self.parser, self.on_repeat
        out = self.out
        for i, j, avcs in runs:
            if not avcs:
                continue  # counted; the Python parser yields no event without an AVC
            if avcs == 1 and on_repeat is not None and heads[i][0] == b"AVC":
                # a repeat of one AVC, the first record: counted by the caller, not made
                text = lines[i].decode("ascii").rstrip()
                h = text.find("): ", 19)
                known = parser._known_shape(text[h + 3 :]) if text[:19] == \
                    "type=AVC msg=audit(" else None
                if known is not None and on_repeat(known[0], *_pid_comm(*known[1:])):
                    st.records += 1
                    st.avc_records += 1
                    st.events += 1
                    continue
            self._scan_event(heads, lines, i, j, first)
            if out:
                yield from out
                out.clear()

    def _scan_event(self, heads: list[tuple[bytes, bytes]], lines: list[bytes],
                    i: int, j: int, first: int) -> None:
        """One event's lines: its AVCs and companions, as :meth:`_event` reads them."""
        avcs: list[AvcRecord] = []
        comp: list[str | None] = [None, None, None]
        for k in range(i, j):
            t = heads[k][0]
            if t == b"AVC":
                rec = self._avc(lines[k].decode("ascii").rstrip(), first + k)
                if rec is not None:
                    avcs.append(rec)
            else:
                c = _COMPANION.get(t)
                if c is not None and comp[c] is None:
                    text = lines[k].decode("ascii").rstrip()
                    comp[c] = text[text.index("): ") + 3 :]
        if not avcs:
            return
        a0 = avcs[0]
        if a0.line_no == first + i:  # the AVC first, as the kernel writes
            key: EventKey = (a0.node, a0.timestamp, a0.serial or 0)
        else:
            ts, serial, _ = _parse_stamp(heads[i][1].decode("ascii"))
            key = (None, ts, serial or 0)
        st = self.stats
        for k in range(0, len(avcs), MAX_AVCS_PER_EVENT):  # same cap as the parser's
            st.events += 1
            self.out.append(Event._lazy(key, avcs[k : k + MAX_AVCS_PER_EVENT],
                                        (comp[0], comp[1], comp[2], False), first + i))

    def _avc(self, text: str, line_no: int) -> AvcRecord | None:
        """One AVC line's record (both lanes): a repeat of a known text without a regex,
        else the parser's full path."""
        parser = self.parser
        if text[:19] == "type=AVC msg=audit(":  # a repeat: no regex at all
            h = text.find("): ", 19)
            rec = parser._avc_repeat(text, text[h + 3 :], text[19:h], None, line_no)
            if rec is not None:
                return rec
        m = _HEAD_RE.match(text)
        if m is None:  # the chunk check makes this unreachable
            self.stats.add_malformed(line_no, "record header")
            return None
        return parser._avc_line(text, m, text[m.end() :], line_no)

    # -- libauparse's events ---------------------------------------------------------

    def _callback(self, au: Any) -> None:
        try:
            self._event(au)
        except Exception as exc:  # never raise through C; never stop the stream
            self.stats.add_malformed(self.stats.lines, f"internal error: {exc!r}"[:120])

    def _event(self, au: Any) -> None:
        n = au.get_num_records()
        au.first_record()
        first_line = au.get_line_number()
        t = au.get_type()
        if n == 1 and t != _AVC:  # most records of a busy host's log
            if first_line == self.wm and not self.done:
                self.wm += 1
            else:
                self._deliver([first_line])
            return
        base = self.base
        avcs: list[AvcRecord] = []
        comp: list[str | None] = [None, None, None]
        first_avc = t == _AVC
        for i in range(n):
            if i:
                au.next_record()
                t = au.get_type()
            if t == _AVC:
                rec = self._avc(au.get_record_text().rstrip(), base + au.get_line_number())
                if rec is not None:
                    avcs.append(rec)
            elif t in (_SYSCALL, _SOCKADDR, _PROCTITLE):
                k = 0 if t == _SYSCALL else 1 if t == _SOCKADDR else 2
                if comp[k] is None:
                    text = au.get_record_text().rstrip()
                    comp[k] = text[text.index("): ") + 3 :]  # the header was checked
        last_line = au.get_line_number()
        if last_line - first_line == n - 1 and first_line == self.wm:
            self.wm = last_line + 1  # one event's records, one after the other: the usual
            if self.done:
                self._deliver([])
        else:
            au.first_record()
            lines = [first_line]
            for _ in range(n - 1):
                au.next_record()
                lines.append(au.get_line_number())
            self._deliver(lines)
        if not avcs:
            return
        a0 = avcs[0]
        if first_avc and a0.line_no == base + first_line:  # the AVC first, as the kernel writes
            key: EventKey = (a0.node, a0.timestamp, a0.serial or 0)
        else:
            au.first_record()
            text = au.get_record_text().rstrip()
            m = _HEAD_RE.match(text)
            ts, serial, _ = _parse_stamp(m["stamp"] if m is not None else "")
            key = (m["node"] if m is not None else None, ts, serial or 0)
        st = self.stats
        for k in range(0, len(avcs), MAX_AVCS_PER_EVENT):  # same cap as the parser's
            ev = Event._lazy(key, avcs[k : k + MAX_AVCS_PER_EVENT],
                             (comp[0], comp[1], comp[2], False), base + first_line)  # fmt: skip
            st.events += 1
            if not self.heap and first_line < self.wm:
                self.out.append(ev)  # in order: no need to wait
                continue
            self.seq += 1
            heapq.heappush(self.heap, (first_line, self.seq, ev))
        self._release(final=False)

    def _deliver(self, lines: list[int]) -> None:
        wm = self.wm
        done = self.done
        for ln in lines:
            if ln == wm:
                wm += 1
            elif ln > wm:  # an EOE may come twice (above and in an event)
                done.add(ln)
        while wm in done:
            done.remove(wm)
            wm += 1
        self.wm = wm

    def _release(self, final: bool) -> None:
        """Events whose first line is below every line not yet delivered: in line order,
        as the Python parser yields them."""
        heap = self.heap
        if len(heap) > self.stats.peak_open_events:
            self.stats.peak_open_events = len(heap)
        while heap and (final or heap[0][0] < self.wm or len(heap) > MAX_REORDER):
            self.out.append(heapq.heappop(heap)[2])
