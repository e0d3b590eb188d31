"""``selnet audit --follow``: explain network denials as they are logged.

* **Reading** (:class:`Tail`): a file is polled every ``poll`` seconds from its end
  (``from_start`` reads what is there first).  Rotation is noticed at each idle poll:
  a new inode at the path (logrotate, auditd's own rotation: rename + new file) is
  opened from its start once the old file is read to its end; a file shorter than the
  offset read (``copytruncate``) is read again from its start.  The log is only read.
  ``-`` reads stdin (``journalctl -f -t audit | selnet audit --follow -``) until EOF.
  A line longer than MAX_LINE_CHARS is counted as malformed and never kept.
* **Grouping** (:class:`Follower`): one group per distinct denial (``avc_key``: not
  pid, comm or ephemeral ports).  A new one is diagnosed, given its best verified fix
  and reported at once; a repeat only adds to its group's count.  Counts are reported
  as "seen N times" lines at most every ``update_every`` seconds (only groups that grew),
  and in the final summary.  At most ``max_groups`` groups are kept, least recently seen
  evicted first (counted in ``evicted``; a denial seen again after eviction is reported
  as new), so memory stays flat over days.
* A quiet log flushes the parser after ``poll`` seconds: the kernel writes one event's
  records together, so an AVC is explained without waiting for the next one.
"""

from __future__ import annotations

import os
import select
import stat
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

from selnet.audit.auditor import Auditor, Entry, Group
from selnet.audit.avclog import MAX_LINE_CHARS, AvcKey, AvcLogParser, Event, avc_key
from selnet.audit.diagnose import is_network
from selnet.errors import InputError
from selnet.model.env import NetEnv
from selnet.policy.index import Policy

__all__ = ["FollowGroup", "FollowSummary", "Follower", "Tail"]

DEFAULT_POLL = 0.5
DEFAULT_UPDATE_EVERY = 5.0
DEFAULT_MAX_GROUPS = 1000
_READ = 1 << 16


@dataclass(slots=True)
class FollowGroup:
    """One distinct network denial seen while following."""

    number: int  # 1, 2, ... in order of first sight
    group: Group  # one entry: the first record, its diagnosis and fixes
    first_seen: float
    last_seen: float
    reported: int = 1  # the count last reported

    @property
    def count(self) -> int:
        return self.group.entries[0].count


@dataclass(slots=True)
class FollowSummary:
    lines: int
    network_denials: int
    groups_seen: int
    groups_kept: list[FollowGroup]
    evicted: int
    malformed: int
    rotations: int
    still_denied: bool = field(default=False)


class Follower:
    """Feeds lines to one parser kept across reads; reports through the two callbacks."""

    def __init__(
        self, policy: Policy, bools: dict[str, bool] | None = None, env: NetEnv | None = None,
        *, on_new: Callable[[FollowGroup], None], on_update: Callable[[FollowGroup], None],
        max_groups: int = DEFAULT_MAX_GROUPS, update_every: float = DEFAULT_UPDATE_EVERY,
        use_interfaces: bool = True, clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self.auditor = Auditor(policy, bools, env, use_interfaces=use_interfaces)
        self.parser = AvcLogParser()
        self.groups: OrderedDict[AvcKey, FollowGroup] = OrderedDict()
        self.max_groups = max(1, max_groups)
        self.update_every = update_every
        self.on_new = on_new
        self.on_update = on_update
        self.clock = clock
        self.seen = 0
        self.evicted = 0
        self.network = 0
        self.still_denied = False  # any denial still denied by this policy, evicted or not
        self._last_update = clock()

    def feed(self, lines: list[str]) -> None:
        for ev in self.parser.feed(lines):
            self._event(ev)

    def idle(self) -> None:
        """Nothing new for a poll interval: finish open events, report grown counts."""
        for ev in self.parser.flush():
            self._event(ev)
        now = self.clock()
        if now - self._last_update >= self.update_every:
            self._last_update = now
            for g in self.groups.values():
                if g.count != g.reported:
                    g.reported = g.count
                    self.on_update(g)

    def _event(self, ev: Event) -> None:
        avcs = ev.avcs
        chain = tuple(sorted({p for r in avcs for p in r.perms})) if len(avcs) > 1 else ()
        for rec in avcs:
            if rec.verdict == "granted" or not is_network(rec):
                continue
            self.network += 1
            key = avc_key(rec)
            now = self.clock()
            g = self.groups.get(key)
            if g is not None:
                self.groups.move_to_end(key)
                g.last_seen = now
                g.group.entries[0].seen(rec.fields.get("pid"), rec.fields.get("comm"))
                continue
            d = self.auditor.dx.diagnose(rec)
            e = Entry(d, 1, {rec.fields["pid"]} if "pid" in rec.fields else set(),
                      {rec.fields["comm"]} if "comm" in rec.fields else set(),
                      ev.syscall, ev.sockaddr, chain)  # fmt: skip
            grp = Group(d.domain, d.situation, d.tclass, d.target_type, [e])
            self.auditor.fix_group(grp)
            self.still_denied = self.still_denied or grp.still_denied
            if len(self.groups) >= self.max_groups:
                self.groups.popitem(last=False)  # least recently seen
                self.evicted += 1
            self.seen += 1
            g = self.groups[key] = FollowGroup(self.seen, grp, now, now)
            self.on_new(g)

    def summary(self, rotations: int = 0) -> FollowSummary:
        for ev in self.parser.flush():
            self._event(ev)
        st = self.parser.stats
        return FollowSummary(st.lines, self.network, self.seen, list(self.groups.values()),
                             self.evicted, st.malformed, rotations, self.still_denied)


class Tail:
    """New complete lines of a growing file (or of stdin), across rotation."""

    def __init__(self, path: str, *, from_start: bool = False) -> None:
        self.path = path
        self.rotations = 0
        self._carry = b""
        self._skipping = False  # inside a line longer than MAX_LINE_CHARS
        self.oversized = 0
        self._stdin = path == "-"
        self.eof = False  # stdin closed
        if self._stdin:
            self._fd = 0
            self._f: BinaryIO | None = None
            return
        # A FIFO or a device has no end to follow and no rotation (and open() of a FIFO
        # blocks until a writer comes): refused before it is opened.
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise InputError(f"{path}: not a regular file: --follow follows a log file "
                             "(or - for stdin)")
        self._f = open(path, "rb")  # noqa: SIM115 - kept open while following
        st = os.fstat(self._f.fileno())
        self._ino = (st.st_dev, st.st_ino)
        if not from_start:
            self._f.seek(0, os.SEEK_END)

    def close(self) -> None:
        if self._f is not None:
            self._f.close()

    def wait(self, timeout: float) -> None:
        """Sleep until input may be there (stdin) or for ``timeout`` (a file: polling)."""
        if self._stdin and not self.eof:
            select.select([self._fd], [], [], timeout)
        else:
            time.sleep(timeout)

    def read(self) -> list[str]:
        """The complete lines available now (empty: nothing new)."""
        data = self._read_some()
        if not data:
            return []
        return self._split(data)

    def _read_some(self) -> bytes:
        if self._stdin:
            if self.eof or not select.select([self._fd], [], [], 0)[0]:
                return b""
            data = os.read(self._fd, _READ)
            if not data:
                self.eof = True
                return self._final()
            return data
        assert self._f is not None
        data = self._f.read(_READ)
        if data:
            return data
        return self._check_rotation()

    def _final(self) -> bytes:
        tail, self._carry = self._carry, b""
        return tail + b"\n" if tail else b""

    def _check_rotation(self) -> bytes:
        """At EOF: a new file at the path (rename + create) or a truncated one."""
        assert self._f is not None
        try:
            st = os.stat(self.path)
        except OSError:
            return b""  # between rename and create: keep the old one for now
        if (st.st_dev, st.st_ino) != self._ino:
            try:
                new = open(self.path, "rb")  # noqa: SIM115
            except OSError:
                return b""
            rest = self._f.read(_READ)  # written to the old file since the last read
            if rest:
                new.close()
                return rest  # the switch happens at the old file's real end
            self._f.close()
            self._f = new
            nst = os.fstat(new.fileno())
            self._ino = (nst.st_dev, nst.st_ino)
            self.rotations += 1
            return self._final() + (new.read(_READ) or b"")
        if st.st_size < self._f.tell():  # copytruncate: the file starts again
            self._f.seek(0)
            self.rotations += 1
            self._carry = b""
            return self._f.read(_READ)
        return b""

    def _split(self, data: bytes) -> list[str]:
        parts = (self._carry + data).split(b"\n")
        self._carry = parts.pop()
        out: list[str] = []
        for part in parts:
            if self._skipping:
                self._skipping = False
                continue
            if len(part) > MAX_LINE_CHARS:
                self.oversized += 1
                continue
            out.append(part.decode("utf-8", "replace"))
        if len(self._carry) > MAX_LINE_CHARS:  # never kept whole
            self._carry = b""
            self._skipping = True
            self.oversized += 1
        return out


def follow(tail: Tail, follower: Follower, *, poll: float = DEFAULT_POLL,
           stop: Callable[[], bool]) -> FollowSummary:  # fmt: skip
    """Read, explain, repeat until ``stop()`` (a signal) or stdin's EOF."""
    try:
        while not stop():
            lines = tail.read()
            if lines:
                follower.feed(lines)
                continue
            if tail.eof:
                break
            follower.idle()
            tail.wait(poll)
    finally:
        tail.close()
    summary = follower.summary(tail.rotations)
    summary.malformed += tail.oversized
    return summary
