"""One AVC record -> the kernel check behind it, the policy's verdict now, and the situation.

Everything here reads labels, attributes and rules from the policy; no refpolicy
name is hard-coded.  Three policy-derived notions are used:

* **domain types**: types a role other than ``object_r`` may enter.
* **port types**: types used by a portcon, the ``port`` initial SID's type, and
  members of "port attributes" (attributes at least half of whose members have a
  portcon) -- the latter catches a package's port type whose label was never
  installed.
* **generic port types**: the ``port`` initial SID's type, or a type with a
  single portcon range of at least ``GENERIC_RANGE`` (256) ports.  A service's
  port type covers a handful of ports; the catch-all types (refpolicy's
  reserved/hi_reserved/unreserved, Fedora's ephemeral) cover hundreds or
  thousands.  The widest service range in refpolicy is 65 ports.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass, field

from selnet.analyses.porttypes import PolicyFacts
from selnet.audit.avclog import AvcRecord
from selnet.decide.decision import Decider, Decision
from selnet.errors import InputError
from selnet.kernel.checks import KernelCheck, for_avc
from selnet.kernel.classes import (
    CAPABILITY_CLASSES,
    CLASS_PROTOCOL,
    CONNECTION_PROTOCOLS,
    INET_SOCKET_CLASSES,
    PACKET_CLASSES,
    obsolete_reason,
)
from selnet.model import labels
from selnet.model.env import NetEnv
from selnet.model.trace import TraceModel
from selnet.notes import Note, note
from selnet.policy.index import Policy
from selnet.policy.snapshot import Context

NETWORK_CAPS = frozenset({"net_bind_service", "net_raw", "net_admin", "net_broadcast"})
PORT_PERMS = frozenset({"name_bind", "name_connect"})

# Stable situation ids (documented in docs/audit-comparison.md).
SITUATIONS = (
    "foreign-policy",
    "obsolete-permission",
    "constraint",
    "port-label-not-installed",
    "ephemeral-port-range",
    "generic-port-type",
    "missing-service-port-rule",
    "socket-owned-by-other-domain",
    "labeled-networking",
    "boolean-off",
    "dontaudit-hidden",
    "permissive",
    "missing-rule",
    "allowed-now",
    "label-differs",
)


# Where a socket labeled with another domain came from (docs/audit-comparison.md).
ORIGIN_KINDS = ("socket-activation", "inetd", "passed")
# PID 1's and inetd's domains by their conventional names: the policy says who PID 1 is only
# through process transitions, which selnet does not read, and the init initial SID is
# unlabeled_t in current refpolicy.  The names only choose the wording of the origin; what
# is decided and proposed is the same for every creator.
_INIT_NAMES = frozenset({"init_t", "systemd_t"})
_INETD_NAMES = frozenset({"inetd_t", "xinetd_t"})
# The trace protocol of each socket class (the inverse of kernel.classes.socket_class):
# the port-carrying classes' portcon protocol, and the two without ports.
_CLASS_TRACE_PROTO = {**CLASS_PROTOCOL, "icmp_socket": "icmp", "rawip_socket": "raw"}


@dataclass(frozen=True, slots=True)
class SocketOrigin:
    """A socket the service did not create: its creator's domain labels it."""

    creator: str  # the creator's type (the AVC's tcontext)
    kind: str  # one of ORIGIN_KINDS
    listener: bool  # handed over listening (the service accepts), not as a connection
    # What the service's use of such a socket makes the kernel check on it (the trace
    # model's checks after the handoff), in kernel order.
    perms: tuple[str, ...] = ()


def kernel_checks(rec: AvcRecord) -> tuple[KernelCheck, ...]:
    """The kernel checks (table entries) behind the record's permissions."""
    found: dict[KernelCheck, None] = {}
    f = rec.fields
    file = f.get("dev") == "sockfs" or f.get("path", "").startswith("socket:")
    for perm in rec.perms:
        found.update(dict.fromkeys(for_avc(rec.tclass, perm, file)))
    return tuple(found)


def is_network(rec: AvcRecord) -> bool:
    """Records selnet explains; everything else is counted and skipped."""
    if rec.tclass in INET_SOCKET_CLASSES or rec.tclass in PACKET_CLASSES:
        return True
    return rec.tclass in CAPABILITY_CLASSES and any(p in NETWORK_CAPS for p in rec.perms)


@dataclass(slots=True)
class PermVerdict:
    perm: str
    decision: Decision | None  # the access exactly as logged; None: foreign policy, obsolete
    decided_target: str  # the logged target type
    obsolete: str | None = None
    # The same operation under the given policy's labels, when its label for the port
    # differs from the logged one (a local record on the logging machine, or a relabel).
    current: Decision | None = None
    current_target: str | None = None

    @property
    def allowed_now(self) -> bool | None:
        """Is the operation allowed under the given policy's own labels?"""
        dec = self.current if self.current is not None else self.decision
        return None if dec is None else dec.allowed


@dataclass(slots=True)
class Diagnosis:
    rec: AvcRecord
    domain: str  # scontext type
    target_type: str  # tcontext type as logged
    tclass: str
    perms: tuple[str, ...]
    checks: tuple[KernelCheck, ...]  # the table entries this AVC can come from
    situations: list[str]
    notes: list[Note]
    verdicts: list[PermVerdict] = field(default_factory=list)
    scon: Context | None = None
    tcon: Context | None = None  # the target under the given policy's labels
    logged_tcon: Context | None = None  # the target exactly as logged
    foreign: list[str] = field(default_factory=list)
    port: int | None = None
    protocol: str | None = None
    port_label: labels.LabelResult | None = None
    label_changed: bool = False
    constraint_text: str | None = None  # the failing statement, or "typebounds"
    constraint_mls: bool = False  # an mlsconstrain (a level relation), not a plain constrain
    bounded_by: str | None = None  # typebounds: the parent type
    origin: SocketOrigin | None = None  # the socket was created by another domain
    # fd use on a socket's creator: grouped with the socket denials it belongs to, and
    # decided and fixed with them
    fd_of_socket: bool = False

    @property
    def still_denied(self) -> bool:
        """The given policy still denies the logged access (or cannot tell)."""
        if self.foreign:
            return True
        return any(
            v.decision is not None and not v.decision.allowed and v.obsolete is None
            for v in self.verdicts
        )

    @property
    def denied_perms(self) -> tuple[str, ...]:
        return tuple(
            v.perm for v in self.verdicts
            if v.decision is not None and not v.decision.allowed and v.obsolete is None
        )

    @property
    def situation(self) -> str:
        return self.situations[0] if self.situations else "missing-rule"


class Diagnoser:
    """Diagnoses records; results are cached per distinct (contexts, class, perms, port)."""

    def __init__(self, policy: Policy, bools: dict[str, bool] | None = None,
                 env: NetEnv | None = None) -> None:
        self.policy = policy
        self.bools = policy.bool_values(bools)
        self.env = env or NetEnv()
        self.decider = Decider(policy, self.bools)
        self.facts = PolicyFacts(policy)
        self._ctx_cache: dict[str, tuple[Context | None, list[str], Note | None]] = {}
        self._decisions: dict[tuple[Context, Context, str, str], Decision] = {}
        self._usable: dict[tuple[str, str, str], dict[str, bool]] = {}
        # Port label index: per protocol, the sorted boundaries of every portcon; all
        # ports between two boundaries resolve alike, so one lookup per segment.
        self._bounds: dict[str, list[int]] = defaultdict(list)
        for pc in policy.snap.portcons:
            self._bounds[pc.protocol].extend((pc.low, pc.high + 1))
        for k in self._bounds:
            self._bounds[k] = sorted(set(self._bounds[k]))
        self._segments: dict[tuple[str, int], labels.LabelResult] = {}
        # A socket type_transition's new type is the socket's own label, never a creator.
        self._socket_types = frozenset(t.default for t in policy.snap.transitions
                                       if t.tclass in INET_SOCKET_CLASSES)
        self._origin_perms: dict[tuple[Context, Context, str, bool], tuple[str, ...]] = {}

    def decide(self, scon: Context, tcon: Context, tclass: str, perm: str) -> Decision:
        key = (scon, tcon, tclass, perm)
        got = self._decisions.get(key)
        if got is None:
            got = self._decisions[key] = self.decider.decide(scon, tcon, tclass, perm)
        return got

    def port_label(self, proto: str, port: int) -> labels.LabelResult:
        seg = bisect.bisect_right(self._bounds.get(proto, []), port)
        got = self._segments.get((proto, seg))
        if got is None:
            got = self._segments[(proto, seg)] = labels.port_label(self.policy, proto, port)
        return got._replace(query=f"{port}/{proto}")

    # -- contexts ----------------------------------------------------------------
    def _context(self, text: str) -> tuple[Context | None, list[str], Note | None]:
        """(context usable with this policy, problems, note)."""
        got = self._ctx_cache.get(text)
        if got is not None:
            return got
        snap = self.policy.snap
        problems: list[str] = []
        mls_note = None
        try:
            ctx = Context.parse(text)
        except ValueError:
            res: tuple[Context | None, list[str], Note | None] = (
                None, [f"bad context {text!r}"], None)
            self._ctx_cache[text] = res
            return res
        t = snap.resolve_type(ctx.type)
        if t is None:
            problems.append(f"unknown type {ctx.type}")
        if ctx.user not in snap.users:
            problems.append(f"unknown user {ctx.user}")
        if ctx.role not in snap.role_types:
            problems.append(f"unknown role {ctx.role}")
        mls = ctx.mls
        if snap.mls:
            assert self.policy.levels is not None
            if not mls:
                mls = snap.users[ctx.user].level if ctx.user in snap.users else ""
                mls_note = note("log-not-mls")
            elif not self.policy.levels.valid_range(mls):
                problems.append(f"unknown MLS level {mls}")
        elif mls:
            mls = ""
        good = None if problems else Context(ctx.user, ctx.role, t or ctx.type, mls)
        res = (good, problems, mls_note)
        self._ctx_cache[text] = res
        return res

    # -- main entry ----------------------------------------------------------------
    def diagnose(self, rec: AvcRecord) -> Diagnosis:
        snap = self.policy.snap
        dom = rec.scontext.split(":")[2] if rec.scontext.count(":") >= 2 else rec.scontext
        ttype = rec.tcontext.split(":")[2] if rec.tcontext.count(":") >= 2 else rec.tcontext
        d = Diagnosis(rec, dom, ttype, rec.tclass, rec.perms, kernel_checks(rec), [], [])
        scon, sprob, snote = self._context(rec.scontext)
        tcon, tprob, _ = self._context(rec.tcontext)
        d.foreign = sprob + tprob
        if snote:
            d.notes.append(snote)
        if rec.tclass not in snap.classes:
            d.foreign.append(f"unknown class {rec.tclass}")
        else:
            for p in rec.perms:
                if p not in snap.classes[rec.tclass] and obsolete_reason(rec.tclass, p) is None:
                    d.foreign.append(f"class {rec.tclass} has no permission {p}")
        if rec.packet_level:
            d.notes.append(note("softirq-process-fields"))
        obsolete = {p: r for p in rec.perms if (r := obsolete_reason(rec.tclass, p)) is not None}
        if obsolete:
            d.situations.append("obsolete-permission")
            for p, r in obsolete.items():
                d.notes.append(note("obsolete-record", tclass=rec.tclass, perm=p, reason=r))
        if d.foreign:
            d.situations.insert(0, "foreign-policy")
            d.notes.append(note("foreign-policy", problems="; ".join(d.foreign)))
            return d
        assert scon is not None and tcon is not None
        d.scon, d.logged_tcon, d.tcon = scon, tcon, tcon
        dom = scon.type
        d.domain = dom
        # The target the kernel would use NOW for port checks.
        perm0 = set(rec.perms)
        proto = CLASS_PROTOCOL.get(rec.tclass)
        port_field = "src" if "name_bind" in perm0 else "dest" if "name_connect" in perm0 else None
        if port_field and port_field in rec.fields and labels.is_number(rec.fields[port_field]):
            d.port = int(rec.fields[port_field])
            d.protocol = proto or rec.tclass.removesuffix("_socket")
            if proto is not None and 1 <= d.port <= 65535:
                lab = self.port_label(proto, d.port)
            else:
                lab = None
                d.notes.append(note("no-portcon-for-class", tclass=rec.tclass))
            if lab is not None:
                d.port_label = lab
                if lab.type != tcon.type:
                    d.label_changed = True
                    d.notes.append(note("port-relabeled", port=d.port, proto=proto, now=lab.type,
                                        logged=tcon.type))
                    d.tcon = Context(tcon.user, tcon.role, lab.type, tcon.mls)
        # The verdicts.
        for p in rec.perms:
            if p in obsolete:
                d.verdicts.append(PermVerdict(p, None, tcon.type, obsolete[p]))
                continue
            v = PermVerdict(p, self.decide(scon, tcon, rec.tclass, p), tcon.type)
            if p in PORT_PERMS and d.label_changed:
                v.current = self.decide(scon, d.tcon, rec.tclass, p)
                v.current_target = d.tcon.type
            d.verdicts.append(v)
        self._situations(d)
        return d

    def _situations(self, d: Diagnosis) -> None:
        facts = self.facts
        rec = d.rec
        decisions = [v.decision for v in d.verdicts if v.decision is not None]
        denied = [x for x in decisions if not x.allowed]
        assert d.tcon is not None and d.scon is not None
        if rec.permissive or d.domain in self.policy.snap.permissive:
            d.situations.append("permissive")
            d.notes.append(note("record-permissive") if rec.permissive else
                           note("domain-permissive", domain=d.domain))
        if not denied:
            if decisions:
                d.situations.insert(0, "allowed-now")
                d.notes.append(note("allowed-now"))
            return
        sit: list[str] = []
        # A failing constraint also matters when the TE rule is missing or its boolean is
        # off: adding the rule (or setting the boolean) would still leave it denied.
        cons = [x for x in denied if x.reason == "constraint" or x.constraint_blocks_fix]
        if cons:
            sit.append("constraint")
            self._constraint_detail(d, cons[0])
        elif any(x.reason == "bounds" for x in denied):
            sit.append("constraint")
            d.constraint_text = "typebounds"
            parent = self.policy.snap.bounds.get(d.domain)
            d.bounded_by = parent
        is_port = d.port is not None and bool(set(d.denied_perms) & PORT_PERMS)
        if any(x.reason == "boolean" for x in denied):
            sit.append("boolean-off")
        if is_port:
            assert d.logged_tcon is not None
            # the label a fix will change: this policy's when it denies too, else the logged
            now_denied = any(v.current is not None and not v.current.allowed for v in d.verdicts)
            ttype = d.tcon.type if now_denied else d.logged_tcon.type
            if ttype in facts.generic:
                if self.uninstalled_candidates(d):
                    # after a constraint (no label or rule helps past it), else first
                    sit.insert(1 if sit[:1] == ["constraint"] else 0, "port-label-not-installed")
                sit.append("generic-port-type")
            elif not any(x.reason == "boolean" for x in denied) and not cons:
                sit.append("missing-service-port-rule")
        if rec.tclass in INET_SOCKET_CLASSES and not is_port:
            origin = self.socket_origin(d)
            if origin is not None:
                d.origin = origin
                sit.append("socket-owned-by-other-domain")
                d.notes.append(note(f"origin-{origin.kind}", creator=origin.creator,
                                    domain=d.domain, tclass=d.tclass,
                                    perms=" ".join(origin.perms)))
        if rec.tclass in PACKET_CLASSES or (rec.tclass in INET_SOCKET_CLASSES
                                                   and "recvfrom" in rec.perms):
            sit.append("labeled-networking")
            d.notes.extend(self._labeled_notes(d))
        if any(x.silent for x in denied):
            sit.append("dontaudit-hidden")
            d.notes.append(note("dontaudit-hidden"))
        if d.label_changed and all(v.allowed_now for v in d.verdicts
                                   if v.decision is not None and not v.decision.allowed):
            sit.insert(0, "label-differs")
            d.notes.append(note("label-differs", port=d.port, proto=d.protocol,
                                logged=d.target_type, now=d.tcon.type))
        if not sit:
            sit.append("missing-rule")
        d.situations[:0] = [s for s in sit if s not in d.situations]
        # permissive stays but the problem comes first
        if "permissive" in d.situations:
            d.situations.remove("permissive")
            d.situations.append("permissive")

    # -- sockets of another domain ---------------------------------------------------------
    def is_creator(self, domain: str, target: str) -> bool:
        """Is ``target`` another process's domain (a role other than object_r admits it), not
        a socket label a type_transition gives?  Such a target on a socket class is the
        label of a socket ``target`` created (hooks.c socket_sockcreate_sid)."""
        return (target != domain and target in self.facts.domains
                and target not in self._socket_types)

    def origin_kind(self, creator: str) -> str:
        init = self.policy.snap.initial_sids.get("init")
        if creator in _INIT_NAMES or (init is not None and init.type == creator):
            return "socket-activation"
        return "inetd" if creator in _INETD_NAMES else "passed"

    def diagnose_fd(self, rec: AvcRecord) -> Diagnosis | None:
        """``fd use`` on another domain: the descriptor crossed exec (flush_unauthorized_files)
        or came over a unix socket (selinux_file_receive), and ``file_has_perm`` checks it
        against the domain that opened it.  None unless the target is a creator domain.
        Decided like the socket checks (the snapshot keeps the fd rules)."""
        if rec.tclass != "fd" or "use" not in rec.perms:
            return None
        scon, sprob, _ = self._context(rec.scontext)
        tcon, tprob, _ = self._context(rec.tcontext)
        if scon is None or tcon is None or sprob or tprob:
            return None
        if not self.is_creator(scon.type, tcon.type):
            return None
        d = Diagnosis(rec, scon.type, tcon.type, rec.tclass, ("use",), kernel_checks(rec),
                      [], [], scon=scon, tcon=tcon, logged_tcon=tcon, fd_of_socket=True)
        dec = self.decide(scon, tcon, "fd", "use")
        d.verdicts.append(PermVerdict("use", dec, tcon.type))
        d.notes.append(note("fd-use-creator", creator=tcon.type, domain=scon.type))
        if dec.allowed:
            d.situations.append("allowed-now")
            d.notes.append(note("allowed-now"))
        else:
            d.situations.append("socket-owned-by-other-domain")
            if dec.silent:
                d.situations.append("dontaudit-hidden")
        return d

    def socket_origin(self, d: Diagnosis) -> SocketOrigin | None:
        assert d.scon is not None and d.logged_tcon is not None
        if "node_bind" in d.perms or not self.is_creator(d.domain, d.logged_tcon.type):
            return None
        creator = d.logged_tcon.type
        kind = self.origin_kind(creator)
        proto = _CLASS_TRACE_PROTO.get(d.tclass, "")
        # systemd hands over the listening socket (Accept=no); inetd accepts and hands over
        # the connection; a passed stream socket is a listener when the service accepts.
        listener = proto in CONNECTION_PROTOCOLS and (
            kind == "socket-activation" or (kind == "passed"
                                            and bool({"accept", "listen"} & set(d.perms))))
        perms = self._service_perms(d.scon, d.logged_tcon, d.tclass, listener)
        return SocketOrigin(creator, kind, listener, perms)

    def _service_perms(self, scon: Context, creator: Context, tclass: str,
                       listener: bool) -> tuple[str, ...]:
        """The socket checks of a service using a socket ``creator`` made and handed over
        (the trace model, as ``selnet trace --socket-from``): the permissions it needs on
        the creator's socket."""
        key = (scon, creator, tclass, listener)
        got = self._origin_perms.get(key)
        if got is not None:
            return got
        proto = _CLASS_TRACE_PROTO.get(tclass)
        out: tuple[str, ...] = ()
        if proto is not None:
            if proto in CONNECTION_PROTOCOLS:
                made = ["listen"] if listener else ["listen", "accept"]
                used = ["getsockname", "getsockopt=SO_ACCEPTCONN", "accept"] if listener \
                    else ["getpeername", "getsockopt=SO_TYPE"]
                used += ["setsockopt=SO_KEEPALIVE", "recv", "send"]
            else:
                made, used = [], ["getsockname", "getsockopt=SO_TYPE", "setsockopt=SO_RCVBUF",
                                  "recv", "sendto=127.0.0.1:9"]
            steps = [f"sock={proto}", "bind=127.0.0.1:0", *made, "handoff", *used]
            try:
                plan = TraceModel(self.policy, self.bools).plan(scon, steps, self.env, creator)
            except InputError:  # a step the model refuses for this protocol: none proposed
                plan = None
            if plan is not None:
                out = tuple(dict.fromkeys(
                    c.perm for ts in plan.steps if ts.subject == scon for c in ts.checks
                    if c.spec.target == "socket" and c.tclass == tclass))
        self._origin_perms[key] = out
        return out

    def _labeled_notes(self, d: Diagnosis) -> list[Note]:
        facts = self.facts
        out: list[Note] = []
        cls = d.tclass
        caps = self.policy.snap.polcaps
        acn = "always_check_network" in caps
        if cls == "packet":
            out.append(note("subsystem-secmark"))
        elif cls == "peer":
            out.append(note("subsystem-peer"))
        elif cls == "association":
            out.append(note("subsystem-ipsec"))
        elif cls in ("netif", "node"):
            out.append(note("subsystem-peer-active-acn" if acn else "subsystem-peer-active"))
            if set(d.perms) & {"ingress", "recvfrom"}:
                out.append(note("peer-is-subject", domain=d.domain))
        else:
            out.append(note("subsystem-compat"))
        if acn:
            out.append(note("always-check-network"))
        unl = facts.unlabeled_type
        if unl is not None and unl in (d.domain, d.target_type):
            out.append(note("unlabeled-means-none", type=unl))
        return out

    def _constraint_detail(self, d: Diagnosis, dec: Decision) -> None:
        d.constraint_text = dec.constraint
        con = next((c for c in self.policy.constraints_for(d.tclass) if c.text == dec.constraint),
                   None)
        d.constraint_mls = con is not None and con.mls

    # -- used by fixes and situations -------------------------------------------------
    def usable_port_types(self, domain: str, tclass: str, perm: str) -> dict[str, bool]:
        """Port types domain may ``perm`` now -> True when a rule names the type directly."""
        key = (domain, tclass, perm)
        got = self._usable.get(key)
        if got is None:
            got = self._usable[key] = self.facts.usable(domain, tclass, perm, self.bools)
        return got

    def uninstalled_candidates(self, d: Diagnosis) -> list[str]:
        """Port types without any portcon the domain may use for this denial."""
        perms = [p for p in d.denied_perms if p in PORT_PERMS]
        if not perms:
            return []
        got = self.usable_port_types(d.domain, d.tclass, perms[0])
        return sorted(t for t, direct in got.items() if direct
                      and t not in self.facts.portcons_of and t != self.facts.port_sid_type)
