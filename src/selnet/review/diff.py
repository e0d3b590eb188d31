"""The effective network difference between two policies (``selnet diff``, ``whatif``).

sediff compares statements; a reviewer asks what the kernel will now allow.  For every
domain, protocol and operation this compares *decisions*, port by port:

- ``bind``: bind() of the port on the wildcard address succeeds — the socket's own
  ``create`` and ``bind`` (the model's bind plan), ``node_bind`` on the node of
  0.0.0.0, ``name_bind`` on the port's type where the kernel checks it (outside the
  local port range, or below ip_unprivileged_port_start: NetEnv.requires_name_bind),
  and ``net_bind_service`` below ip_unprivileged_port_start;
- ``connect``: connect() to the port succeeds — ``create`` and ``connect`` on the
  socket, and ``name_connect`` on the port's type where the model checks it.

Each side's access is a canonical boolean function of the booleans (review/boolfn.py)
plus its value under that side's defaults, so an equivalent condition written another
way, or a portcon range split in two with the same type, is no difference.  A
difference names its causes: the statements that differ between the two sides for the
checks involved (a portcon re-typed, a rule or attribute membership added or removed, a
boolean default, a permissive domain, a socket type_transition, a constraint).

Work is per distinct label, never per port: each side decides each check once per
(domain, port context), and a domain whose decided functions are equal on both sides is
skipped without looking at single ports.
"""

from __future__ import annotations

import ipaddress
import time
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from selnet.analyses.profiles import (
    PROTOCOLS,
    Decisions,
    candidate_targets,
    defined,
    merge_ranges,
)
from selnet.decide.decision import Decider, Grant
from selnet.errors import InputError
from selnet.kernel.classes import INET_SOCKET_CLASSES, socket_class
from selnet.model.env import NetEnv
from selnet.model.labels import PortMap, node_label, port_map
from selnet.model.plan import Endpoint, KernelModel, Scenario, socket_label
from selnet.policy.conditions import eval_cond
from selnet.policy.index import Policy
from selnet.policy.snapshot import AVRule, Context
from selnet.review.boolfn import FALSE, TRUE, BoolFn, conj, conj_all, implies, of_conditions
from selnet.review.types import Access, Cause, NetChange, PolicyDiff, Range

OPERATIONS = ("bind", "connect")
_ANY4 = ipaddress.IPv4Address("0.0.0.0")


# -- one decided check -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Fact:
    """One check decided on one side: its boolean function and what it rests on."""

    role: str  # socket | node | port | capability
    tclass: str
    perm: str
    subject: Context
    target: Context
    fn: BoolFn
    grants: tuple[Grant, ...] = ()
    constraint: str | None = None
    is_defined: bool = True


class Side:
    """One policy, decided lazily per (domain, protocol, operation) and per label."""

    def __init__(self, policy: Policy, env: NetEnv) -> None:
        self.policy = policy
        self.env = env
        self.bools = policy.bool_values()
        self.decider = Decider(policy, self.bools)
        self.decisions = Decisions(policy, self.bools)
        self._cores: dict[tuple[object, ...], tuple[BoolFn, tuple[Grant, ...], str | None,
                                                    bool]] = {}
        self.ports: PortMap = port_map(policy)
        self.domains = frozenset(policy.domains())
        self._facts: dict[tuple[str, Context, Context, str, str], Fact] = {}
        self._targets: dict[tuple[str, str, str], dict[str, list[AVRule]]] = {}
        self._shapes: dict[tuple[str, str, bool], tuple[tuple[str, str, str], ...]] = {}
        # Per subject key: the candidate port types and each label's function (shared by
        # the domains that key stands for), and their merged runs.
        self._tables: dict[tuple[object, ...], tuple[frozenset[str], dict[Context, BoolFn]]] = {}
        self._runs: dict[tuple[object, ...], tuple[tuple[int, int, BoolFn], ...]] = {}
        self._any_node: Context | None = None
        self._ranges: dict[str, dict[Context, list[Range]]] = {}
        self._contexts: dict[str, Context | None] = {}

    def ranges(self, proto: str) -> dict[Context, list[Range]]:
        got = self._ranges.get(proto)
        if got is None:
            got = self._ranges[proto] = self.ports.ranges(proto)
        return got

    def intervals(self, proto: str) -> tuple[tuple[int, int, Context], ...]:
        return tuple((iv.low, iv.high, iv.context) for iv in self.ports.intervals[proto])

    # -- deciding --------------------------------------------------------------------
    def fact(self, role: str, scon: Context, tcon: Context, tclass: str, perm: str) -> Fact:
        """Decided as Decider does (TE allow rules by condition, constraints, typebounds,
        handle_unknown), keeping every allow rule's condition instead of its value now."""
        key = (role, scon, tcon, tclass, perm)
        got = self._facts.get(key)
        if got is not None:
            return got
        # Pairs with equal Decisions keys decide alike under any booleans (the rules that
        # name the permission, the contexts' user/role/level, the types only as far as
        # constraints and bounds read them): decided once per key.
        shared = self.decisions.key(scon, tcon, tclass, perm)
        core = self._cores.get(shared)
        if core is None:
            core = self._cores[shared] = self._decide(scon, tcon, tclass, perm)
        got = Fact(role, tclass, perm, scon, tcon, *core)
        self._facts[key] = got
        return got

    def _decide(self, scon: Context, tcon: Context, tclass: str, perm: str
                ) -> tuple[BoolFn, tuple[Grant, ...], str | None, bool]:
        policy = self.policy
        is_def = defined(policy, tclass, perm)
        allows: tuple[Grant, ...] = ()
        failing: str | None = None
        if not is_def:
            fn = TRUE if policy.snap.handle_unknown == "allow" else FALSE
        else:
            by_target = self._by_target(tclass, scon.type, perm)
            allows = tuple(
                Grant(r, r.source, r.target,
                      r.cond is None or eval_cond(r.cond, self.bools) == r.branch)
                for name in policy.names_of(tcon.type) for r in by_target.get(name, ()))
            fn = of_conditions((g.rule.cond, g.rule.branch) for g in allows)
            if fn != FALSE:  # a constraint or a bound can only take away what TE grants
                failing = self.decider.failing_constraint(scon, tcon, tclass, perm)
                if failing is not None or not self.decider.bounded_ok(
                        scon.type, tcon.type, tclass, perm):
                    fn = FALSE
        return fn, allows, failing, is_def

    def shape(self, dom: Context, sock: Context, proto: str, operation: str
              ) -> tuple[tuple[str, str, str], ...]:
        """The checks of the model's plan this comparison uses, as (role, class, perm):
        the socket's own permissions of the socket() and operation steps, node_bind,
        the port check, net_bind_service.  The plan's structure depends on the
        protocol, the operation and whether the socket is the kernel's (exempt), not on
        the domain, so it is taken once from the model and reused."""
        kernel = sock == self.policy.snap.initial_sids.get("kernel")
        key = (proto, operation, kernel)
        got = self._shapes.get(key)
        if got is None:
            addr = _ANY4 if operation == "bind" else ipaddress.IPv4Address("127.0.0.1")
            plan = KernelModel(self.policy, self.bools).plan(
                Scenario(operation, dom, Endpoint(addr, 1, proto), self.env))
            out: list[tuple[str, str, str]] = []
            for c in plan.checks:
                if c.step not in ("socket", operation):
                    continue
                if c.spec.target == "socket" and c.spec.subject == "task":
                    out.append(("socket", c.tclass, c.perm))
                elif c.spec.target == "node" and c.perm == "node_bind":
                    out.append(("node", c.tclass, c.perm))
                elif c.spec.target == "port":
                    out.append(("port", c.tclass, c.perm))
                elif c.tclass in ("capability", "cap_userns") and c.perm == "net_bind_service":
                    out.append(("capability", c.tclass, c.perm))
            got = self._shapes[key] = tuple(out)
        return got

    def _by_target(self, tclass: str, stype: str, perm: str) -> dict[str, list[AVRule]]:
        """The allow rules of (tclass, perm) whose source covers stype, by target name."""
        key = (tclass, stype, perm)
        got = self._targets.get(key)
        if got is None:
            got = {}
            for r in self.policy.rules_from(tclass, stype):
                if r.ruletype == "allow" and perm in r.perms:
                    got.setdefault(r.target, []).append(r)
            self._targets[key] = got
        return got

    def any_node(self) -> Context:
        if self._any_node is None:
            self._any_node = node_label(self.policy, _ANY4).context
        return self._any_node

    def domain_context(self, domain: str) -> Context | None:
        if domain in self._contexts:
            return self._contexts[domain]
        ctx: Context | None = None
        if domain in self.domains:
            try:
                ctx = self.policy.context_for_domain(domain)
            except InputError:
                ctx = None
        self._contexts[domain] = ctx
        return ctx

    def fingerprint(self, domain: str, proto: str) -> tuple[object, ...] | None:
        """Everything of this policy a (domain, protocol)'s access is decided from, except
        the port map and what :func:`_globals` compares once: the domain's context and
        permissive flag, its socket's label, and every rule whose source covers the
        socket or the domain in the classes checked, with the rule's expanded target and
        the defaults of the booleans it names."""
        dom = self.domain_context(domain)
        if dom is None:
            return None
        policy = self.policy
        sclass = socket_class(proto, policy.snap.polcaps)
        sock = sock_type(policy, domain, sclass, self.bools)
        rules = [*policy.rules_from(sclass, sock), *policy.rules_from("capability", domain),
                 *policy.rules_from("cap_userns", domain)]
        parts: list[object] = [dom, domain in policy.snap.permissive, sock]
        for r in rules:
            parts.append(r)
            parts.append(policy.expand(r.target))
            if r.cond is not None:
                parts.append(tuple(self.bools.get(n) for n in r.cond if n in self.bools))
        return tuple(parts)

    def port_targets(self, domain: str, proto: str) -> set[str]:
        """Types some rule lets the domain's socket name_bind or name_connect."""
        sclass = socket_class(proto, self.policy.snap.polcaps)
        sock = sock_type(self.policy, domain, sclass, self.bools)
        out: set[str] = set()
        for r in self.policy.rules_from(sclass, sock):
            if r.ruletype == "allow" and r.perms & {"name_bind", "name_connect"}:
                out |= self.policy.expand(r.target)
        return out

    def op(self, domain: str, proto: str, operation: str) -> OpModel | None:
        dom = self.domain_context(domain)
        if dom is None:
            return None
        return OpModel.build(self, dom, proto, operation)


@dataclass(slots=True)
class OpModel:
    """One (domain, protocol, operation) on one side: the port-independent checks, the
    port check per label, and the capability below the unprivileged start."""

    side: Side
    domain: Context
    proto: str
    operation: str
    sclass: str
    sock: Context
    sock_origin: str
    fixed: tuple[Fact, ...]  # socket permissions and node_bind on the wildcard node
    port_perm: str | None  # None: this operation checks no port
    cap: Fact | None  # net_bind_service (bind only)
    permissive: bool
    candidates: frozenset[str] | None = None  # port types some rule covers; None: all alike
    default: BoolFn = FALSE  # every port label no rule covers
    # Shared by every domain whose socket has the same subject key (Decisions): the
    # attribute-granted domains of a policy share a handful of such tables.
    _port_fns: dict[Context, BoolFn] = field(default_factory=dict)
    _runs_key: tuple[object, ...] = ()
    _fixed_fn: BoolFn | None = None

    @classmethod
    def build(cls, side: Side, dom: Context, proto: str, operation: str) -> OpModel:
        policy = side.policy
        sclass = socket_class(proto, policy.snap.polcaps)
        sock, origin = socket_label(policy, dom, sclass, side.bools)
        fixed: list[Fact] = []
        port_perm: str | None = None
        cap: Fact | None = None
        for role, tclass, perm in side.shape(dom, sock, proto, operation):
            if role == "socket":
                fixed.append(side.fact("socket", dom, sock, tclass, perm))
            elif role == "node":
                fixed.append(side.fact("node", sock, side.any_node(), tclass, perm))
            elif role == "port":
                port_perm = perm
            else:
                cap = side.fact("capability", dom, dom, tclass, perm)
        model = cls(side, dom, proto, operation, sclass, sock, origin,
                    tuple(dict.fromkeys(fixed)), port_perm, cap,
                    dom.type in policy.snap.permissive)
        if port_perm is not None:
            if defined(policy, sclass, port_perm):
                skey = (proto, sclass, port_perm,
                        side.decisions.subject_key(sock, sclass, port_perm))
                shared = side._tables.get(skey)
                if shared is None:
                    shared = side._tables[skey] = (
                        frozenset(candidate_targets(policy, sclass, sock.type, port_perm)), {})
                model.candidates, model._port_fns = shared
                model._runs_key = skey
            else:  # handle_unknown decides every port alike
                any_ctx = next(iter(side.ranges(proto)))
                model.default = model.port_fact(any_ctx).fn
        return model

    def port_fact(self, ctx: Context) -> Fact:
        assert self.port_perm is not None
        return self.side.fact("port", self.sock, ctx, self.sclass, self.port_perm)

    def port_fn(self, ctx: Context) -> BoolFn:
        """Decided on first use: a comparison restricted to re-typed ports decides only
        the labels found there."""
        if self.candidates is None or ctx.type not in self.candidates:
            return self.default
        got = self._port_fns.get(ctx)
        if got is None:
            got = self._port_fns[ctx] = self.port_fact(ctx).fn
        return got

    def fixed_fn(self) -> BoolFn:
        if self._fixed_fn is None:
            self._fixed_fn = conj_all(f.fn for f in self.fixed)
        return self._fixed_fn

    def spans(self) -> list[Range] | None:
        """The ports this side may allow (merged), or None when it may allow any port."""
        if self.permissive:
            return None
        if self.fixed_fn() == FALSE:
            return []
        if self.port_perm is None or self.default != FALSE:
            return None
        ranges = self.side.ranges(self.proto)
        assert self.candidates is not None
        spans = [r for ctx, rs in ranges.items() if ctx.type in self.candidates for r in rs]
        if self.operation == "bind":
            # Ports the kernel does not check for name_bind (NetEnv.requires_name_bind).
            env = self.side.env
            low, high = max(env.local_port_range[0], env.unprivileged_port_start), \
                env.local_port_range[1]
            if low <= high:
                spans.append((low, high))
        return merge_ranges(spans)

    def head(self) -> tuple[object, ...]:
        """Everything but the port labels' functions."""
        return (self.permissive, self.fixed_fn(), self.port_perm, self.default,
                None if self.cap is None else self.cap.fn)

    def signature(self) -> tuple[object, ...]:
        """Equal signatures on both sides: the same access at every port (fast path)."""
        return (*self.head(), self.runs())

    def runs(self) -> tuple[tuple[int, int, BoolFn], ...]:
        """The candidate labels' ports with their functions, merged (shared per table)."""
        if self.port_perm is None or self.candidates is None:
            return ()
        got = self.side._runs.get(self._runs_key)
        if got is not None:
            return got
        ranges = self.side.ranges(self.proto)
        spans: list[tuple[int, int, BoolFn]] = []
        cands = self.candidates
        for ctx, rs in ranges.items():
            if ctx.type in cands:
                fn = self.port_fn(ctx)
                spans.extend((lo, hi, fn) for lo, hi in rs)
        spans.sort(key=lambda t: t[0])
        runs: list[tuple[int, int, BoolFn]] = []
        for lo, hi, fn in spans:
            if runs and runs[-1][1] + 1 == lo and runs[-1][2] == fn:
                runs[-1] = (runs[-1][0], hi, fn)
            else:
                runs.append((lo, hi, fn))
        got = self.side._runs[self._runs_key] = tuple(runs)
        return got

    def access_fn(self, port: int, ctx: Context) -> BoolFn:
        fn = self.fixed_fn()
        env = self.side.env
        if self.port_perm is not None and (self.operation != "bind" or env.requires_name_bind(port)):
            fn = conj(fn, self.port_fn(ctx))
        if self.cap is not None and env.requires_bind_service(port):
            fn = conj(fn, self.cap.fn)
        return fn

    def facts_at(self, port: int, ctx: Context) -> list[Fact]:
        """The checks this port's access rests on, for explaining a difference."""
        out = list(self.fixed)
        env = self.side.env
        if self.port_perm is not None and (self.operation != "bind" or env.requires_name_bind(port)):
            out.append(self.port_fact(ctx))
        if self.cap is not None and env.requires_bind_service(port):
            out.append(self.cap)
        return out


def _access(fn: BoolFn, permissive: bool, bools: Mapping[str, bool]) -> Access:
    if permissive:
        return Access("permissive", "", True)
    const = fn.constant
    if const is not None:
        return Access("allowed" if const else "denied", "", const)
    return Access("conditional", fn.expression(), fn.at(bools))


def _direction(old: BoolFn, new: BoolFn, before: Access, after: Access) -> str:
    """Effective functions (a permissive domain: TRUE; an absent one: FALSE)."""
    now_up = after.now >= before.now
    now_down = after.now <= before.now
    if implies(old, new) and now_up:
        return "gained"
    if implies(new, old) and now_down:
        return "lost"
    return "changed"


# -- explaining a difference -----------------------------------------------------------------
def _rule_key(rule: AVRule) -> tuple[object, ...]:
    return (rule.ruletype, rule.source, rule.target, rule.tclass, rule.cond, rule.branch)


class Explainer:
    """Causes for one check's difference between the two sides (memoised per pair)."""

    def __init__(self, old: Side, new: Side) -> None:
        self.old = old
        self.new = new
        self._memo: dict[tuple[Fact | None, Fact | None], tuple[Cause, ...]] = {}
        self._points: dict[str, list[int]] = {}

    def runs(self, proto: str, windows: list[Range] | None) -> list[Range]:
        """The port runs over which both sides' labels and the kernel's conditions (the
        unprivileged start, the local port range) are constant; only inside ``windows``
        when given."""
        points = self._points.get(proto)
        if points is None:
            env = self.old.env
            cuts = {iv.low for iv in self.old.ports.intervals[proto]}
            cuts |= {iv.low for iv in self.new.ports.intervals[proto]}
            cuts |= {env.unprivileged_port_start, env.local_port_range[0],
                     env.local_port_range[1] + 1, 1, 65536}
            points = self._points[proto] = sorted(p for p in cuts if 1 <= p <= 65536)
        out: list[Range] = []
        for wlo, whi in windows if windows is not None else [(1, 65535)]:
            i = bisect_right(points, wlo)
            low = wlo
            while i < len(points) and points[i] <= whi:
                out.append((low, points[i] - 1))
                low = points[i]
                i += 1
            out.append((low, whi))
        return out

    def facts(self, a: Fact | None, b: Fact | None) -> tuple[Cause, ...]:
        got = self._memo.get((a, b))
        if got is None:
            got = tuple(dict.fromkeys(self._facts(a, b)))
            self._memo[(a, b)] = got
        return got

    def _facts(self, a: Fact | None, b: Fact | None) -> Iterable[Cause]:
        if a is None or b is None:
            return
        if a.fn == b.fn and a.fn.at(self.old.bools) == b.fn.at(self.new.bools):
            return
        relabeled = a.target.type != b.target.type or a.subject.type != b.subject.type
        if a.role == "node" and a.target.type != b.target.type:
            yield Cause("nodecon", f"node of 0.0.0.0: {a.target.type} -> {b.target.type}",
                        (str(a.target), *_granting(a)), (str(b.target), *_granting(b)))
        if a.is_defined != b.is_defined:
            what = f"{a.tclass} {a.perm}"
            yield Cause("class", f"{what} {'removed from' if a.is_defined else 'added to'} the "
                        "policy's classes (handle_unknown decides it where undefined)")
        if a.constraint != b.constraint:
            yield Cause("constraint", f"constraint on {a.tclass} {a.perm} "
                        f"{'now fails' if b.constraint else 'no longer fails'}",
                        (a.constraint,) if a.constraint else (),
                        (b.constraint,) if b.constraint else ())
        if not relabeled:  # a new label has other rules: the label change is the cause
            yield from self._grants(a, b)
        names = set(a.fn.names) | set(b.fn.names)
        for name in sorted(names):
            ov, nv = self.old.bools.get(name), self.new.bools.get(name)
            if ov is not None and nv is not None and ov != nv:
                yield Cause("boolean", f"boolean {name} default {_onoff(ov)} -> {_onoff(nv)}",
                            (f"setsebool -P {name} {_onoff(ov)}",),
                            (f"setsebool -P {name} {_onoff(nv)}",))

    def _grants(self, a: Fact, b: Fact) -> Iterable[Cause]:
        old_rules = {_rule_key(g.rule): g for g in a.grants}
        new_rules = {_rule_key(g.rule): g for g in b.grants}
        for key in sorted(set(old_rules) ^ set(new_rules), key=str):
            gained = key in new_rules
            g = new_rules[key] if gained else old_rules[key]
            here, there = (self.new, self.old) if gained else (self.old, self.new)
            other = _same_rule(there.policy, g.rule)
            if other is not None and a.perm in other.perms:
                yield from self._membership(g, here, there, gained, a, b)
                continue
            if other is not None:  # the rule's permissions changed
                texts = (other.te(),), (g.rule.te(),)
                before, after = texts if gained else (texts[1], texts[0])
                yield Cause("rule", f"{a.perm} {'added to' if gained else 'removed from'} "
                            f"{g.rule.ruletype} {g.rule.source} {g.rule.target}:{g.rule.tclass}",
                            before, after)
                continue
            text = g.rule.te()
            yield Cause("rule", f"rule {'added' if gained else 'removed'}: {text}",
                        () if gained else (text,), (text,) if gained else ())

    def _membership(self, g: Grant, here: Side, there: Side, gained: bool,
                    a: Fact, b: Fact) -> Iterable[Cause]:
        """The same rule on both sides covers the check on one only: an attribute."""
        subj = (b if gained else a).subject.type
        targ = (b if gained else a).target.type
        found = False
        for name, t in ((g.via_source, subj), (g.via_target, targ)):
            if name == t or name == "self":
                continue
            if t not in there.policy.expand(name):
                found = True
                stmt = f"typeattribute {t} {name};"
                yield Cause("attribute", f"{t} {'joined' if gained else 'left'} attribute "
                            f"{name} (through {g.rule.ruletype} {g.rule.source} "
                            f"{g.rule.target}:{g.rule.tclass})",
                            () if gained else (stmt,), (stmt,) if gained else ())
        if not found:
            text = g.rule.te()
            yield Cause("rule", f"rule {'now' if gained else 'no longer'} covers {subj}: {text}",
                        () if gained else (text,), (text,) if gained else ())


def _granting(f: Fact) -> tuple[str, ...]:
    return tuple(g.rule.te() for g in f.grants)


def _same_rule(policy: Policy, rule: AVRule) -> AVRule | None:
    key = _rule_key(rule)
    for r in policy.rules_named(rule.tclass, rule.source):
        if _rule_key(r) == key:
            return r
    return None


def _onoff(v: bool) -> str:
    return "on" if v else "off"


def _portcon_cause(old: Side, new: Side, proto: str, port: int) -> Cause | None:
    a = old.ports.lookup(proto, port)
    b = new.ports.lookup(proto, port)
    if a.context.type == b.context.type:
        return None

    def stmt(iv: object) -> str:
        rec = getattr(iv, "record", None)
        return rec.describe() if rec is not None else "(no portcon: the port initial SID)"

    return Cause("portcon", f"portcon {proto} {port}: {a.context.type} -> {b.context.type}",
                 (stmt(a),), (stmt(b),))


# -- the comparison --------------------------------------------------------------------------
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class DiffFilter:
    domains: frozenset[str] | None = None  # only these domains
    ports: tuple[tuple[str | None, int], ...] = ()  # (protocol or None, port): only these

    def port_wanted(self, proto: str, low: int, high: int) -> bool:
        if not self.ports:
            return True
        return any((p is None or p == proto) and low <= n <= high for p, n in self.ports)


def diff_policies(
    old: Policy,
    new: Policy,
    *,
    env: NetEnv | None = None,
    only: DiffFilter | None = None,
    domains: Iterable[str] | None = None,
    progress: Progress | None = None,
) -> PolicyDiff:
    """Every (domain, operation, protocol, port range) whose access differs.

    ``domains`` limits the work to domains known to be affected (whatif passes the
    domains its changes can touch); ``only`` filters what is reported."""
    start = time.perf_counter()
    env = env or NetEnv()
    a, b = Side(old, env), Side(new, env)
    names = sorted(set(domains) if domains is not None else a.domains | b.domains)
    if only is not None and only.domains is not None:
        names = [d for d in names if d in only.domains]
    explainer = Explainer(a, b)
    same_globals = _globals(a) == _globals(b)
    moved = {proto: _moved(a, b, proto) for proto in PROTOCOLS}
    touched = overlay_touched(old, new) if same_globals else None
    changes: list[NetChange] = []
    for i, domain in enumerate(names):
        if progress is not None:
            progress(i, len(names))
        for proto in PROTOCOLS:
            restrict: tuple[Range, ...] | None = None
            if touched is not None:
                equal = domain not in touched
            else:
                equal = same_globals and \
                    a.fingerprint(domain, proto) == b.fingerprint(domain, proto)
            if equal:
                # Same rules, labels and defaults: only a re-typed port can differ.
                mv = moved[proto]
                if not mv.types or (not (a.port_targets(domain, proto) & mv.types)
                                    and not (b.port_targets(domain, proto) & mv.types)):
                    continue
                restrict = mv.ranges
            for operation in OPERATIONS:
                changes.extend(_compare(a, b, explainer, domain, proto, operation,
                                        only or DiffFilter(), restrict))
    if progress is not None:
        progress(len(names), len(names))
    return PolicyDiff(old.describe(), new.describe(), old.provenance(), new.provenance(),
                      tuple(changes), len(names), time.perf_counter() - start)


def _globals(side: Side) -> tuple[object, ...]:
    """What every domain's access depends on alike: compared once per diff."""
    snap = side.policy.snap
    classes = sorted({socket_class(p, snap.polcaps) for p in PROTOCOLS} |
                     {"capability", "cap_userns", "node"})
    return (
        snap.handle_unknown, snap.polcaps, side.any_node(),
        tuple((c, snap.classes.get(c)) for c in classes),
        tuple((c, tuple(side.policy.constraints_for(c))) for c in classes),
        tuple(sorted(snap.bounds.items())),
    )


@dataclass(frozen=True, slots=True)
class Moved:
    """The ports whose label differs between the sides, and the types on either side."""

    ranges: tuple[Range, ...] = ()
    types: frozenset[str] = frozenset()


def _moved(a: Side, b: Side, proto: str) -> Moved:
    ia, ib = a.intervals(proto), b.intervals(proto)
    if ia == ib:
        return Moved()
    types: set[str] = set()
    ranges: list[Range] = []
    cuts = sorted({lo for lo, _, _ in ia} | {lo for lo, _, _ in ib})
    for i, lo in enumerate(cuts):
        ca = a.ports.lookup(proto, lo).context
        cb = b.ports.lookup(proto, lo).context
        if ca != cb:
            types.add(ca.type)
            types.add(cb.type)
            ranges.append((lo, cuts[i + 1] - 1 if i + 1 < len(cuts) else 65535))
    return Moved(tuple(merge_ranges(ranges)), frozenset(types))


def _compare(a: Side, b: Side, explainer: Explainer, domain: str, proto: str,
             operation: str, only: DiffFilter,
             restrict: tuple[Range, ...] | None = None) -> list[NetChange]:
    """``restrict``: compare only these ports (everything else is known equal)."""
    ma = a.op(domain, proto, operation)
    mb = b.op(domain, proto, operation)
    if ma is None and mb is None:
        return []
    if restrict is None and ma is not None and mb is not None and \
            ma.signature() == mb.signature() and _same_now(ma, mb):
        return []
    # The slow path: every run of ports with one label on each side, only where one side
    # may allow something (a port no rule covers on either side is denied on both).
    windows: list[Range] | None
    if restrict is not None:
        windows = list(restrict)  # already small: the re-typed ports
    else:
        sa = ma.spans() if ma is not None else []
        sb = mb.spans() if mb is not None else []
        windows = None if sa is None or sb is None else merge_ranges([*sa, *sb])
    groups: dict[tuple[Access, Access, str, tuple[Cause, ...]], list[Range]] = {}
    memo: dict[tuple[Context, Context, bool, bool], tuple[Access, Access, str,
                                                          tuple[Cause, ...]] | None] = {}
    env = a.env
    for low, high in explainer.runs(proto, windows):
        if not only.port_wanted(proto, low, high):
            continue
        ca = a.ports.lookup(proto, low).context
        cb = b.ports.lookup(proto, low).context
        key = (ca, cb, env.requires_name_bind(low), env.requires_bind_service(low))
        if key in memo:
            got = memo[key]
        else:
            got = memo[key] = _run(a, b, explainer, ma, mb, proto, low, ca, cb)
        if got is not None:
            groups.setdefault(got, []).append((low, high))
    out = []
    for (before, after, direction, causes), ranges in groups.items():
        out.append(NetChange(domain, operation, proto, tuple(merge_ranges(ranges)), before, after,
                             direction, causes))
    out.sort(key=lambda c: c.ports[0])
    return out


def _run(a: Side, b: Side, explainer: Explainer, ma: OpModel | None, mb: OpModel | None,
         proto: str, low: int, ca: Context, cb: Context
         ) -> tuple[Access, Access, str, tuple[Cause, ...]] | None:
    """One run of ports: (before, after, direction, causes), None when equal."""
    fa = ma.access_fn(low, ca) if ma is not None else FALSE
    fb = mb.access_fn(low, cb) if mb is not None else FALSE
    before = _access(fa, ma.permissive, a.bools) if ma is not None else Access("absent")
    after = _access(fb, mb.permissive, b.bools) if mb is not None else Access("absent")
    if before == after:
        return None
    if before.state in ("denied", "absent") and after.state in ("denied", "absent"):
        return None
    if before.state in ("allowed", "permissive") and after.state in ("allowed", "permissive"):
        return None  # open either way: the permissive change shows where it opens something
    direction = _direction(TRUE if before.state == "permissive" else fa,
                           TRUE if after.state == "permissive" else fb, before, after)
    return before, after, direction, _causes(a, b, explainer, ma, mb, proto, low, ca, cb)


def _same_now(ma: OpModel, mb: OpModel) -> bool:
    """Equal functions and equal defaults for every boolean they name."""
    names: set[str] = set(ma.fixed_fn().names) | set(ma.default.names)
    if ma.cap is not None:
        names |= set(ma.cap.fn.names)
    for fn in ma._port_fns.values():
        names |= set(fn.names)
    return all(ma.side.bools.get(n) == mb.side.bools.get(n) for n in names)


def _causes(a: Side, b: Side, explainer: Explainer, ma: OpModel | None, mb: OpModel | None,
            proto: str, port: int, ca: Context, cb: Context) -> tuple[Cause, ...]:
    out: list[Cause] = []
    if ma is None or mb is None:
        # One cause for every such domain, so that the summary groups them.
        which = "new" if ma is None else "old"
        out.append(Cause("type", f"the domain exists only in the {which} policy"))
        return tuple(out)
    if ma.permissive != mb.permissive:
        stmt = f"permissive {ma.domain.type};"
        out.append(Cause("permissive", f"{ma.domain.type} "
                         f"{'made' if mb.permissive else 'no longer'} permissive",
                         (stmt,) if ma.permissive else (), (stmt,) if mb.permissive else ()))
    if ma.sock.type != mb.sock.type:
        out.append(Cause("socket-label", f"{ma.sclass} created by {ma.domain.type}: "
                         f"{ma.sock.type} -> {mb.sock.type} (type_transition)",
                         (str(ma.sock),), (str(mb.sock),)))
    if ma.port_perm is not None and ca.type != cb.type:
        pc = _portcon_cause(a, b, proto, port)
        if pc is not None:
            # With the rules that decide the port on each side for this domain.
            pa = ma.port_fact(ca) if ma.port_perm is not None else None
            pb = mb.port_fact(cb) if mb.port_perm is not None else None
            out.append(Cause(pc.kind, pc.summary,
                             (*pc.before, *(_granting(pa) if pa else ())),
                             (*pc.after, *(_granting(pb) if pb else ()))))
    fa, fb = ma.facts_at(port, ca), mb.facts_at(port, cb)
    by_key = {(f.role, f.tclass, f.perm): f for f in fb}
    for f in fa:
        g = by_key.pop((f.role, f.tclass, f.perm), None)
        out.extend(explainer.facts(f, g))
    for g in by_key.values():
        out.append(Cause("check", f"{g.tclass} {g.perm} checked only in the new policy"))
    for f in fa:
        if (f.role, f.tclass, f.perm) not in {(g.role, g.tclass, g.perm) for g in fb}:
            out.append(Cause("check", f"{f.tclass} {f.perm} checked only in the old policy"))
    if not out:
        out.append(Cause("other", "the decisions differ but no single statement explains it"))
    return tuple(dict.fromkeys(out))


# -- which domains a change can touch ---------------------------------------------------------
def sock_type(policy: Policy, domain: str, sclass: str, bools: Mapping[str, bool]) -> str:
    """The type of the sockets of ``sclass`` the domain creates: a type_transition's
    default, else the domain (socket_label, without setsockcreatecon)."""
    tt = policy.transition(domain, domain, sclass, bools)
    return tt.default if tt is not None else domain


def socket_types(policy: Policy, domain: str, bools: Mapping[str, bool]) -> set[str]:
    """The domain and the types of the sockets it creates."""
    return {domain, *(sock_type(policy, domain, socket_class(p, policy.snap.polcaps), bools)
                      for p in PROTOCOLS)}


# -- which domains an overlay can touch ----------------------------------------------------
def overlay_touched(old: Policy, new: Policy) -> set[str] | None:
    """The domains whose fingerprint (everything but the port map) an overlay can change,
    when ``new`` is ``old`` with an overlay; None when unknown (then every domain's
    fingerprint is compared).  A port label change is not here: re-typed ports are
    compared for every domain that may use a type on either side."""
    from selnet.policy import overlay as ov

    if old.overlay is not None or new.overlay is None or new.base is not old.base:
        return None
    out: set[str] = set()
    for c in new.overlay.changes:
        if isinstance(c, (ov.AddPortcon, ov.ModifyPortcon, ov.DeletePortcon, ov.AddNetifcon,
                          ov.ModifyNetifcon, ov.DeleteNetifcon, ov.AddType, ov.AddAttribute,
                          ov.AddBoolean)):
            continue  # netifcons are no part of bind/connect; a new name alone changes nothing
        if isinstance(c, (ov.AddNodecon, ov.ModifyNodecon, ov.DeleteNodecon)):
            continue  # only the node of 0.0.0.0 is used: compared once in _globals
        if isinstance(c, ov.SetBoolean):
            for r in new.snap.rules:
                if r.cond is not None and c.name in r.cond:
                    out |= new.expand(r.source)
            for t in new.snap.transitions:
                if t.cond is not None and c.name in t.cond:
                    out |= new.expand(t.source)
        elif isinstance(c, (ov.AddRule, ov.AddTypeTransition)):
            out |= new.expand(c.source) | old.expand(c.source)
        elif isinstance(c, ov.AddAttributeMember):
            out |= new.expand(c.type)
            for r in new.snap.rules:
                if r.target == c.attribute or r.source == c.attribute:
                    out |= new.expand(r.source)
        elif isinstance(c, (ov.SetPermissive, ov.AddRoleType)):
            out |= new.expand(c.type)
        else:
            return None
    # A socket type in the set stands for the domains whose sockets carry it.
    socks = out & {t.default for t in new.snap.transitions if t.tclass in INET_SOCKET_CLASSES}
    if socks:
        bools = new.bool_values()
        for d in new.domains():
            if d not in out and socket_types(new, d, bools) & socks:
                out.add(d)
    return out
