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

from selnet.audit.avclog import AvcLogParser, AvcRecord, Event, ParseStats, avc_key
from selnet.audit.diagnose import PORT_PERMS, Diagnoser, Diagnosis, is_network
from selnet.audit.fixes import Fix, FixFinder, denials_of
from selnet.model.env import NetEnv
from selnet.policy.index import Policy

EPHEMERAL_MIN_PORTS = 3
_MAX_TRACKED_PORTS = 4096


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


@dataclass(slots=True)
class Group:
    domain: str
    situation: str
    tclass: str
    target: str
    entries: list[Entry]
    fixes: list[Fix] = field(default_factory=list)
    explanation: list[str] = field(default_factory=list)

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


@dataclass(slots=True)
class AuditReport:
    policy: Policy
    stats: ParseStats
    groups: list[Group]
    network_records: int
    granted_records: int
    non_network_records: int
    distinct: int
    broad: dict[str, object] | None = None

    @property
    def exit_denied(self) -> bool:
        return any(g.still_denied for g in self.groups)


class Auditor:
    def __init__(self, policy: Policy, bools: dict[str, bool] | None = None,
                 env: NetEnv | None = None, *, use_interfaces: bool = True,
                 show_broad: bool = False, interfaces: object | None = None) -> None:
        self.policy = policy
        self.env = env or NetEnv()
        self.dx = Diagnoser(policy, bools, self.env)
        self.finder = FixFinder(self.dx, interfaces=interfaces, use_interfaces=use_interfaces)
        self.parser = AvcLogParser()
        self.entries: dict[object, Entry] = {}
        self.show_broad = show_broad
        self.network = 0
        self.granted = 0
        self.non_network = 0
        # (domain, class, perm) -> ports and target types seen (for ephemeral ports)
        self._ports: dict[tuple[str, str, str], tuple[set[int], set[str]]] = {}

    # -- streaming --------------------------------------------------------------------
    def feed(self, lines: Iterable[str | bytes]) -> None:
        for ev in self.parser.events(lines):
            self._event(ev)

    def _event(self, ev: Event) -> None:
        avcs = ev.avcs
        chain = tuple(sorted({p for r in avcs for p in r.perms})) if len(avcs) > 1 else ()
        for rec in avcs:
            if rec.verdict == "granted":
                self.granted += 1
                continue
            if not is_network(rec):
                self.non_network += 1
                continue
            self.network += 1
            key = avc_key(rec)
            e = self.entries.get(key)
            if e is None:
                e = self.entries[key] = Entry(self.dx.diagnose(rec), 0)
                e.syscall, e.sockaddr, e.event_perms = ev.syscall, ev.sockaddr, chain
                self._track(e.diag)
            e.count += 1
            if len(e.pids) < 8 and "pid" in rec.fields:
                e.pids.add(rec.fields["pid"])
            if len(e.comms) < 8 and "comm" in rec.fields:
                e.comms.add(rec.fields["comm"])

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
                target = d.tcon.type if d.tcon is not None else d.target_type
                gk = (d.domain, d.situation, d.tclass, target)
            g = groups.get(gk)
            if g is None:
                g = groups[gk] = Group(gk[0], gk[1], gk[2], gk[3], [])
            g.entries.append(e)
        out = sorted(groups.values(), key=lambda g: (not g.still_denied, g.domain, -g.count))
        all_fixes: list[Fix] = []
        for g in out:
            self._fix_group(g)
            all_fixes.extend(g.fixes)
        self.finder.verify_compiled(all_fixes)
        for g in out:
            g.fixes.sort(key=lambda f: (not f.verified, f.tier, f.breadth))
        broad = self._broad(out) if self.show_broad else None
        return AuditReport(self.policy, self.parser.stats, out, self.network, self.granted,
                           self.non_network, len(self.entries), broad)

    def _fix_group(self, g: Group) -> None:
        diags = [e.diag for e in g.entries]
        d0 = diags[0]
        denials = denials_of(diags)
        g.explanation = explain(g)
        if not g.still_denied or not denials:
            return
        if g.situation in ("foreign-policy", "obsolete-permission", "constraint"):
            return
        f = self.finder
        if g.situation == "ephemeral-port-range":
            # Widen over the generic-labeled ports only: a port that happens to carry a
            # service's label (an "accidental type") must not become ephemeral.
            generic = self.dx.facts.generic
            ports = sorted({d.port for d in diags if d.port is not None
                            and d.tcon is not None and d.tcon.type in generic})
            if ports and any("name_bind" in d.perms for d in diags):
                g.fixes.append(f.sysctl_fix(ports, self.env))
            return
        g.fixes.extend(f.boolean_fixes(diags, denials))
        sem = f.semanage_fix(diags, denials) if d0.port is not None else None
        if sem is not None:
            g.fixes.append(sem)
        ifx = f.interface_fix(denials)
        if ifx is not None:
            g.fixes.append(ifx)
        rule = f.rule_fix(denials)
        if rule is not None:
            g.fixes.append(rule)

    def _broad(self, groups: list[Group]) -> dict[str, object]:
        per_domain: dict[str, int] = {}
        total = 0
        for g in groups:
            if g.still_denied:
                per_domain[g.domain] = per_domain.get(g.domain, 0) + g.count
                total += g.count
        doms = {}
        for dom, n in per_domain.items():
            gain = 0
            for cls, perm in (("tcp_socket", "name_connect"), ("tcp_socket", "name_bind"),
                              ("udp_socket", "name_bind")):
                usable = self.dx.usable_port_types(dom, cls, perm)
                gain += len(self.dx.facts.port_types - set(usable))
            doms[dom] = {
                "command": f"semanage permissive -a {dom}",
                "silences_denials_in_log": n,
                "gains": f"every check of {dom} stops being enforced (network alone: "
                         f"{gain} (port type, class/perm) pairs it may not use today)",
            }
        return {
            "note": "shown for their blast radius only; never a fix",
            "permissive_domain": doms,
            "disable_selinux": {"command": "setenforce 0",
                                "silences_denials_in_log": total,
                                "gains": "every domain, every check"},
        }


def explain(g: Group) -> list[str]:
    """Plain words for a group: the check, the label now, the verdict and why."""
    d = g.entries[0].diag
    out: list[str] = []
    rec: AvcRecord = d.rec
    ck = d.check
    out.append(f"kernel check: {ck.operation}: {ck.hook}() checks {'/'.join(d.perms)} on "
               f"{d.tclass}; subject = {ck.subject}, target = {ck.target}")
    if d.port_label is not None:
        lab = d.port_label
        how = lab.matched.describe() if lab.matched is not None else \
            f"no portcon: the '{lab.initial_sid}' initial SID"
        out.append(f"port {d.port}/{d.protocol} is labeled {lab.type} now ({how})"
                   + (f"; attributes: {', '.join(lab.attributes)}" if lab.attributes else ""))
    if len(g.entries) > 1:
        ports = sorted({e.diag.port for e in g.entries if e.diag.port is not None})
        if ports:
            out.append(f"ports in this group: {', '.join(map(str, ports[:20]))}"
                       + (" ..." if len(ports) > 20 else ""))
    sit = g.situation
    texts = {
        "generic-port-type": f"the port has a generic type ({d.tcon.type if d.tcon else '?'}): "
                             "it was never given the service's label; relabel it",
        "port-label-not-installed": "the domain's own port type exists in the policy but no "
                                    "port carries it: its port label was never installed",
        "missing-service-port-rule": "the port is labeled for a service "
                                     f"({d.tcon.type if d.tcon else '?'}) "
                                     f"but {d.domain} has no rule for that port type",
        "ephemeral-port-range": f"{d.domain} is denied on many changing ports/types: it picks "
                                "ports itself outside ip_local_port_range; fix the port range, "
                                "not one rule per accidental type",
        "boolean-off": "an allow rule exists but a boolean is off",
        "constraint": d.constraint_detail or "a constraint denies it",
        "socket-owned-by-other-domain": "the socket belongs to another domain",
        "labeled-networking": "a per-packet check of labeled networking",
        "obsolete-permission": "the permission is obsolete on current kernels",
        "foreign-policy": "the log comes from another policy",
        "dontaudit-hidden": "a dontaudit rule would hide this denial",
        "permissive": "the record was permissive=1: it would have been denied",
        "allowed-now": "the given policy allows this now",
        "missing-rule": f"no allow rule gives {d.domain} this access",
    }
    out.append("problem: " + texts.get(sit, sit))
    verdicts = []
    for v in d.verdicts:
        if v.obsolete is not None:
            verdicts.append(f"{v.perm}: obsolete ({v.obsolete})")
        elif v.decision is not None:
            dec = v.decision
            why = {"allowed": "allowed", "no-rule": "denied: no allow rule",
                   "boolean": "denied: the allow rule's boolean is off",
                   "constraint": "denied by a constraint", "bounds": "denied by typebounds",
                   }.get(dec.reason, f"denied ({dec.reason})")
            if dec.silent:
                why += " (dontaudit: would not be logged)"
            if not dec.enforced:
                why += f" ({d.domain} is permissive: not enforced)"
            verdicts.append(f"{v.perm} -> {v.decided_target}: {why}")
    if verdicts:
        out.append("this policy: " + "; ".join(verdicts))
    if rec.permissive:
        out.append("permissive=1 in the record: the access succeeded, but would be denied "
                   "when enforcing")
    e0 = g.entries[0]
    if e0.syscall and not rec.packet_level:
        sc = e0.syscall
        out.append(f"syscall {sc.get('syscall', '?')} exit={sc.get('exit', '?')}"
                   + (f" comm={sc['comm']}" if "comm" in sc else ""))
    if e0.sockaddr and not rec.packet_level:
        sa = e0.sockaddr
        where = [sa.get("family", "?")] + ([sa["addr"]] if "addr" in sa else []) \
            + ([f"port {sa['port']}"] if "port" in sa else [])
        out.append("socket address (SOCKADDR): " + " ".join(where))
    if e0.event_perms:
        out.append("the same event also logged: " + " ".join(e0.event_perms))
    for n in d.notes:
        if n not in out:
            out.append(n)
    others = [s for s in d.situations if s != sit]
    if others:
        out.append("also: " + ", ".join(others))
    return out


def run_audit(policy: Policy, sources: Iterable[Iterable[str | bytes]],
              bools: dict[str, bool] | None = None, env: NetEnv | None = None,
              **kw: object) -> AuditReport:
    a = Auditor(policy, bools, env, **kw)  # type: ignore[arg-type]
    for lines in sources:
        a.feed(lines)
    return a.report()


# -- CLI -------------------------------------------------------------------------------
def open_inputs(paths: list[str]) -> list[object]:
    """Check every file is readable before any work (exit 2 otherwise)."""
    import sys

    from selnet.errors import InputError

    if not paths or paths == ["-"]:
        return [sys.stdin]
    handles: list[object] = []
    for p in paths:
        if p == "-":
            handles.append(sys.stdin)
            continue
        try:
            handles.append(open(p, encoding="utf-8", errors="replace"))  # noqa: SIM115
        except OSError as exc:
            raise InputError(f"{p}: cannot read ({exc.strerror})") from exc
    return handles
