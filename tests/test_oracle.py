"""Every decision selnet makes must agree with libsepol's own access computation.

selinux.audit2why.analyze wraps libsepol's sepol_compute_av_reason on the same
compiled policy: an independent oracle for TE rules, conditionals, constraints
and bounds.  Checks are drawn from real chains (every domain x the port types,
nodes and socket classes it touches) plus random pairs.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from selnet.decide.chain import evaluate
from selnet.decide.decision import Decider
from selnet.model.plan import Scenario, parse_endpoint
from selnet.policy.index import Policy
from selnet.policy.loader import load_policy
from selnet.policy.snapshot import Context

audit2why = pytest.importorskip("selinux.audit2why")

Case = tuple[str, str, str, str]  # (domain type, target type, class, perm)


def _cases(policy: Policy, n_chain: int, n_random: int, seed: int = 7) -> list[Case]:
    snap = policy.snap
    # Domains some user's role admits: libsepol refuses contexts no user/role allows.
    user_roles = set().union(*(u.roles for u in snap.users.values())) - {"object_r"}
    in_roles = set().union(*(t for r, t in snap.role_types.items() if r in user_roles))
    domains = sorted(d for d in snap.attr_types.get("domain", ()) if d in in_roles)
    port_types = sorted(snap.attr_types.get("port_type", ()))
    node_types = sorted(snap.attr_types.get("node_type", ())) or ["node_t"]
    cases: set[Case] = set()
    for dom in domains:
        # the port types and nodes its rules touch (through attributes too)
        for tclass in ("tcp_socket", "udp_socket"):
            for rule in policy.rules_from(tclass, dom):
                for t in policy.expand(rule.target):
                    for perm in ("name_bind", "name_connect", "node_bind") if tclass == "tcp_socket" \
                            else ("name_bind", "node_bind"):
                        is_port = t in port_types and perm != "node_bind"
                        if is_port or (t in node_types and perm == "node_bind"):
                            cases.add((dom, t, tclass, perm))
            for perm in ("create", "bind", "connect", "listen", "accept", "read", "write"):
                cases.add((dom, dom, tclass, perm))
        cases.add((dom, dom, "capability", "net_bind_service"))
        cases.add((dom, dom, "capability", "net_raw"))
    rnd = random.Random(seed)
    # Keep the oracle affordable (libsepol takes ~10 ms per denied check): a
    # fixed-seed sample of the real-chain checks, plus random pairs.
    chain_cases = sorted(cases)
    cases = set(rnd.sample(chain_cases, min(len(chain_cases), n_chain)))
    classes = [("tcp_socket", "name_connect"), ("tcp_socket", "name_bind"),
               ("udp_socket", "name_bind"), ("tcp_socket", "node_bind"), ("node", "sendto"),
               ("netif", "egress"), ("peer", "recv"), ("packet", "send")]
    targets = port_types + node_types + ["unlabeled_t", "netif_t", "netlabel_peer_t"]
    for _ in range(n_random):
        tclass, perm = rnd.choice(classes)
        cases.add((rnd.choice(domains), rnd.choice(targets), tclass, perm))
    return sorted(cases)


def _ctx(policy: Policy, t: str, domain: bool) -> Context:
    return policy.context_for_domain(t) if domain else policy.object_context(t)


def _compare(path: Path, min_cases: int, n_chain: int, n_random: int) -> None:
    policy = load_policy([str(path)])
    cases = _cases(policy, n_chain=n_chain, n_random=n_random)
    assert len(cases) >= min_cases, len(cases)
    decider = Decider(policy)
    audit2why.init(str(path))
    bad: list[str] = []
    boolean_cases = 0
    try:
        for dom, tgt, tclass, perm in cases:
            scon = _ctx(policy, dom, True)
            tcon = scon if tgt == dom else _ctx(policy, tgt, False)
            dec = decider.decide(scon, tcon, tclass, perm)
            rc, bools = audit2why.analyze(str(scon), str(tcon), tclass, [perm])
            if rc < 0:
                bad.append(f"{scon} {tcon} {tclass} {perm}: libsepol cannot evaluate (rc={rc})")
                continue
            if dec.allowed != (rc == audit2why.ALLOW):
                bad.append(f"{scon} {tcon} {tclass} {perm}: selnet {dec.reason}, libsepol rc={rc}")
                continue
            if rc == audit2why.BOOLEAN:
                boolean_cases += 1
                theirs = {name for name, _value in bools}
                ours = {f.settings[0][0] for f in dec.boolean_fixes if len(f.settings) == 1}
                if theirs != ours:
                    bad.append(f"{scon} {tcon} {tclass} {perm}: booleans {sorted(ours)} != {sorted(theirs)}")
            if rc == audit2why.CONSTRAINT and dec.reason != "constraint":
                bad.append(f"{scon} {tcon} {tclass} {perm}: libsepol says constraint, selnet {dec.reason}")
    finally:
        audit2why.finish()
    assert not bad, f"{len(bad)} disagreements of {len(cases)}:\n" + "\n".join(bad[:25])
    assert boolean_cases > 20  # the conditional logic was really exercised


@pytest.mark.refpolicy
def test_agrees_with_libsepol_standard(refpolicy_standard: Path) -> None:
    _compare(refpolicy_standard, 10_000, n_chain=8_000, n_random=2_100)


@pytest.mark.refpolicy
def test_agrees_with_libsepol_mcs(refpolicy_mcs: Path) -> None:
    _compare(refpolicy_mcs, 3_000, n_chain=2_500, n_random=600)


def test_agrees_with_libsepol_on_example_policy() -> None:
    from tests.conftest import EXAMPLE_CIL

    policy = load_policy([str(EXAMPLE_CIL)])
    decider = Decider(policy)
    audit2why.init(str(policy.source.binary))
    try:
        n = 0
        for dom in ("web_t", "db_t", "client_t", "helper_t", "admin_t", "newapp_t"):
            for op, ep in (("connect", "127.0.0.1:5432"), ("listen", "0.0.0.0:80"),
                           ("connect", "127.0.0.1:9100"), ("listen", "127.0.0.1:20000"),
                           ("connect", "127.0.0.1:11211"), ("listen", "[::ffff:127.0.0.1]:5432")):
                sc = Scenario(op, policy.context_for_domain(dom), parse_endpoint(ep))
                for r in evaluate(policy, sc, policy.bool_values()).results:
                    c = r.check
                    rc, _ = audit2why.analyze(str(c.subject), str(c.target), c.tclass, [c.perm])
                    # a permissive domain: libsepol reports the policy verdict too
                    assert decider.decide(c.subject, c.target, c.tclass, c.perm).allowed == (
                        rc == audit2why.ALLOW), (dom, op, ep, c)
                    n += 1
        assert n > 100
    finally:
        audit2why.finish()


@pytest.mark.refpolicy
def test_agrees_with_libsepol_debian_modular(debian_local: Path) -> None:
    """Debian's policy as semodule links it (CIL tool chain, local records included)."""
    _compare(debian_local, 1_800, n_chain=1_500, n_random=500)
