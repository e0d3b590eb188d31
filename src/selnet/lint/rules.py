"""The lint rules: each finding is a rule ID, a place, and the kernel fact behind it.

Findings are typed; render/lint.py words them.  The facts come from the kernel layer:
``selnet.kernel.classes`` (live and obsolete permissions, with why) and
``selnet.kernel.checks`` (which check makes a permission matter, and when).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from selnet.kernel import checks
from selnet.kernel.classes import KERNEL_PERMS, OBSOLETE, PACKET_CLASSES, obsolete_reason
from selnet.lint.source import (
    Call,
    Rule,
    SourceFile,
    expand_paths,
    read_perm_sets,
    read_source,
)

if TYPE_CHECKING:
    from selnet.fix.interfaces import InterfaceIndex
    from selnet.policy.index import Policy

RULE_IDS = ("NET001", "NET002", "NET003", "NET004", "NET005", "NET006", "NET007")

# NET006: refpolicy's generic port types (corenetwork.te.in); a policy adds its own.
GENERIC_PORT_TYPES = frozenset({"port_t", "unreserved_port_t", "reserved_port_t",
                                "hi_reserved_port_t"})
# NET004: datagram classes: no listen()/accept() (inet_dgram_ops: sock_no_listen/accept).
DATAGRAM_CLASSES = frozenset({"udp_socket", "rawip_socket", "icmp_socket"})
DATAGRAM_NO_CONN_PERMS = {"listen": "listen.listen", "accept": "accept.accept"}
# NET003: interfaces that grant every port (of a range) at once.
ALL_PORTS_CALL = re.compile(r"^corenet_(?!dontaudit_)\w+_all_(?:unreserved_|reserved_)?ports$")
EVERY_PORT_ATTRIBUTE = "port_type"
CORENETWORK_IF = Path("/usr/share/selinux/devel/include/kernel/corenetwork.if")
# NET002: statements that configure labeled networking or SECMARK in the linted files.
_CONFIG_CALL = re.compile(r"^(?:netlabel_|ipsec_|corenet_relabelto_\w*packets?$)")
_CONFIG_GRANTS = frozenset({("packet", "relabelto"), ("association", "setcontext"),
                            ("association", "polmatch")})
_PORT_CHECKS = {"name_bind": "bind.name_bind", "name_connect": "connect.name_connect",
                "node_bind": "bind.node_bind"}


@dataclass(frozen=True, slots=True)
class Finding:
    rule: str  # one of RULE_IDS
    file: str
    line: int
    tclass: str = ""
    perms: tuple[str, ...] = ()
    target: str = ""
    interface: str = ""  # the interface call the finding comes through, if any
    check_ids: tuple[str, ...] = ()  # selnet.kernel.checks entries behind the fact
    origin: str = ""  # NET005 "kernel"|"policy"; NET006 "refpolicy"|"policy"|attribute;
    #                   NET007 "file:line" of the deprecation marker, or "obsolete-only"


@dataclass(frozen=True)
class LintReport:
    files: tuple[str, ...]
    findings: tuple[Finding, ...]
    configured: bool  # the files configure labeled networking or SECMARK (NET002)
    with_policy: bool

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(RULE_IDS, 0)
        for f in self.findings:
            out[f.rule] += 1
        return out


@dataclass
class LintContext:
    """What the rules know beyond the files: perm sets, interfaces, the policy's facts."""

    perm_sets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    deprecated: dict[str, str] = field(default_factory=dict)  # interface -> "file:line"
    index: InterfaceIndex | None = None
    policy_classes: Mapping[str, frozenset[str]] | None = None
    generic_ports: frozenset[str] = GENERIC_PORT_TYPES
    policy_generic: frozenset[str] = frozenset()

    @classmethod
    def default(cls, policy: Policy | None = None) -> LintContext:
        from selnet.fix.interfaces import InterfaceIndex

        ctx = cls(perm_sets=read_perm_sets(), deprecated=deprecated_interfaces(CORENETWORK_IF),
                  index=InterfaceIndex.load())
        if policy is not None:
            from selnet.analyses.porttypes import PolicyFacts

            ctx.policy_classes = policy.snap.classes
            ctx.policy_generic = PolicyFacts(policy).generic - GENERIC_PORT_TYPES
        return ctx


_IF_DEF = re.compile(r"^(?:interface|template)\(\s*`(\w+)'", re.M)


def deprecated_interfaces(path: Path) -> dict[str, str]:
    """Interfaces whose body calls refpolicywarn(... deprecated ...) -> "file:line"."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    out: dict[str, str] = {}
    defs = list(_IF_DEF.finditer(text))
    for n, m in enumerate(defs):
        end = defs[n + 1].start() if n + 1 < len(defs) else len(text)
        body = text[m.end():end]
        warn = re.search(r"refpolicywarn\([^\n]*deprecated", body)
        if warn is not None:
            out[m.group(1)] = f"{path.name}:{text.count(chr(10), 0, m.end() + warn.start()) + 1}"
    return out


# -- the rules ---------------------------------------------------------------------------

def _skip(word: str) -> bool:
    return "$" in word or word.endswith("_perms")


def _checks_for(tclass: str, perms: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(c.id for p in perms for c in checks.for_avc(tclass, p)))


class _Linter:
    def __init__(self, ctx: LintContext, files: list[SourceFile]) -> None:
        self.ctx = ctx
        self.files = files
        members: dict[str, set[str]] = {}
        for f in files:
            for a in f.attrsets:
                members.setdefault(a.attribute, set()).update(a.members)
        self.attr_members = members
        self.configured = any(self._configures(f) for f in files)

    # which grants a call makes to its first argument, from the installed interfaces
    def grants(self, call: Call) -> frozenset[tuple[str, str, str]]:
        info = self.ctx.index.get(call.name) if self.ctx.index is not None else None
        return info.grants if info is not None else frozenset()

    def _configures(self, f: SourceFile) -> bool:
        for r in f.rules:
            if r.kind == "allow" and any((c, p) in _CONFIG_GRANTS
                                         for c in r.classes for p in r.perms):
                return True
        for call in f.calls:
            if _CONFIG_CALL.match(call.name):
                return True
            if any((c, p) in _CONFIG_GRANTS for _, c, p in self.grants(call)):
                return True
        return False

    def generic(self, target: str) -> str | None:
        """Why a target counts as a generic port type (NET006), or None."""
        if target in self.ctx.generic_ports:
            return "refpolicy"
        if target in self.ctx.policy_generic:
            return "policy"
        if target in self.attr_members and (
            self.attr_members[target] & (self.ctx.generic_ports | self.ctx.policy_generic)
        ):
            return target
        return None

    def run(self) -> Iterator[Finding]:
        for f in self.files:
            for r in f.rules:
                yield from self.rule(r)
            for c in f.calls:
                yield from self.call(c)

    def _perm_findings(self, file: str, line: int, kind: str, targets: Iterable[str],
                       tclass: str, perms: tuple[str, ...], interface: str = ""
                       ) -> Iterator[Finding]:
        """NET001, NET002, NET004, NET005, NET006 for one class of a rule or call grant."""
        if _skip(tclass):
            return
        perms = tuple(p for p in perms if not _skip(p))
        obsolete = tuple(p for p in perms if (tclass, p) in OBSOLETE)
        if obsolete:
            yield Finding("NET001", file, line, tclass, obsolete, interface=interface)
        live = [p for p in perms if p not in obsolete]
        unknown: list[str] = []
        origin = ""
        pc = self.ctx.policy_classes
        if pc is not None and tclass in pc:
            unknown = [p for p in live if p not in pc[tclass]]
            origin = "policy"
        elif tclass in KERNEL_PERMS:
            unknown = [p for p in live if obsolete_reason(tclass, p) is not None]
            origin = "kernel"
        if unknown:
            yield Finding("NET005", file, line, tclass, tuple(unknown), interface=interface,
                          origin=origin)
        live = [p for p in live if p not in unknown]
        if tclass in PACKET_CLASSES and live and not self.configured:
            yield Finding("NET002", file, line, tclass, tuple(live), interface=interface,
                          check_ids=_checks_for(tclass, live))
        if tclass in DATAGRAM_CLASSES:
            dg = tuple(p for p in live if p in DATAGRAM_NO_CONN_PERMS)
            if dg:
                yield Finding("NET004", file, line, tclass, dg, interface=interface,
                              check_ids=tuple(DATAGRAM_NO_CONN_PERMS[p] for p in dg))
        if kind == "allow" and "name_bind" in live:
            for t in targets:
                why = self.generic(t)
                if why is not None:
                    yield Finding("NET006", file, line, tclass, ("name_bind",), t,
                                  interface=interface, check_ids=("bind.name_bind",),
                                  origin=why)

    def rule(self, r: Rule) -> Iterator[Finding]:
        for c in r.classes:
            yield from self._perm_findings(r.file, r.line, r.kind, r.targets, c, r.perms)
        if r.kind == "allow" and EVERY_PORT_ATTRIBUTE in r.targets:
            for c in r.classes:
                port_perms = tuple(p for p in r.perms if p in _PORT_CHECKS)
                if port_perms:
                    yield Finding("NET003", r.file, r.line, c, port_perms, EVERY_PORT_ATTRIBUTE,
                                  check_ids=tuple(_PORT_CHECKS[p] for p in port_perms))

    def call(self, call: Call) -> Iterator[Finding]:
        if not call.name.startswith("corenet_"):
            return
        grants = self.grants(call)
        marker = self.ctx.deprecated.get(call.name)
        if marker is None and "_sendrecv_" in call.name and grants and all(
                (c, p) in OBSOLETE for _, c, p in grants):
            marker = "obsolete-only"
        if marker is not None:
            yield Finding("NET007", call.file, call.line, interface=call.name, origin=marker)
            return
        if ALL_PORTS_CALL.match(call.name):
            port = sorted({(c, p) for _, c, p in grants if p in _PORT_CHECKS})
            yield Finding("NET003", call.file, call.line,
                          ",".join(dict.fromkeys(c for c, _ in port)),
                          tuple(dict.fromkeys(p for _, p in port)), EVERY_PORT_ATTRIBUTE,
                          interface=call.name,
                          check_ids=tuple(dict.fromkeys(_PORT_CHECKS[p] for _, p in port)))
        by_class: dict[tuple[str, str], list[str]] = {}
        for t, c, p in sorted(grants):
            by_class.setdefault((c, t), []).append(p)
        seen: set[Finding] = set()
        for (c, t), perms in by_class.items():
            for f in self._perm_findings(call.file, call.line, "allow", (t,), c, tuple(perms),
                                         interface=call.name):
                if f.rule == "NET002":  # one per class, whatever the target
                    f = Finding(f.rule, f.file, f.line, f.tclass, f.perms, "", f.interface,
                                f.check_ids)
                if f not in seen:
                    seen.add(f)
                    yield f


def lint_files(files: list[SourceFile], ctx: LintContext, *,
               with_policy: bool = False) -> LintReport:
    linter = _Linter(ctx, files)
    findings = sorted(set(linter.run()), key=lambda f: (f.file, f.line, f.rule, f.tclass,
                                                        f.target, f.perms))
    return LintReport(tuple(f.path for f in files), tuple(findings), linter.configured,
                      with_policy)


def lint_paths(paths: Iterable[str], ctx: LintContext | None = None, *,
               policy: Policy | None = None) -> LintReport:
    """Read every file first (an unreadable one is an InputError), then lint them together."""
    ctx = ctx if ctx is not None else LintContext.default(policy)
    files = [read_source(p, ctx.perm_sets) for p in expand_paths(paths)]
    return lint_files(files, ctx, with_policy=policy is not None)
