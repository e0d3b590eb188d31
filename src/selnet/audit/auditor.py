"""``selnet audit``: stream a log, diagnose each distinct network denial once, group, fix.

Memory is bounded by the number of *distinct* denials (``avc_key``), not by the
log's size: repeats only bump a counter.  Diagnoses are cached per key, so a
million lines of the same few denials cost a few dozen policy decisions.

Grouping: one group per (domain, problem, class, target type); the ephemeral
port situation absorbs every name_bind/name_connect denial of its domain.  One
explanation and one combined fix per group.

Exit status: 1 when at least one network denial remains denied by the given
policy (including permissive=1 records and logs from another policy), else 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from selnet.audit.auparse_source import events as log_events
from selnet.audit.avclog import AvcLogParser, AvcRecord, Event, ParseStats, avc_key
from selnet.audit.diagnose import PORT_PERMS, Diagnoser, Diagnosis, SocketOrigin, is_network
from selnet.fix.engine import Fix, FixEngine, Need, Situation
from selnet.kernel.classes import PORT_PROTOCOLS
from selnet.model.env import NetEnv
from selnet.policy.index import Policy

EPHEMERAL_MIN_PORTS = 3
_MAX_TRACKED_PORTS = 4096
_MAX_FD_ENTRIES = 1024  # distinct fd use denials kept to join their socket groups
_MAX_KEYS = 8192  # repeated texts whose entry is remembered (Auditor._repeat)
_MAX_SEEN = 8  # pids and comms kept per entry


@dataclass(slots=True)
class Entry:
    """One distinct denial and how often it occurred."""

    diag: Diagnosis
    count: int = 1
    pids: set[str] = field(default_factory=set)
    comms: set[str] = field(default_factory=set)
    syscall: dict[str, str] | None = None
    sockaddr: dict[str, str] | None = None
    event_perms: tuple[str, ...] = ()  # other AVCs of the same event (a chain)

    def seen(self, pid: str | None, comm: str | None) -> None:
        """One more occurrence, by this pid and comm (the first few of each kept)."""
        self.count += 1
        if pid is not None and len(self.pids) < _MAX_SEEN:
            self.pids.add(pid)
        if comm is not None and len(self.comms) < _MAX_SEEN:
            self.comms.add(comm)


@dataclass(slots=True)
class Group:
    domain: str
    situation: str
    tclass: str
    target: str
    entries: list[Entry]
    fixes: list[Fix] = field(default_factory=list)

    @property
    def origin(self) -> SocketOrigin | None:
        return next((e.diag.origin for e in self.entries if e.diag.origin is not None), None)

    @property
    def count(self) -> int:
        return sum(e.count for e in self.entries)

    @property
    def still_denied(self) -> bool:
        return any(e.diag.still_denied for e in self.entries)

    @property
    def fix(self) -> Fix | None:
        ok = [f for f in self.fixes if f.verified]
        return ok[0] if ok else None

    @property
    def allowed_now(self) -> bool:
        """The same operations under the given policy's own labels."""
        return all(v.allowed_now is not False for e in self.entries for v in e.diag.verdicts)


@dataclass(frozen=True, slots=True)
class PermissiveSwitch:
    """`semanage permissive -a DOMAIN`: its blast radius, for comparison (never a fix)."""

    domain: str
    silenced: int  # denials of this log it would silence
    port_pairs_gained: int  # (port type, class/perm) pairs the domain may not use today


@dataclass(frozen=True, slots=True)
class BroadSwitches:
    permissive: tuple[PermissiveSwitch, ...]
    silenced_by_setenforce: int


@dataclass(slots=True)
class AuditReport:
    policy: Policy
    stats: ParseStats
    groups: list[Group]
    network_records: int
    granted_records: int
    non_network_records: int
    distinct: int
    broad: BroadSwitches | None = None
    bools: dict[str, bool] = field(default_factory=dict)  # the values decided with

    @property
    def exit_denied(self) -> bool:
        return any(g.still_denied for g in self.groups)


class Auditor:
    def __init__(self, policy: Policy, bools: dict[str, bool] | None = None,
                 env: NetEnv | None = None, *, use_interfaces: bool = True,
                 show_broad: bool = False, interfaces: object | None = None,
                 use_auparse: bool = True) -> None:
        self.policy = policy
        self.use_auparse = use_auparse  # raw audit.log files through libauparse
        self.env = env or NetEnv()
        self.dx = Diagnoser(policy, bools, self.env)
        self.engine = FixEngine(policy, self.dx.bools, self.env, facts=self.dx.facts,
                                interfaces=interfaces, use_interfaces=use_interfaces)
        self.parser = AvcLogParser()
        self.entries: dict[object, Entry] = {}
        self.show_broad = show_broad
        self.network = 0
        self.granted = 0
        self.non_network = 0
        # (domain, class, perm) -> ports and target types seen (for ephemeral ports)
        self._ports: dict[tuple[str, str, str], tuple[set[int], set[str]]] = {}
        # fd use on another domain: joins the socket group of the same service and creator
        self._fd: dict[object, Entry] = {}
        # a repeated record's entry, by the first record of its text (see _repeat)
        self._keys: dict[int, tuple[AvcRecord, Entry]] = {}

    # -- streaming --------------------------------------------------------------------
    def feed(self, lines: Iterable[str | bytes]) -> None:
        for ev in log_events(self.parser, lines, use_auparse=self.use_auparse,
                             on_repeat=self._repeat):
            self._event(ev)

    def _repeat(self, first: AvcRecord, pid: str, comm: str) -> bool:
        """An event of one AVC repeating ``first``'s text with this pid and comm, counted
        as :meth:`_event` counts its record, without the record: a raw log of repeated
        denials then costs a dictionary lookup an event.  Anything else than a granted
        record or a repeat of a known network denial: False (it comes as an Event)."""
        if first.verdict == "granted":
            self.granted += 1
            return True
        got = self._keys.get(id(first))
        if got is None or got[0] is not first:
            if not is_network(first):
                return False
            e = self.entries.get(avc_key(first))
            if e is None:
                return False
            if len(self._keys) >= _MAX_KEYS:  # the parser forgets old texts too
                self._keys.clear()
            got = self._keys[id(first)] = (first, e)  # an entry is never dropped
        self.network += 1
        got[1].seen(pid, comm)
        return True

    def _event(self, ev: Event) -> None:
        avcs = ev.avcs
        chain = tuple(sorted({p for r in avcs for p in r.perms})) if len(avcs) > 1 else ()
        for rec in avcs:
            if rec.verdict == "granted":
                self.granted += 1
                continue
            if not is_network(rec):
                self.non_network += 1
                if rec.tclass == "fd":
                    self._fd_use(rec)
                continue
            self.network += 1
            key = avc_key(rec)
            e = self.entries.get(key)
            if e is None:
                e = self.entries[key] = Entry(self.dx.diagnose(rec), 0)
                e.syscall, e.sockaddr, e.event_perms = ev.syscall, ev.sockaddr, chain
                self._track(e.diag)
            e.seen(rec.fields.get("pid"), rec.fields.get("comm"))

    def _fd_use(self, rec: AvcRecord) -> None:
        key = avc_key(rec)
        e = self._fd.get(key)
        if e is None:
            if len(self._fd) >= _MAX_FD_ENTRIES:
                return
            d = self.dx.diagnose_fd(rec)
            if d is None:
                return
            e = self._fd[key] = Entry(d, 0)
        e.seen(rec.fields.get("pid"), rec.fields.get("comm"))

    def _join_fd(self, groups: list[Group]) -> tuple[int, int]:
        """Put each fd use denial in the first socket group of its service and creator;
        returns how many records and distinct denials moved (network denials from then)."""
        moved = distinct = 0
        for e in self._fd.values():
            d = e.diag
            g = next((g for g in groups if g.domain == d.domain and g.origin is not None
                      and g.origin.creator == d.target_type), None)
            if g is not None:
                g.entries.append(e)
                moved += e.count
                distinct += 1
        return moved, distinct

    def _track(self, d: Diagnosis) -> None:
        if d.port is None:
            return
        for p in d.perms:
            if p in PORT_PERMS:
                ports, types = self._ports.setdefault((d.domain, d.tclass, p), (set(), set()))
                if len(ports) < _MAX_TRACKED_PORTS:
                    ports.add(d.port)
                types.add(d.target_type)

    # -- after the stream ------------------------------------------------------------------
    def _ephemeral(self) -> dict[tuple[str, str, str], list[int]]:
        out = {}
        start = self.env.unprivileged_port_start
        for key, (ports, types) in self._ports.items():
            high = sorted(p for p in ports if p >= start)
            if len(high) >= EPHEMERAL_MIN_PORTS and (len(types) >= 2 or len(high) >= 5):
                out[key] = high
        return out

    def report(self) -> AuditReport:
        eph = {k: set(v) for k, v in self._ephemeral().items()}
        groups: dict[tuple[str, str, str, str], Group] = {}
        for e in self.entries.values():
            d = e.diag
            eph_key = next(((d.domain, d.tclass, p) for p in d.perms
                            if (d.domain, d.tclass, p) in eph), None)
            if eph_key is not None and d.port is not None and d.port in eph[eph_key] \
                    and d.still_denied:
                if "ephemeral-port-range" not in d.situations:
                    d.situations.insert(0, "ephemeral-port-range")
                gk = (d.domain, "ephemeral-port-range", d.tclass, eph_key[2])
            else:
                gk = (d.domain, d.situation, d.tclass, d.target_type)
            g = groups.get(gk)
            if g is None:
                g = groups[gk] = Group(gk[0], gk[1], gk[2], gk[3], [])
            g.entries.append(e)
        out = sorted(groups.values(), key=lambda g: (not g.still_denied, g.domain, -g.count))
        moved, moved_distinct = self._join_fd(out)
        for g in out:
            self._fix_group(g)
        broad = self._broad(out) if self.show_broad else None
        return AuditReport(self.policy, self.parser.stats, out, self.network + moved,
                           self.granted, self.non_network - moved,
                           len(self.entries) + moved_distinct, broad,
                           dict(self.dx.bools))

    def fix_group(self, g: Group) -> None:
        """Rank and verify the fixes of one group (``--follow`` builds its own groups)."""
        self._fix_group(g)

    def _fix_group(self, g: Group) -> None:
        diags = [e.diag for e in g.entries]  # fd use on the creator is fixed with the rest
        if not g.still_denied:
            return
        if g.situation in ("foreign-policy", "obsolete-permission", "constraint"):
            return  # no label, boolean or rule helps (see the explanation)
        situation = Situation()
        if g.situation == "ephemeral-port-range":
            # Widen over the generic-labeled ports only: a port that happens to carry a
            # service's label (an "accidental type") must not become ephemeral.
            generic = self.dx.facts.generic
            diags = [d for d in diags if d.port is not None and d.target_type in generic]
            situation.ephemeral_ports = tuple(sorted({d.port for d in diags if d.port}))
        needs = needs_of(diags)
        if g.origin is not None:
            needs += self._origin_needs(diags, needs)
            situation.socket_from = g.origin.creator
        g.fixes = self.engine.fixes(needs, situation)

    def _origin_needs(self, diags: list[Diagnosis], logged: list[Need]) -> list[Need]:
        """A socket another domain created: what the service's use of it checks (the trace
        model's socket checks after the handoff) and this policy denies, beyond the logged
        denials, so that one fix lets the service accept, read and write, not one
        permission per enforcing run."""
        have = {(n.scon, n.tcon, n.tclass, n.perm) for n in logged}
        out: dict[Need, None] = {}
        for d in diags:
            if d.origin is None or d.scon is None or d.logged_tcon is None:
                continue
            for perm in d.origin.perms:
                if (d.scon, d.logged_tcon, d.tclass, perm) in have:
                    continue
                if not self.dx.decide(d.scon, d.logged_tcon, d.tclass, perm).allowed:
                    out[Need(d.scon, d.logged_tcon, d.tclass, perm, d.scon.type)] = None
        return list(out)

    def _broad(self, groups: list[Group]) -> BroadSwitches:
        per_domain: dict[str, int] = {}
        total = 0
        for g in groups:
            if g.still_denied:
                per_domain[g.domain] = per_domain.get(g.domain, 0) + g.count
                total += g.count
        doms = []
        for dom, n in per_domain.items():
            gain = 0
            for cls, perm in (("tcp_socket", "name_connect"), ("tcp_socket", "name_bind"),
                              ("udp_socket", "name_bind")):
                usable = self.dx.usable_port_types(dom, cls, perm)
                gain += len(self.dx.facts.port_types - set(usable))
            doms.append(PermissiveSwitch(dom, n, gain))
        return BroadSwitches(tuple(doms), total)


def run_audit(policy: Policy, sources: Iterable[Iterable[str | bytes]],
              bools: dict[str, bool] | None = None, env: NetEnv | None = None, *,
              use_interfaces: bool = True, show_broad: bool = False,
              interfaces: object | None = None, use_auparse: bool = True) -> AuditReport:
    a = Auditor(policy, bools, env, use_interfaces=use_interfaces, show_broad=show_broad,
                interfaces=interfaces, use_auparse=use_auparse)
    for lines in sources:
        a.feed(lines)
    return a.report()


def needs_of(diags: Iterable[Diagnosis]) -> list[Need]:
    """The logged accesses the policy still denies: each exactly as logged."""
    out: dict[Need, None] = {}
    for d in diags:
        if d.scon is None or d.logged_tcon is None:
            continue
        for v in d.verdicts:
            if v.decision is None or v.decision.allowed or v.obsolete is not None:
                continue
            port = d.port if v.perm in PORT_PERMS else None
            proto = d.protocol if port is not None and d.protocol in PORT_PROTOCOLS else None
            # Relabeled since and still denied under the given policy's label: fix the
            # operation as it happens now; allowed under that label: fix the logged one.
            tcon = d.tcon if v.current is not None and not v.current.allowed else d.logged_tcon
            assert tcon is not None
            logged = d.logged_tcon.type if tcon is not d.logged_tcon else None
            out[Need(d.scon, tcon, d.tclass, v.perm, d.scon.type,
                     port if proto else None, proto, logged)] = None
    return list(out)
