"""Score selnet's fix ranking on the corpus of real denials (tests/data/denials).

A fix matches an entry's accepted resolution when it makes the same change: the same
boolean set on; the same port, protocol and type relabeled (-a or -m); the same interface
called; or a rule (or interface) granting the accepted rule's source, target and class
the denied permission.  Entries the given policy cannot decide (their types are not in
it: a log from another policy) are counted apart, never as hits.  Nothing here knows an
answer: the ranking must earn each hit.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from selnet.audit.auditor import run_audit
from selnet.fix.engine import Fix
from selnet.policy.index import Policy
from selnet.policy.overlay import AddRule

CORPUS = Path(__file__).resolve().parent / "data" / "denials" / "corpus.toml"

_BOOL = re.compile(r"setsebool\s+(?:-P\s+)?(\S+)\s+(1|on|true)\b")
_PORT = re.compile(r"semanage port -[am] -t (\S+) -p (\S+) (\S+)")
_CALL = re.compile(r"^(\w+)\((\S+)\)$")
_RULE = re.compile(r"allow (\S+) (\S+):(\S+) ")


@dataclass(frozen=True, slots=True)
class Scored:
    id: str
    decidable: bool  # the policy knows the log's types and the denial is still denied
    rank: int | None  # 1-based rank of the first matching fix; None: no match


def _names(accepted: str) -> tuple[list[str], list[str]]:
    """(booleans, types) the accepted fix names."""
    if m := _BOOL.search(accepted):
        return [m.group(1)], []
    if m := _PORT.search(accepted):
        return [], [m.group(1)]
    if m := _RULE.search(accepted):
        return [], [m.group(1), m.group(2)]
    if m := _CALL.match(accepted.strip()):
        return [], [m.group(2)]
    return [], []


def applicable(policy: Policy, accepted: str) -> bool:
    """Does the accepted fix name only booleans and types this policy has?"""
    bools, types = _names(accepted)
    snap = policy.snap
    return all(b in snap.booleans for b in bools) and all(
        t == "self" or snap.resolve_type(t) is not None or t in snap.attr_types for t in types)


def _grants(name: str, domain: str) -> set[tuple[str, str, str]]:
    """What a refpolicy interface grants (target, class, perm), from selinux-policy-dev."""
    from selnet.fix.interfaces import InterfaceIndex

    ifx = InterfaceIndex.load()
    info = ifx.get(name) if ifx is not None else None
    if info is None:
        return set()
    return {(t, c, p) for t, c, p in info.grants}


def matches(fix: Fix, accepted: str) -> bool:
    if m := _BOOL.search(accepted):
        return fix.kind == "boolean" and (m.group(1), True) in fix.settings
    if m := _PORT.search(accepted):
        t, proto, ports = m.groups()
        low = ports.split("-")[0]
        return any(f"-t {t} -p {proto} {low}" in c for c in fix.commands)
    if m := _CALL.match(accepted.strip()):
        if any(c.startswith(m.group(1) + "(") for c in fix.commands):
            return True
        # the interface's port grants, given by a narrow rule (with a relabel, if any)
        grants = {g for g in _grants(m.group(1), m.group(2)) if g[1].endswith("_socket")}
        rules = {(c.target, c.tclass, p) for c in fix.changes if isinstance(c, AddRule)
                 for p in c.perms}
        return bool(rules) and rules <= grants
    if m := _RULE.search(accepted):
        source, target, tclass = m.groups()

        def same(t: str, src: str) -> bool:
            return t == target or (target == "self" and t == src)

        return any(isinstance(c, AddRule) and c.tclass == tclass and c.source == source
                   and same(c.target, c.source) for c in fix.changes)
    return False


def score(policy: Policy) -> list[Scored]:
    out = []
    for entry in tomllib.loads(CORPUS.read_text())["denial"]:
        accepted = entry["accepted"]
        if accepted == "none":
            continue
        rep = run_audit(policy, [entry["avc"].strip().splitlines()])
        groups = [g for g in rep.groups if g.still_denied and g.situation != "foreign-policy"]
        fixes = [f for g in groups for f in g.fixes if f.verified]
        if not groups or not applicable(policy, accepted):
            out.append(Scored(entry["id"], False, None))
            continue
        rank = next((i + 1 for i, f in enumerate(fixes) if matches(f, accepted)), None)
        out.append(Scored(entry["id"], True, rank))
    return out


def summary(scored: list[Scored]) -> dict[str, int]:
    dec = [s for s in scored if s.decidable]
    return {
        "with_accepted_fix": len(scored),
        "decidable": len(dec),
        "top1": sum(1 for s in dec if s.rank == 1),
        "top3": sum(1 for s in dec if s.rank is not None and s.rank <= 3),
        "found": sum(1 for s in dec if s.rank is not None),
    }
