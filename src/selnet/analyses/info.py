"""The network facts of a policy (`selnet info`)."""

from __future__ import annotations

from collections import defaultdict

from selnet.kernel.classes import NETWORK_CLASSES, PACKET_CLASSES, obsolete_reason
from selnet.model.labels import record_json
from selnet.policy.index import Policy

NETWORK_INITIAL_SIDS = ("port", "node", "netif", "unlabeled", "kernel", "netmsg")


def network_facts(policy: Policy) -> dict[str, object]:
    s = policy.snap
    obsolete: dict[tuple[str, str], list[str]] = defaultdict(list)
    declared: dict[str, list[str]] = {}
    for cls in sorted(s.classes):
        if cls not in NETWORK_CLASSES and cls not in PACKET_CLASSES:
            continue
        declared[cls] = sorted(s.classes[cls])
        for perm in sorted(s.classes[cls]):
            why = obsolete_reason(cls, perm)
            if why is not None:
                obsolete[(cls, why)].append(perm)
    return {
        "path": str(policy.source.inputs[0]) if policy.source.inputs else str(policy.source.binary),
        "origin": policy.source.origin,
        "sha256": s.sha256,
        "policy_version": s.version,
        "mls": s.mls,
        "handle_unknown": s.handle_unknown,
        "policy_capabilities": sorted(s.polcaps),
        "initial_sids": {
            k: str(s.initial_sids[k]) for k in NETWORK_INITIAL_SIDS if k in s.initial_sids
        },
        "portcon_count": len(s.portcons),
        "nodecon_count": len(s.nodecons),
        "netifcon_count": len(s.netifcons),
        "portcons": [record_json(r) for r in s.portcons],
        "nodecons": [record_json(r) for r in s.nodecons],
        "netifcons": [record_json(r) for r in s.netifcons],
        "network_classes": declared,
        "obsolete_permissions": [
            {"class": cls, "perms": perms, "reason": why}
            for (cls, why), perms in sorted(obsolete.items())
        ],
        "rule_count": len(s.rules),
        "conditional_rule_count": sum(1 for r in s.rules if r.cond is not None),
        "boolean_count": len(s.booleans),
        "permissive_types": sorted(s.permissive),
        "typebounds": dict(sorted(s.bounds.items())),
        "cached": policy.from_cache,
    }
