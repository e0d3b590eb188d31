"""One change overlay: it must decide exactly like the policy recompiled with the same change.

Each change is written twice: as overlay changes applied to the compiled base,
and as CIL compiled with secilc into a new binary.  The two policies are then
compared on many single decisions (every domain against every type, for the
network permissions), on whole check chains (connect/listen/bind/send over
every portcon boundary +-1), and on port/node/netif labels.

secilc sorts portcons/nodecons by specificity (cil_post.c) while a local
``-a`` record is seen first; the changes below are chosen where first match is
the same either way (the overlay module docstring explains the difference).
"""

from __future__ import annotations

import fcntl
import hashlib
import ipaddress
import os
import pickle
import random
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from selnet.decide.chain import ChainResult, evaluate
from selnet.decide.decision import Decider, Decision
from selnet.errors import InputError
from selnet.model.labels import netif_label, node_label, port_label
from selnet.model.plan import Scenario, parse_endpoint
from selnet.policy.index import Policy
from selnet.policy.loader import load_policy
from selnet.policy.overlay import (
    AddAttribute,
    AddAttributeMember,
    AddBoolean,
    AddNetifcon,
    AddNodecon,
    AddPortcon,
    AddRoleType,
    AddRule,
    AddType,
    AddTypeTransition,
    Change,
    DeleteNetifcon,
    DeleteNodecon,
    DeletePortcon,
    ModifyNetifcon,
    ModifyNodecon,
    ModifyPortcon,
    Overlay,
    SetBoolean,
    SetPermissive,
    _constraint_operands,
)
from selnet.policy.snapshot import Context
from selnet.policy.source import PolicySource, sha256_file
from tests.conftest import EXAMPLE_CIL, ROOT, CompileCil

# -- the comparison harness ------------------------------------------------------------
# (class, permission) asked of every domain against every type, and of every domain on itself
TARGET_PERMS = [
    ("tcp_socket", "name_bind"), ("tcp_socket", "name_connect"), ("tcp_socket", "node_bind"),
    ("udp_socket", "name_bind"), ("sctp_socket", "name_bind"), ("dccp_socket", "name_connect"),
    ("node", "sendto"), ("node", "recvfrom"), ("netif", "egress"), ("peer", "recv"), ("packet", "recv"),
]
SELF_PERMS = [
    *(("tcp_socket", p) for p in ("create", "connect", "listen", "accept", "bind", "read", "write")),
    *(("udp_socket", p) for p in ("create", "bind", "write")),
    ("capability", "net_bind_service"), ("cap_userns", "net_bind_service"),
]
Case = tuple[Context, Context, str, str]


def verdict(d: Decision) -> tuple[object, ...]:
    """Everything a decision says, minus how the compiler happened to split its rules."""
    return (d.allowed, d.reason, d.enforced, d.silent, d.audited, d.constraint,
            frozenset(f.settings for f in d.boolean_fixes))


def chain_verdict(ch: ChainResult) -> tuple[object, ...]:
    return (ch.allowed, ch.effective, ch.plan.sclass, ch.plan.sock, tuple(
        (r.check.step, r.check.tclass, r.check.perm, r.check.subject, r.check.target, r.reached,
         verdict(r.decision))
        for r in ch.results))


def ctx_of(policy: Policy, t: str) -> Context:
    return policy.context_for_domain(t) if t in policy.domains() else policy.object_context(t)


def decision_cases(policy: Policy, domains: Iterable[str], targets: Iterable[str]) -> list[Case]:
    out: list[Case] = []
    targets = list(targets)
    for dom in domains:
        scon = policy.context_for_domain(dom)
        out.extend((scon, scon, c, p) for c, p in SELF_PERMS)
        for t in targets:
            tcon = scon if t == dom else policy.object_context(t)
            out.extend((scon, tcon, c, p) for c, p in TARGET_PERMS)
    return out


def boundary_ports(*policies: Policy) -> list[int]:
    ports = set()
    for p in policies:
        for pc in p.snap.portcons:
            ports |= {pc.low - 1, pc.low, pc.high, pc.high + 1}
    return sorted(x for x in ports if 1 <= x <= 65535)


def boundary_addresses(*policies: Policy) -> list[str]:
    out = {"127.0.0.1", "0.0.0.0", "::1", "::", "192.0.2.1"}
    for p in policies:
        for nc in p.snap.nodecons:
            net = ipaddress.ip_network(f"{nc.address}/{nc.prefixlen}")
            first, last = int(net.network_address), int(net.broadcast_address)
            top = (1 << net.max_prefixlen) - 1
            for v in (first - 1, first, first + 1, last, last + 1):
                if 0 <= v <= top:
                    out.add(str(ipaddress.ip_address(v) if nc.family == 4
                                else ipaddress.IPv6Address(v)))
    return sorted(out)


def scenarios(policy: Policy, domains: Iterable[str], ports: list[int]) -> list[Scenario]:
    ops = [("connect", "127.0.0.1:{}/tcp"), ("listen", "0.0.0.0:{}/tcp"), ("bind", "10.1.2.3:{}/udp")]
    more = [("connect", "[::1]:{}/sctp"), ("send", "127.0.0.1:{}/udp")]
    out: list[Scenario] = []
    for dom in domains:
        d = policy.context_for_domain(dom)
        for i, port in enumerate(ports):
            out.extend(Scenario(op, d, parse_endpoint(ep.format(port)))
                       for op, ep in (ops + more if i % 4 == 0 else ops))
    return out


def assert_same(a: Policy, b: Policy, cases: list[Case], scs: list[Scenario], ports: list[int],
                addresses: list[str], netifs: Iterable[str] = ("lo", "eth0", "eth1")) -> None:
    """``a`` (the overlay) and ``b`` (recompiled) give the same answers everywhere."""
    bad: list[str] = []
    da, db = Decider(a), Decider(b)
    for case in cases:
        x, y = verdict(da.decide(*case)), verdict(db.decide(*case))
        if x != y:
            bad.append(f"decide {case[0].type} {case[1].type} {case[2]} {case[3]}: {x} != {y}")
    ba, bb = a.bool_values(), b.bool_values()
    assert ba == bb
    for sc in scs:
        x, y = chain_verdict(evaluate(a, sc, ba)), chain_verdict(evaluate(b, sc, bb))
        if x != y:
            bad.append(f"chain {sc.operation} {sc.domain.type} {sc.endpoint}: {x} != {y}")
    for proto in ("tcp", "udp", "sctp", "dccp"):
        for port in ports:
            x, y = port_label(a, proto, port).context, port_label(b, proto, port).context
            if x != y:
                bad.append(f"port {port}/{proto}: {x} != {y}")
    for addr in addresses:
        ip = ipaddress.ip_address(addr)
        if (x := node_label(a, ip).context) != (y := node_label(b, ip).context):
            bad.append(f"node {addr}: {x} != {y}")
    for name in netifs:
        if (x := netif_label(a, name).context) != (y := netif_label(b, name).context):
            bad.append(f"netif {name}: {x} != {y}")
    assert not bad, f"{len(bad)} differences:\n" + "\n".join(bad[:20])


def compare(overlaid: Policy, recompiled: Policy, chain_domains: Iterable[str]) -> int:
    """Full comparison on a small policy: every domain x every type; returns the case count."""
    assert overlaid.domains() == recompiled.domains()
    assert set(overlaid.snap.type_attrs) == set(recompiled.snap.type_attrs)
    assert overlaid.snap.permissive == recompiled.snap.permissive
    types = sorted(recompiled.snap.type_attrs)
    cases = decision_cases(recompiled, recompiled.domains(), types)
    ports = boundary_ports(overlaid, recompiled)
    assert_same(overlaid, recompiled, cases, scenarios(recompiled, chain_domains, ports), ports,
                boundary_addresses(overlaid, recompiled))
    return len(cases)


# -- the bundled example policy (MCS) ------------------------------------------------------
EXAMPLE_TEXT = EXAMPLE_CIL.read_text()


def _edit(text: str, edits: Iterable[tuple[str, str]]) -> str:
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


@pytest.fixture(scope="module")
def example() -> Policy:
    return load_policy([str(EXAMPLE_CIL)])


@pytest.fixture(scope="module")
def compile_example(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Policy]:
    out_dir = tmp_path_factory.mktemp("overlay-example")

    def compile_(text: str) -> Policy:
        key = hashlib.sha256(text.encode()).hexdigest()[:16]
        src, out = out_dir / f"{key}.cil", out_dir / f"{key}.policy"
        if not out.exists():
            src.write_text(text)
            proc = subprocess.run(["secilc", "-o", str(out), "-f", os.devnull, str(src)],
                                  capture_output=True, text=True, check=False)
            assert proc.returncode == 0, proc.stderr
        return load_policy([str(out)])

    return compile_


CACHE_T = (
    AddType("cache_t", ("domain", "mcs_constrained_type", "any_type")),
    AddRoleType("system_r", "cache_t"),
    AddType("cache_port_t", ("port_type", "defined_port_type", "any_type")),
    AddPortcon("tcp", 11300, 11310, "cache_port_t"),
    AddRule("allow", "cache_t", "self", "tcp_socket", frozenset({"create", "connect", "bind"})),
    AddRule("allow", "cache_t", "port_type", "tcp_socket", frozenset({"name_connect"})),
    AddRule("allow", "cache_t", "cache_port_t", "tcp_socket", frozenset({"name_bind"})),
)
CACHE_T_CIL = """
(type cache_t) (typeattributeset domain (cache_t)) (typeattributeset mcs_constrained_type (cache_t))
(type cache_port_t) (typeattributeset port_type (cache_port_t))
(typeattributeset defined_port_type (cache_port_t))
(portcon tcp (11300 11310) (system_u object_r cache_port_t low_low))
(allow cache_t self (tcp_socket (create connect bind)))
(allow cache_t port_type (tcp_socket (name_connect)))
(allow cache_t cache_port_t (tcp_socket (name_bind)))
"""  # any_type is (all) and system_r has every domain in the example: both come by themselves

Witness = Callable[[Policy], object]
Variant = tuple[tuple[Change, ...], list[tuple[str, str]], str, Witness, object, object]
EXAMPLE_VARIANTS: dict[str, Variant] = {
    # name: (changes, CIL edits, CIL appended, witness, its value on the base, on the change)
    "portcon-added-inside-range": (
        (AddPortcon("tcp", 8500, 8500, "db_port_t"), AddPortcon("tcp", 8400, 8410, "memcache_port_t")),
        [], "(portcon tcp 8500 (system_u object_r db_port_t low_low))\n"
            "(portcon tcp (8400 8410) (system_u object_r memcache_port_t low_low))",
        lambda p: (port_label(p, "tcp", 8500).type, port_label(p, "tcp", 8410).type),
        ("http_cache_port_t", "http_cache_port_t"), ("db_port_t", "memcache_port_t"),
    ),
    "portcon-modified": (
        (ModifyPortcon("tcp", 443, 443, "system_u:object_r:db_port_t:s0"),),
        [("(portcon tcp 443           (system_u object_r http_port_t low_low))",
          "(portcon tcp 443           (system_u object_r db_port_t low_low))")], "",
        lambda p: port_label(p, "tcp", 443).type, "http_port_t", "db_port_t",
    ),
    "portcon-deleted": (
        (DeletePortcon("tcp", 5432, 5432),),
        [("(portcon tcp 5432          (system_u object_r db_port_t low_low))", "")], "",
        lambda p: port_label(p, "tcp", 5432).type, "db_port_t", "unreserved_port_t",
    ),
    "nodecon-added": (
        (AddNodecon("10.1.0.0", "255.255.0.0", "lo_node_t"), AddNodecon("fd00::", "8", "internal_node_t")),
        [], "(nodecon (10.1.0.0) (255.255.0.0) (system_u object_r lo_node_t low_low))\n"
            "(nodecon (fd00::) (ff00::) (system_u object_r internal_node_t low_low))",
        lambda p: node_label(p, ipaddress.ip_address("10.1.2.3")).type, "internal_node_t", "lo_node_t",
    ),
    "nodecon-modified-netifcon-added": (
        (ModifyNodecon("10.0.0.0", "8", "tenant_node_t"), AddNetifcon("eth1", "lo_netif_t")),
        [("(nodecon (10.0.0.0) (255.0.0.0)        (system_u object_r internal_node_t low_low))",
          "(nodecon (10.0.0.0) (255.0.0.0)        (system_u object_r tenant_node_t low_low))")],
        "(netifcon eth1 (system_u object_r lo_netif_t low_low) (system_u object_r lo_netif_t low_low))",
        lambda p: (node_label(p, ipaddress.ip_address("10.9.9.9")).type, netif_label(p, "eth1").type),
        ("internal_node_t", "netif_t"), ("tenant_node_t", "lo_netif_t"),
    ),
    "rule-through-attribute": (
        (AddRule("allow", "domain", "http_cache_port_t", "tcp_socket", frozenset({"name_bind"})),
         AddRule("allow", "client_t", "unreserved_port_type", "tcp_socket", frozenset({"name_bind"})),
         AddRule("dontaudit", "db_t", "port_type", "tcp_socket", frozenset({"name_connect"}))),
        [], "(allow domain http_cache_port_t (tcp_socket (name_bind)))\n"
            "(allow client_t unreserved_port_type (tcp_socket (name_bind)))\n"
            "(dontaudit db_t port_type (tcp_socket (name_connect)))",
        lambda p: Decider(p).decide(p.context_for_domain("dns_t"), p.object_context("http_cache_port_t"),
                                    "tcp_socket", "name_bind").allowed, False, True,
    ),
    "new-type-with-attributes": (
        CACHE_T, [], CACHE_T_CIL,
        # MCS applies to the new member of mcs_constrained_type: s0 may not reach tenant_port_t (s0:c1)
        lambda p: p.snap.resolve_type("cache_t") and Decider(p).decide(
            p.context_for_domain("cache_t"), port_label(p, "tcp", 9100).context,
            "tcp_socket", "name_connect").reason, None, "constraint",
    ),
    "permissive-type": (
        (SetPermissive("client_t"),), [], "(typepermissive client_t)",
        lambda p: "client_t" in p.snap.permissive, False, True,
    ),
    "boolean-defaults-flipped": (
        (SetBoolean("web_can_connect_db", True), SetBoolean("db_listen_local_only", False)),
        [("(boolean web_can_connect_db false)", "(boolean web_can_connect_db true)"),
         ("(boolean db_listen_local_only true)", "(boolean db_listen_local_only false)")], "",
        lambda p: (p.bool_values()["web_can_connect_db"], p.bool_values()["db_listen_local_only"]),
        (False, True), (True, False),
    ),
}


@pytest.mark.parametrize("name", sorted(EXAMPLE_VARIANTS))
def test_example_overlay_decides_like_recompiled(
    name: str, example: Policy, compile_example: Callable[[str], Policy]
) -> None:
    changes, edits, extra, witness, before, after = EXAMPLE_VARIANTS[name]
    overlaid = Overlay(changes).apply(example)
    recompiled = compile_example(_edit(EXAMPLE_TEXT, edits) + "\n" + extra + "\n")
    assert witness(example) == before
    assert witness(overlaid) == after == witness(recompiled)
    # chains for a server, a client with MCS, a labeled-socket domain (and the new domain)
    n = compare(overlaid, recompiled, ("web_t", "client_t", "helper_t",
                                       *(("cache_t",) if "cache_t" in overlaid.snap.type_attrs else ())))
    assert n > 4_000
    assert overlaid.base is example and overlaid.source == example.source
    assert overlaid.describe().startswith(str(EXAMPLE_CIL))


def test_example_all_changes_at_once(example: Policy, compile_example: Callable[[str], Policy]) -> None:
    changes: list[Change] = []
    edits: list[tuple[str, str]] = []
    extra = ""
    for name in sorted(EXAMPLE_VARIANTS):
        c, e, x, *_ = EXAMPLE_VARIANTS[name]
        changes += c
        edits += e
        extra += x + "\n"
    overlaid = Overlay(tuple(changes)).apply(example)
    compare(overlaid, compile_example(_edit(EXAMPLE_TEXT, edits) + "\n" + extra),
            ("web_t", "client_t", "cache_t"))


def test_overlays_stack(example: Policy, compile_example: Callable[[str], Policy]) -> None:
    """An overlay on an overlaid policy is both overlays on the loaded policy."""
    one = Overlay(CACHE_T).apply(example)
    two = Overlay((SetPermissive("cache_t"), ModifyPortcon("tcp", 11300, 11310, "http_port_t"))).apply(one)
    assert two.base is example and two.overlay is not None and len(two.overlay) == len(CACHE_T) + 2
    text = CACHE_T_CIL.replace("cache_port_t low_low", "http_port_t low_low") + "(typepermissive cache_t)\n"
    compare(two, compile_example(EXAMPLE_TEXT + text), ("cache_t", "web_t"))
    # the modified record is a first-seen local record; the first overlay's one is shadowed? no:
    # it was itself local, so it changed in place
    assert [pc.position for pc in two.snap.portcons if pc.low == 11300] == [-1]


# -- small policies on tests/policies/base.cil --------------------------------------------
SMALL = """
(handleunknown deny)
(policycap network_peer_controls) (policycap extended_socket_class)
(type web_t) (type db_t) (type app_t) (type helper_t) (type helper_sock_t)
(typeattributeset domain (web_t db_t app_t helper_t))
(roletype system_r web_t) (roletype system_r db_t) (roletype system_r app_t) (roletype system_r helper_t)
(roletype system_r helper_sock_t)
(typeattribute client_domain) (typeattributeset client_domain (app_t helper_t))
(typeattribute mcs_constrained) (typeattributeset mcs_constrained (web_t))
(type http_port_t) (type db_port_t) (type wide_port_t) (type reserved_port_t)
(typeattributeset port_type (port_t http_port_t db_port_t wide_port_t reserved_port_t))
(type lo_node_t) (type net_node_t) (typeattributeset node_type (node_t lo_node_t net_node_t))
(type lo_netif_t) (typeattributeset netif_type (netif_t lo_netif_t))
(allow web_t self (tcp_socket (create connect listen accept bind read write getattr setopt shutdown)))
(allow db_t self (tcp_socket (create connect listen accept bind read write getattr setopt shutdown)))
(allow app_t self (tcp_socket (create connect bind read write getattr)))
(allow app_t self (udp_socket (create connect bind read write getattr)))
(allow web_t self (udp_socket (create connect bind read write getattr)))
(allow web_t http_port_t (tcp_socket (name_bind)))
(allow web_t node_type (tcp_socket (node_bind)))
(allow web_t self (capability (net_bind_service)))
(allow client_domain http_port_t (tcp_socket (name_connect)))
(allow db_t db_port_t (tcp_socket (name_bind)))
(allow db_t lo_node_t (tcp_socket (node_bind)))
(allow domain node_type (node (sendto recvfrom)))
(allow domain netif_type (netif (egress ingress)))
(typetransition helper_t helper_t tcp_socket helper_sock_t)
(allow helper_t helper_sock_t (tcp_socket (create connect read write)))
(allow helper_sock_t db_port_t (tcp_socket (name_connect)))
(boolean web_connect_db false)
(booleanif web_connect_db (true (allow web_t db_port_t (tcp_socket (name_connect)))))
(boolean lockdown false)
(booleanif (and (not lockdown) web_connect_db)
    (true (allow web_t port_type (tcp_socket (name_connect))))
    (false (dontaudit web_t port_type (tcp_socket (name_connect)))))
(dontaudit app_t port_type (tcp_socket (name_bind)))
(auditallow web_t http_port_t (tcp_socket (name_bind)))
(mlsconstrain (tcp_socket (name_bind name_connect node_bind)) (or (dom h1 h2) (neq t1 mcs_constrained)))
(portcon tcp 80 (system_u object_r http_port_t low_low))
(portcon tcp (8000 8999) (system_u object_r wide_port_t low_low))
(portcon tcp 5432 (system_u object_r db_port_t low_low))
(portcon tcp (1 1023) (system_u object_r reserved_port_t low_low))
(portcon udp (1 1023) (system_u object_r reserved_port_t low_low))
(nodecon (127.0.0.1) (255.255.255.255) (system_u object_r lo_node_t low_low))
(nodecon (10.0.0.0) (255.0.0.0) (system_u object_r net_node_t low_low))
(netifcon lo (system_u object_r lo_netif_t low_low) (system_u object_r lo_netif_t low_low))
"""
SMALL_VARIANTS: dict[str, tuple[tuple[Change, ...], list[tuple[str, str]], str]] = {
    "portcon-added": ((AddPortcon("tcp", 8080, 8080, "http_port_t"), AddPortcon("udp", 53, 53, "db_port_t")),
                      [], "(portcon tcp 8080 (system_u object_r http_port_t low_low))\n"
                          "(portcon udp 53 (system_u object_r db_port_t low_low))"),
    "portcon-modified": ((ModifyPortcon("tcp", 5432, 5432, "http_port_t"),),
                         [("(portcon tcp 5432 (system_u object_r db_port_t low_low))",
                           "(portcon tcp 5432 (system_u object_r http_port_t low_low))")], ""),
    "nodecon-added-deleted": (
        (AddNodecon("10.1.2.0", "24", "lo_node_t"), DeleteNodecon("127.0.0.1", "32")),
        [("(nodecon (127.0.0.1) (255.255.255.255) (system_u object_r lo_node_t low_low))", "")],
        "(nodecon (10.1.2.0) (255.255.255.0) (system_u object_r lo_node_t low_low))"),
    "netifcon-modified": ((ModifyNetifcon("lo", "netif_t"), AddNetifcon("eth0", "lo_netif_t")),
                          [("(netifcon lo (system_u object_r lo_netif_t low_low) "
                            "(system_u object_r lo_netif_t low_low))",
                            "(netifcon lo (system_u object_r netif_t low_low) "
                            "(system_u object_r netif_t low_low))")],
                          "(netifcon eth0 (system_u object_r lo_netif_t low_low) "
                          "(system_u object_r lo_netif_t low_low))"),
    "rule-through-attributes": (
        (AddRule("allow", "client_domain", "port_type", "tcp_socket", frozenset({"name_bind"})),
         AddRule("auditallow", "client_domain", "http_port_t", "tcp_socket", frozenset({"name_connect"})),
         AddRule("allow", "app_t", "db_port_t", "tcp_socket", frozenset({"name_connect"}),
                 ("lockdown", "!"), True)),
        [], "(allow client_domain port_type (tcp_socket (name_bind)))\n"
            "(auditallow client_domain http_port_t (tcp_socket (name_connect)))\n"
            "(booleanif (not lockdown) (true (allow app_t db_port_t (tcp_socket (name_connect)))))"),
    "new-types": (
        (AddType("new_t", ("client_domain",)), AddRoleType("system_r", "new_t"),
         AddAttributeMember("new_t", "domain"), AddAttributeMember("new_t", "mcs_constrained"),
         AddRule("allow", "new_t", "self", "tcp_socket", frozenset({"create", "connect", "bind"})),
         AddType("new_port_t"), AddAttribute("new_ports"), AddAttributeMember("new_port_t", "new_ports"),
         AddAttributeMember("new_ports", "port_type"), AddPortcon("tcp", 9000, 9009, "new_port_t"),
         AddTypeTransition("new_t", "new_t", "udp_socket", "helper_sock_t"),
         AddRule("allow", "new_t", "helper_sock_t", "udp_socket", frozenset({"create", "bind"}))),
        [], "(type new_t) (typeattributeset client_domain (new_t)) (roletype system_r new_t)\n"
            "(typeattributeset domain (new_t)) (typeattributeset mcs_constrained (new_t))\n"
            "(allow new_t self (tcp_socket (create connect bind)))\n"
            "(type new_port_t) (typeattribute new_ports) (typeattributeset new_ports (new_port_t))\n"
            "(typeattributeset port_type (new_ports))\n"
            "(portcon tcp (9000 9009) (system_u object_r new_port_t low_low))\n"
            "(typetransition new_t new_t udp_socket helper_sock_t)\n"
            "(allow new_t helper_sock_t (udp_socket (create bind)))"),
    "permissive-and-booleans": (
        (SetPermissive("app_t"), SetBoolean("web_connect_db", True)),
        [("(boolean web_connect_db false)", "(boolean web_connect_db true)")],
        "(typepermissive app_t)"),
}


@pytest.mark.parametrize(("name", "mls"), [
    *((name, False) for name in sorted(SMALL_VARIANTS)),
    ("portcon-modified", True), ("nodecon-added-deleted", True), ("new-types", True),
])
def test_small_policy_overlay_decides_like_recompiled(name: str, mls: bool, compile_cil: CompileCil) -> None:
    changes, edits, extra = SMALL_VARIANTS[name]
    base = load_policy([str(compile_cil(SMALL, mls=mls))])
    overlaid = Overlay(changes).apply(base)
    recompiled = load_policy([str(compile_cil(_edit(SMALL, edits) + extra, mls=mls))])
    assert overlaid.snap.mls == mls
    compare(overlaid, recompiled, recompiled.domains())


def test_small_policy_module_from_cil(compile_cil: CompileCil) -> None:
    """A CIL module read into an overlay decides like the module compiled in."""
    _, _, new_types = SMALL_VARIANTS["new-types"]
    _, _, rules = SMALL_VARIANTS["rule-through-attributes"]
    module = (new_types + "\n" + rules + "\n(typepermissive app_t)\n"
              "(portcon tcp (8000 9999) (system_u object_r http_port_t low_low))\n"
              ).replace("low_low", "((s0) (s0))")  # base.cil's named ranges are not in the binary
    for mls in (False, True):
        base = load_policy([str(compile_cil(SMALL, mls=mls))])
        overlay, unapplied = Overlay.from_cil(module, base)
        assert unapplied == []
        recompiled = load_policy([str(compile_cil(SMALL + module, mls=mls))])
        # a module's portcon is a policy record, sorted as secilc sorts it: the narrower
        # 9000-9009 still wins over the wider 8000-9999 (a semanage -a record would not)
        assert port_label(recompiled, "tcp", 9005).type == "new_port_t"
        compare(overlay.apply(base), recompiled, recompiled.domains())


def test_known_limit_self_rules_of_attributes(compile_cil: CompileCil) -> None:
    """The compiled base stores ``allow ATTR self`` as one rule per member: a new member does
    not get it from an overlay, while a recompile does (documented in docs/overlay.md)."""
    snippet = SMALL + "(allow client_domain self (udp_socket (create)))\n"
    base = load_policy([str(compile_cil(snippet))])
    overlaid = Overlay((AddType("new_t", ("client_domain",)), AddRoleType("system_r", "new_t"))).apply(base)
    added = "(type new_t) (typeattributeset client_domain (new_t)) (roletype system_r new_t)"
    recompiled = load_policy([str(compile_cil(snippet + added))])
    d = overlaid.context_for_domain("new_t")
    assert not Decider(overlaid).decide(d, d, "udp_socket", "create").allowed
    assert Decider(recompiled).decide(d, d, "udp_socket", "create").allowed
    # ...and the rules that name the attribute itself do reach the new member on both
    h = overlaid.object_context("http_port_t")
    assert Decider(overlaid).decide(d, h, "tcp_socket", "name_connect").allowed


# -- refusals ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("change", "message"), [
    (AddPortcon("tcp", 80, 80, "db_port_t"), "a portcon for tcp 80 already exists"),
    (AddPortcon("tcp", 8080, 8081, "db_port_t"), "a portcon for tcp 8080-8081 already exists"),
    (ModifyPortcon("tcp", 8500, 8500, "db_port_t"), "no portcon for exactly tcp 8500 to modify"),
    (DeletePortcon("udp", 80, 80), "no portcon for exactly udp 80 to delete"),
    (AddNodecon("127.0.0.1", "255.255.255.255", "lo_node_t"), "a nodecon for 127.0.0.1/32 already exists"),
    (ModifyNodecon("127.0.0.2", "32", "lo_node_t"), "no nodecon for exactly 127.0.0.2/32 to modify"),
    (DeleteNodecon("10.0.0.0", "16", ), "no nodecon for exactly 10.0.0.0/16 to delete"),
    (AddNetifcon("lo", "lo_netif_t"), "a netifcon for lo already exists"),
    (ModifyNetifcon("eth9", "lo_netif_t"), "no netifcon for eth9 to modify"),
    (DeleteNetifcon("eth9"), "no netifcon for eth9 to delete"),
    (AddPortcon("tcp", 8500, 8500, "nosuch_port_t"), "unknown type 'nosuch_port_t'"),
    (AddPortcon("tcp", 8500, 8500, "port_type"), "it is an attribute"),
    (AddPortcon("tcp", 8500, 8500, "system_u:object_r:db_port_t:s7"), "invalid MLS level/range 's7'"),
    (AddPortcon("tcp", 8500, 8500, "nobody_u:object_r:db_port_t:s0"), "unknown user 'nobody_u'"),
    (AddRule("allow", "web_t", "nosuch_t", "tcp_socket", frozenset({"name_connect"})),
     "unknown type or attribute 'nosuch_t'"),
    (AddRule("allow", "web_t", "db_port_t", "tcp_sock", frozenset({"name_connect"})),
     "unknown class 'tcp_sock'"),
    (AddRule("allow", "web_t", "db_port_t", "tcp_socket", frozenset({"name_conect"})),
     "unknown permission name_conect in class tcp_socket"),
    (AddRule("allow", "web_t", "db_port_t", "file", frozenset({"read"})), "not a network class"),
    (AddRule("allow", "web_t", "db_port_t", "tcp_socket", frozenset({"name_connect"}), ("no_such_bool",)),
     "unknown boolean 'no_such_bool'"),
    (SetBoolean("no_such_bool", True), "unknown boolean 'no_such_bool'"),
    (AddBoolean("secure_mode", True), "boolean 'secure_mode' already exists"),
    (AddType("web_t"), "type 'web_t' already exists"),
    (AddType("new_t", ("no_such_attr",)), "unknown attribute 'no_such_attr'"),
    (AddAttributeMember("web_t", "db_t"), "unknown attribute 'db_t' (it is a type)"),
    (SetPermissive("domain"), "unknown type 'domain' (it is an attribute"),
    (AddRoleType("no_r", "web_t"), "unknown role 'no_r'"),
    (AddTypeTransition("helper_t", "helper_t", "tcp_socket", "web_t"), "a type_transition for helper_t"),
])
def test_refusals(change: Change, message: str, example: Policy) -> None:
    with pytest.raises(InputError, match=None) as err:
        Overlay((change,)).apply(example)
    assert message in str(err.value)
    assert change.describe() in str(err.value)  # the error names the change


@pytest.mark.parametrize(("make", "message"), [
    (lambda: AddPortcon("tcpx", 1, 2, "t"), "unknown port protocol 'tcpx'"),
    (lambda: AddPortcon("tcp", 10, 2, "t"), "bad port range 10-2"),
    (lambda: AddPortcon("tcp", 1, 70000, "t"), "bad port range"),
    (lambda: AddNodecon("10.0.0.1", "8", "t"), "bits set outside the mask"),
    (lambda: AddNodecon("10.0.0.0", "255.0.255.0", "t"), "a contiguous mask is needed"),
    (lambda: AddNodecon("not-an-ip", "8", "t"), "not an IPv4 or IPv6 address"),
    (lambda: AddNetifcon("a b", "t"), "not a network interface name"),
    (lambda: AddRule("allowx", "a", "b", "tcp_socket", frozenset({"x"})), "unknown rule kind"),
    (lambda: AddRule("allow", "a", "b", "tcp_socket", frozenset()), "names no permission"),
    (lambda: AddRule("allow", "a", "b", "tcp_socket", frozenset({"x"}), ("on", "&&")), "malformed condition"),
    (lambda: AddRule("allow", "a", "b", "tcp_socket", frozenset({"x"}), ("a", "b")), "malformed condition"),
    (lambda: AddType("bad name"), "not a valid type name"),
])
def test_malformed_changes(make: Callable[[], Change], message: str) -> None:
    with pytest.raises(InputError) as err:
        make()
    assert message in str(err.value)


def test_refusals_see_earlier_changes(example: Policy) -> None:
    """Validation is sequential: -a twice, -m of an added record, -d then -d."""
    ov = Overlay((AddPortcon("tcp", 8500, 8500, "db_port_t"), AddPortcon("tcp", 8500, 8500, "http_port_t")))
    with pytest.raises(InputError, match="already exists"):
        ov.apply(example)
    p = Overlay((AddPortcon("tcp", 8500, 8500, "db_port_t"),
                 ModifyPortcon("tcp", 8500, 8500, "http_port_t"))).apply(example)
    assert port_label(p, "tcp", 8500).type == "http_port_t"
    assert [pc.position for pc in p.snap.portcons if pc.low == 8500] == [-1]
    with pytest.raises(InputError, match="to delete"):
        Overlay((DeletePortcon("tcp", 80, 80), DeletePortcon("tcp", 80, 80))).apply(example)
    # a -m on a policy record leaves it in place, shadowed by the local record (as semanage does);
    # -d of that local record brings the policy's record back
    m = Overlay((ModifyPortcon("tcp", 80, 80, "db_port_t"),)).apply(example)
    res = port_label(m, "tcp", 80)
    assert res.type == "db_port_t" and res.shadowed[0].record.context.type == "http_port_t"
    back = Overlay((DeletePortcon("tcp", 80, 80),)).apply(m)
    assert port_label(back, "tcp", 80).type == "http_port_t"
    not_a_change: Any = "not a change"
    with pytest.raises(TypeError):
        Overlay((not_a_change,))


def test_overlay_shares_the_base(example: Policy) -> None:
    """Nothing unchanged is copied: the snapshot fields and indexes are the base's objects."""
    p = Overlay((SetBoolean("web_can_connect_db", True),)).apply(example)
    for name in ("rules", "portcons", "nodecons", "netifcons", "type_attrs", "attr_types", "classes",
                 "constraints", "transitions", "role_types", "users", "permissive", "bounds"):
        assert getattr(p.snap, name) is getattr(example.snap, name), name
    assert p.snap.booleans is not example.snap.booleans
    assert example.snap.booleans["web_can_connect_db"] is False  # the base is untouched
    assert p._by_class_source is example._by_class_source and p.levels is example.levels
    q = example.with_changes(AddRule("allow", "web_t", "db_port_t", "tcp_socket", frozenset({"name_bind"})))
    assert q.snap.rules[: len(example.snap.rules)] == example.snap.rules
    key = ("tcp_socket", "web_t")
    assert len(q._by_class_source[key]) == len(example._by_class_source[key]) + 1
    assert all(q._by_class_source[k] is v for k, v in example._by_class_source.items() if k != key)
    assert p.provenance() == {"policy": str(EXAMPLE_CIL), "sha256": example.snap.sha256,
                              "changes": ["setsebool -P web_can_connect_db on"]}
    assert example.describe() == f"{EXAMPLE_CIL} (sha256 {example.snap.sha256[:12]})"
    assert p.describe().endswith("with 1 change: setsebool -P web_can_connect_db on")
    assert example.with_changes(SetBoolean("web_can_connect_db", True)).snap.booleans == p.snap.booleans


# -- the CIL reader ---------------------------------------------------------------------------------
MODULE = """
; a module for the example policy
(type cache_t)
(type cache_port_t)
(typeattributeset domain (cache_t))
(typeattributeset port_type (cache_port_t)) (typeattributeset any_type (cache_t cache_port_t))
(roletype system_r cache_t)
(typeattribute cil_gen_require) (typeattributeset cil_gen_require (web_t))
(typealias cache_alias_t) (typealiasactual cache_alias_t cache_t)
(boolean cache_relay false)
(classpermission cache_perms)
(classpermissionset cache_perms (tcp_socket (create connect)))
(classpermissionset cache_perms (process (fork)))
(allow cache_alias_t self cache_perms)
(allow cache_t cache_port_t (tcp_socket (name_connect)))
(allow cache_t cache_port_t (file (read)))
(booleanif (and cache_relay (not secure_mode))
    (true (allow cache_t memcache_port_t (tcp_socket (name_connect))))
    (false (dontaudit cache_t memcache_port_t (tcp_socket (name_connect)))
           (neverallow cache_t db_port_t (tcp_socket (name_bind)))))
(context cache_ctx (system_u object_r cache_port_t ((s0) (s0))))
(portcon tcp 11300 cache_ctx)
(portcon tcp 80 (system_u object_r cache_port_t ((s0) (s0))))
(ipaddr cache_net 10.9.0.0)
(nodecon cache_net (255.255.0.0) (system_u object_r lo_node_t ((s0) (s0 (range c0 c3)))))
(typepermissive cache_t)
(neverallow cache_t db_port_t (tcp_socket (name_connect)))
(filecon "/usr/bin/cache" file (system_u object_r cache_t ((s0) (s0))))
(optional o1 (allow cache_t nonexistent_t (tcp_socket (name_connect))))
(optional o2 (allow cache_t db_port_t (tcp_socket (name_connect))))
(mlsconstrain (tcp_socket (name_connect)) (eq h1 h2))
(mlsconstrain (file (read)) (eq h1 h2))
(macro m ((type ARG)) (allow ARG self (tcp_socket (create))))
(tunable t1 true)
(tunableif t1 (true (allow cache_t http_port_t (tcp_socket (name_connect))))
              (false (allow cache_t dns_port_t (tcp_socket (name_connect)))))
(allowx cache_t self (ioctl tcp_socket (0x8910)))
(portcon tcp 11301 (system_u object_r cache_port_t outside_range))
(typeattributeset port_type (and cache_port_t (not db_port_t)))
(somethingnew cache_t)
"""


def test_cil_module_reader(example: Policy, compile_example: Callable[[str], Policy]) -> None:
    overlay, unapplied = Overlay.from_cil(MODULE, example)
    got = {u.line: (u.statement.split()[0].lstrip("("), u.matters) for u in unapplied}
    assert got == {
        14: ("allow", False),  # the class permission set's process part
        16: ("allow", False),  # file: not a network class
        20: ("neverallow", False),
        23: ("portcon", True),  # tcp 80 exists: secilc keeps the policy's record
        27: ("neverallow", False),
        28: ("filecon", False),
        29: ("optional", False),  # disabled, as secilc would disable it
        31: ("mlsconstrain", True),
        32: ("mlsconstrain", False),
        33: ("macro", True),
        37: ("allowx", False),
        38: ("portcon", True),  # a level range defined outside the module
        39: ("typeattributeset", True),  # attribute expressions are not evaluated
        40: ("somethingnew", True),
    }, got
    assert all(u.reason for u in unapplied)
    o1 = next(u for u in unapplied if u.line == 29)
    assert o1.describe().startswith("line 29: (optional o1") and "nonexistent_t" in o1.reason
    # every non-blank, non-comment line of the module is applied, used or listed
    p = overlay.apply(example)
    assert port_label(p, "tcp", 11300).type == "cache_port_t"
    assert port_label(p, "tcp", 80).type == "http_port_t"
    assert node_label(p, ipaddress.ip_address("10.9.1.1")).context.mls == "s0-s0:c0.c3"
    d = Decider(p)
    cache = p.context_for_domain("cache_t")
    assert d.decide(cache, cache, "tcp_socket", "connect").allowed  # self, through the alias
    assert d.decide(cache, p.object_context("db_port_t"), "tcp_socket", "name_connect").allowed  # o2
    assert d.decide(cache, p.object_context("http_port_t"), "tcp_socket", "name_connect").allowed  # tunable
    assert not d.decide(cache, p.object_context("dns_port_t"), "tcp_socket", "name_connect").allowed
    relay = d.decide(cache, p.object_context("memcache_port_t"), "tcp_socket", "name_connect")
    assert relay.reason == "boolean" and relay.silent
    assert "cache_t" in p.snap.permissive and p.bool_values()["cache_relay"] is False


def test_cil_module_matches_secilc(example: Policy, compile_example: Callable[[str], Policy]) -> None:
    """The module compiled in by secilc decides like the overlay read from it: the disabled
    optional, the duplicate portcon secilc drops, and the statements that do not matter included."""
    # secilc refuses: a neverallow in a booleanif, a violated neverallow, an undefined level
    # range, an unknown statement; the overlay does not apply a network constraint (31).
    # Line 39 (an attribute expression) is dropped because the overlay does not evaluate it.
    drop = {20: "           ))", 27: "", 31: "", 38: "", 39: "", 40: ""}
    module = "\n".join(drop.get(i, line) for i, line in enumerate(MODULE.splitlines(), 1))
    overlay, unapplied = Overlay.from_cil(module, example)
    # secilc keeps the policy's tcp 80 (23); the macro (33) is never called
    assert {u.line for u in unapplied if u.matters} == {23, 33}
    compare(overlay.apply(example), compile_example(EXAMPLE_TEXT + module), ("cache_t", "web_t"))


@pytest.mark.parametrize(("text", "message"), [
    ("(allow web_t nosuch_t (tcp_socket (name_connect)))",
     "CIL line 1: unknown type or attribute 'nosuch_t'"),
    ("\n(allow web_t db_port_t (tcp_socket (nosuch)))", "CIL line 2: unknown permission nosuch"),
    ("(allow web_t db_port_t (nosuch_class (read)))", "unknown class 'nosuch_class'"),
    ("(booleanif nosuch (true (allow web_t db_port_t (tcp_socket (name_connect)))))", "unknown boolean"),
    ("(type web_t)", "type 'web_t' already exists"),
    ("(allow web_t db_port_t (tcp_socket (name_connect))", "unbalanced '(' opened at line 1"),
    ("(allow web_t))", "unbalanced ')'"),
    ("allow", "outside parentheses"),
    ("(portcon tcp 99999 (system_u object_r db_port_t ((s0) (s0))))", "not a port number"),
    ("(typeattributeset cil_gen_require (nosuch_t))", "required type or attribute 'nosuch_t'"),
])
def test_cil_reader_refusals(text: str, message: str, example: Policy) -> None:
    with pytest.raises(InputError) as err:
        Overlay.from_cil(text, example)
    assert message in str(err.value)


def test_cil_reader_lists_what_it_cannot_apply(example: Policy) -> None:
    """Unsupported statements are listed one by one, nested ones included; nothing is dropped."""
    text = """(in foo (type x_t))
(booleanif secure_mode (true (typechange web_t web_t tcp_socket db_t)
                             (allowx web_t self (ioctl tcp_socket (1)))))
(optional o (role new_r) (roletype new_r web_t) (userrole system_u system_r))
(policycap always_check_network)
(sidcontext port (system_u object_r db_port_t ((s0) (s0))))
(typetransition web_t web_t file "name" db_t)
(allow web_t http_port_t (tcp_socket ((not (name_bind)))))
(allow web_t http_port_t some_perms_from_the_base)
"""
    overlay, unapplied = Overlay.from_cil(text, example)
    assert len(overlay) == 0
    got = [(u.line, u.statement.split()[0], u.matters) for u in unapplied]
    assert got == [(1, "(in", True), (2, "(typechange", False), (3, "(allowx", False), (4, "(role", False),
                   (4, "(roletype", False), (4, "(userrole", False), (5, "(policycap", True),
                   (6, "(sidcontext", True), (7, "(typetransition", False), (8, "(allow", True),
                   (9, "(allow", True)], got


# -- the full reference policy, recompiled from CIL --------------------------------------------------
def _digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()[:24]


_EXTRACT_VERSION = _digest(*(f.read_bytes() for f in sorted((ROOT / "src/selnet/policy").glob("*.py"))
                             if f.name in ("extract.py", "snapshot.py")))


def _load_fast(path: Path, cache: Path) -> Policy:
    """load_policy, with the snapshot kept next to the compiled policy (the session cache is fresh)."""
    sha = sha256_file(path)
    pick = cache / f"{sha}.{_EXTRACT_VERSION}.snapshot"
    if pick.exists():
        snap = pickle.loads(pick.read_bytes())
        return Policy(snap, PolicySource(path, "binary", (path,), sha), from_cache=True)
    policy = load_policy([str(path)])
    tmp = pick.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(pickle.dumps(policy.snap, protocol=pickle.HIGHEST_PROTOCOL))
    tmp.replace(pick)
    return policy


@pytest.fixture(scope="module")
def refpolicy_cil(refpolicy_standard: Path) -> tuple[Path, Path]:
    """refpolicy-standard as CIL (checkpolicy -C), cached beside the fixture by content hash."""
    conf = refpolicy_standard.with_name("refpolicy-standard.policy.conf")
    if not conf.exists():
        pytest.skip("refpolicy-standard.policy.conf is missing")
    return build_refpolicy_cil(refpolicy_standard)


def build_refpolicy_cil(refpolicy_standard: Path) -> tuple[Path, Path]:
    """The CIL and its cache directory; also run by tests/prepare.py as set-up."""
    conf = refpolicy_standard.with_name("refpolicy-standard.policy.conf")
    cache = refpolicy_standard.parent / "overlay-cache"
    cache.mkdir(exist_ok=True)
    version = subprocess.run(["checkpolicy", "-V"], capture_output=True, text=True, check=False).stdout
    cil = cache / f"refpolicy-standard.{_digest(sha256_file(conf), version)}.cil"
    with open(cache / ".compile.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not cil.exists():
            for old in cache.glob("refpolicy-standard.*"):  # built from an older policy.conf
                old.unlink()
            tmp = cil.with_suffix(".tmp")
            proc = subprocess.run(["checkpolicy", "-C", "-o", str(tmp), str(conf)],
                                  capture_output=True, text=True, check=False)
            assert proc.returncode == 0, proc.stderr[-2000:]
            tmp.replace(cil)
    return cil, cache


RefVariants = dict[str, tuple[list[tuple[str, str]], str]]


def _compile_many(cil: Path, cache: Path, variants: RefVariants) -> dict[str, Path]:
    """secilc every variant (base CIL edited, plus extra CIL) not compiled yet, in parallel."""
    out: dict[str, Path] = {}
    procs = []
    for name, (edits, extra) in variants.items():
        key = _digest(cil.name, repr(edits), extra)
        target = cache / f"refpolicy-standard.{key}.policy"
        out[name] = target
        if target.exists():
            continue
        src = cil
        if edits:
            src = cache / f"{key}.edited.cil"
            src.write_text(_edit(cil.read_text(), edits))
        module = cache / f"{key}.module.cil"
        module.write_text(extra + "\n")
        inputs = [str(src), str(module)] if extra else [str(src)]
        procs.append((subprocess.Popen(["secilc", "-o", f"{target}.tmp", "-f", os.devnull, *inputs],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
                      target, src if src != cil else None, module))
    for proc, target, edited, module in procs:
        _, err = proc.communicate()
        for tmp in (edited, module):
            if tmp is not None:
                tmp.unlink(missing_ok=True)
        assert proc.returncode == 0, err[-2000:]
        Path(f"{target}.tmp").replace(target)
    return out


REF_CHANGES: tuple[Change, ...] = (
    AddPortcon("tcp", 8082, 8082, "http_port_t"),  # semanage port -a -t http_port_t -p tcp 8082
    AddPortcon("udp", 40000, 40010, "dns_port_t"),
    AddNodecon("10.20.0.0", "255.255.0.0", "node_t"),
    AddRule("allow", "httpd_t", "postgresql_port_t", "tcp_socket", frozenset({"name_connect"})),
    AddRule("allow", "nsswitch_domain", "dns_port_t", "udp_socket", frozenset({"name_bind"})),
    SetBoolean("httpd_can_network_relay", True),
    SetPermissive("ntpd_t"),
)
REF_VARIANTS: RefVariants = {
    "unchanged": ([], ""),
    "changed": ([("(boolean httpd_can_network_relay false)", "(boolean httpd_can_network_relay true)")],
                "(portcon tcp 8082 (system_u object_r http_port_t (systemlow systemlow)))\n"
                "(portcon udp (40000 40010) (system_u object_r dns_port_t (systemlow systemlow)))\n"
                "(nodecon (10.20.0.0) (255.255.0.0) (system_u object_r node_t (systemlow systemlow)))\n"
                "(allow httpd_t postgresql_port_t (tcp_socket (name_connect)))\n"
                "(allow nsswitch_domain dns_port_t (udp_socket (name_bind)))\n"
                "(typepermissive ntpd_t)"),
}


@pytest.fixture(scope="module")
def refpolicy_pair(refpolicy_standard: Path, refpolicy_cil: tuple[Path, Path]) -> dict[str, Policy]:
    return load_refpolicy_pair(refpolicy_standard, refpolicy_cil)


def load_refpolicy_pair(refpolicy_standard: Path, refpolicy_cil: tuple[Path, Path]) -> dict[str, Policy]:
    """REF_VARIANTS compiled (once per machine) and loaded; also run by tests/prepare.py."""
    cil, cache = refpolicy_cil
    with open(cache / ".compile.lock", "w") as lock:  # xdist workers: one compiles, the other waits
        fcntl.flock(lock, fcntl.LOCK_EX)
        compiled = _compile_many(cil, cache, REF_VARIANTS)
    out = {name: _load_fast(path, cache) for name, path in compiled.items()}
    out["base"] = _load_fast(refpolicy_standard, cache)
    return out


def _ref_cases(policy: Policy, n: int, seed: int = 11) -> tuple[list[Case], list[Scenario], list[int]]:
    rnd = random.Random(seed)
    snap = policy.snap
    domains = sorted(policy.domains())
    picked = sorted({"httpd_t", "ntpd_t", "named_t", "postgresql_t", "sshd_t", "unconfined_t", "squid_t",
                     *rnd.sample(domains, 40)} & set(domains))
    targets = sorted(snap.attr_types["port_type"] | snap.attr_types.get("node_type", frozenset())
                     | {"node_t", "unlabeled_t", "netif_t"})
    ctx = {t: ctx_of(policy, t) for t in {*picked, *targets}}
    cases = [(ctx[d], ctx[t], c, p) for d in picked for t in targets for c, p in TARGET_PERMS]
    cases = rnd.sample(cases, min(n, len(cases)))
    cases += [(ctx[d], ctx[d], c, p) for d in picked for c, p in SELF_PERMS]
    ports = boundary_ports(policy)
    chain_ports = sorted({8082, 5432, 3128, 40000, 40005, 40010, 40011, 53, 123, *rnd.sample(ports, 70)})
    scs = scenarios(policy, ("httpd_t", "ntpd_t", "named_t"), chain_ports)
    return cases, scs, ports


@pytest.mark.refpolicy
def test_refpolicy_unchanged_cil_compile_is_the_binary(refpolicy_pair: dict[str, Policy]) -> None:
    """Sanity: the empty overlay on the binary base decides like the CIL recompile of it."""
    base, recompiled = refpolicy_pair["base"], refpolicy_pair["unchanged"]
    empty = Overlay().apply(base)
    cases, scs, ports = _ref_cases(recompiled, 4000)
    assert_same(empty, recompiled, cases, scs, ports, boundary_addresses(base, recompiled), ("lo", "eth0"))


@pytest.mark.refpolicy
def test_refpolicy_overlay_decides_like_recompiled(refpolicy_pair: dict[str, Policy]) -> None:
    base, recompiled = refpolicy_pair["base"], refpolicy_pair["changed"]
    overlaid = Overlay(REF_CHANGES).apply(base)
    # every constraint's attribute operands are known, so new members would extend them
    assert all(ops is not None for ops in _constraint_operands(base))
    cases, scs, ports = _ref_cases(recompiled, 4000)
    assert len(cases) > 3000
    addresses = [*boundary_addresses(overlaid, recompiled), "10.20.0.1"]
    assert_same(overlaid, recompiled, cases, scs, ports, addresses, ("lo", "eth0"))
    # `semanage port -a -t http_port_t -p tcp 8082`: httpd_t may now listen there, on both
    for p, allowed in ((base, False), (overlaid, True), (recompiled, True)):
        sc = Scenario("listen", recompiled.context_for_domain("httpd_t"), parse_endpoint("0.0.0.0:8082"))
        assert evaluate(p, sc, p.bool_values()).allowed is allowed
    relay = Scenario("connect", recompiled.context_for_domain("httpd_t"), parse_endpoint("127.0.0.1:3128"))
    assert not evaluate(base, relay, base.bool_values()).allowed
    assert evaluate(overlaid, relay, overlaid.bool_values()).allowed


@pytest.mark.refpolicy
def test_refpolicy_module_from_cil(refpolicy_pair: dict[str, Policy]) -> None:
    """The change written as a CIL module reads into the same overlay answers."""
    base, recompiled = refpolicy_pair["base"], refpolicy_pair["changed"]
    _, module = REF_VARIANTS["changed"]
    overlay, unapplied = Overlay.from_cil(module, base)
    assert unapplied == []
    overlaid = (overlay + Overlay((SetBoolean("httpd_can_network_relay", True),))).apply(base)
    cases, scs, ports = _ref_cases(recompiled, 1500, seed=5)
    assert_same(overlaid, recompiled, cases, scs[:300], ports, ["10.20.0.1"], ())
