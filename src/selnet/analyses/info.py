"""The network facts of a policy (`selnet info`)."""

from __future__ import annotations

from dataclasses import dataclass

from selnet.kernel.classes import NETWORK_CLASSES, obsolete_reason
from selnet.policy.index import Policy
from selnet.policy.snapshot import Context, Netifcon, Nodecon, Portcon

NETWORK_INITIAL_SIDS = ("port", "node", "netif", "unlabeled", "kernel", "netmsg")


@dataclass(frozen=True, slots=True)
class ObsoletePerms:
    tclass: str
    perms: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class NetworkFacts:
    path: str
    origin: str
    sha256: str
    version: int
    mls: bool
    handle_unknown: str
    polcaps: tuple[str, ...]
    initial_sids: dict[str, Context]
    portcons: tuple[Portcon, ...]
    nodecons: tuple[Nodecon, ...]
    netifcons: tuple[Netifcon, ...]
    network_classes: dict[str, tuple[str, ...]]  # declared network classes and their perms
    obsolete: tuple[ObsoletePerms, ...]  # declared, never checked by a current kernel
    rule_count: int
    conditional_rule_count: int
    boolean_count: int
    permissive_types: tuple[str, ...]
    typebounds: dict[str, str]
    cached: bool


def network_facts(policy: Policy) -> NetworkFacts:
    s = policy.snap
    obsolete: dict[tuple[str, str], list[str]] = {}
    declared: dict[str, tuple[str, ...]] = {}
    for cls in sorted(s.classes):
        if cls not in NETWORK_CLASSES:
            continue
        declared[cls] = tuple(sorted(s.classes[cls]))
        for perm in declared[cls]:
            why = obsolete_reason(cls, perm)
            if why is not None:
                obsolete.setdefault((cls, why), []).append(perm)
    src = policy.source
    return NetworkFacts(
        str(src.inputs[0]) if src.inputs else str(src.binary),
        src.origin,
        s.sha256,
        s.version,
        s.mls,
        s.handle_unknown,
        tuple(sorted(s.polcaps)),
        {k: s.initial_sids[k] for k in NETWORK_INITIAL_SIDS if k in s.initial_sids},
        tuple(s.portcons),
        tuple(s.nodecons),
        tuple(s.netifcons),
        declared,
        tuple(ObsoletePerms(cls, tuple(perms), why) for (cls, why), perms in sorted(obsolete.items())),
        len(s.rules),
        sum(1 for r in s.rules if r.cond is not None),
        len(s.booleans),
        tuple(sorted(s.permissive)),
        dict(sorted(s.bounds.items())),
        policy.from_cache,
    )
