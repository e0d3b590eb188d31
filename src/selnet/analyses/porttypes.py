"""Port types as a policy writer sees them: which types label ports, which are generic.

Derived from the policy, never from refpolicy names:

* **port types**: types used by a portcon, the ``port`` initial SID's type, and members of
  "port attributes" (attributes at least half of whose members have a portcon), which
  catches a package's port type whose label was never installed.
* **generic port types**: the ``port`` initial SID's type, or a type with a portcon range of
  at least ``GENERIC_RANGE`` (256) ports.  A service's port type covers a handful of ports;
  the catch-all types (refpolicy's reserved/hi_reserved/unreserved, Fedora's ephemeral)
  cover hundreds or thousands.  The widest service range in refpolicy is 65 ports.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

from selnet.policy.conditions import eval_cond
from selnet.policy.index import Policy

GENERIC_RANGE = 256


class PolicyFacts:
    """Policy-derived port-type sets used by diagnosis and fix search (computed once)."""

    def __init__(self, policy: Policy) -> None:
        snap = policy.snap
        self.policy = policy
        port_sid = snap.initial_sids.get("port")
        self.port_sid_type = port_sid.type if port_sid is not None else None
        self.portcons_of: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
        for pc in snap.portcons:
            self.portcons_of[pc.context.type].append((pc.protocol, pc.low, pc.high))
        labelled = set(self.portcons_of)
        self.port_attrs = frozenset(
            a for a, members in snap.attr_types.items()
            if len(members) >= 3 and len(members & labelled) * 2 >= len(members)
        )
        pt = set(labelled)
        for a in self.port_attrs:
            pt |= snap.attr_types[a]
        if self.port_sid_type:
            pt.add(self.port_sid_type)
        self.port_types = frozenset(pt)
        self.generic = frozenset(
            t for t, recs in self.portcons_of.items()
            if any(hi - lo + 1 >= GENERIC_RANGE for _, lo, hi in recs)
        ) | ({self.port_sid_type} if self.port_sid_type else set())
        self.domains = frozenset(policy.domains())
        unl = snap.initial_sids.get("unlabeled")
        self.unlabeled_type = unl.type if unl is not None else None

    def port_count(self, t: str) -> int:
        return sum(hi - lo + 1 for _, lo, hi in self.portcons_of.get(t, ()))

    def usable(self, domain: str, tclass: str, perm: str,
               bools: Mapping[str, bool]) -> dict[str, bool]:
        """Port types ``domain`` may ``perm`` with these booleans -> True when a rule names
        the type directly (its own service port), False when only through an attribute."""
        out: dict[str, bool] = {}
        for rule in self.policy.rules_from(tclass, domain):
            if rule.ruletype != "allow" or perm not in rule.perms:
                continue
            if rule.cond is not None and eval_cond(rule.cond, bools) != rule.branch:
                continue
            direct = rule.target not in self.policy.snap.attr_types
            for t in self.policy.expand(rule.target):
                if t in self.port_types:
                    out[t] = out.get(t, False) or direct
        return out
