"""Label lookups: first match in binary order, initial-SID fallbacks, shadowed records."""

from __future__ import annotations

import ipaddress
import re
import subprocess
from pathlib import Path

import pytest

from selnet.model.labels import match_wildcard, netif_label, node_label, parse_address, port_label
from selnet.policy.loader import load_policy

TYPES = """
(type http_port_t) (type reserved_port_t) (type wide_port_t) (type narrow_port_t)
(type lo_node_t) (type lo_net_node_t) (type v6_lo_node_t) (type mapped_node_t) (type site_node_t)
(type lo_netif_t) (type eth_netif_t) (type any_netif_t)
(typeattributeset port_type (http_port_t reserved_port_t wide_port_t narrow_port_t))
(allow kernel_t port_type (tcp_socket (name_bind)))
"""

RECORDS = """
(portcon tcp (1 1023) (system_u object_r reserved_port_t low_low))
(portcon tcp 80 (system_u object_r http_port_t low_low))
(portcon udp (1 1023) (system_u object_r reserved_port_t low_low))
(portcon tcp (8000 8100) (system_u object_r wide_port_t low_low))
(portcon tcp (8090 8110) (system_u object_r narrow_port_t low_low))
(nodecon (127.0.0.0) (255.0.0.0) (system_u object_r lo_net_node_t low_low))
(nodecon (127.0.0.1) (255.255.255.255) (system_u object_r lo_node_t low_low))
(nodecon (::1) (ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff) (system_u object_r v6_lo_node_t low_low))
(nodecon (::ffff:0:0) (ffff:ffff:ffff:ffff:ffff:ffff::) (system_u object_r mapped_node_t low_low))
(nodecon (fd00::) (ff00::) (system_u object_r site_node_t low_low))
(netifcon lo (system_u object_r lo_netif_t low_low) (system_u object_r unlabeled_t low_low))
(netifcon eth0 (system_u object_r eth_netif_t low_low) (system_u object_r unlabeled_t low_low))
(netifcon eth* (system_u object_r any_netif_t low_low) (system_u object_r unlabeled_t low_low))
"""


@pytest.fixture(scope="module")
def policy(compile_cil):  # type: ignore[no-untyped-def]
    return load_policy([str(compile_cil("(handleunknown deny)" + TYPES + RECORDS))])


def test_single_port_beats_range_written_before_it(policy) -> None:  # type: ignore[no-untyped-def]
    res = port_label(policy, "tcp", 80)
    assert res.type == "http_port_t"
    assert res.matched is not None and (res.matched.low, res.matched.high) == (80, 80)
    assert [s.record.context.type for s in res.shadowed] == ["reserved_port_t"]
    assert "port_type" in res.attributes


def test_secilc_orders_overlapping_ranges_narrowest_first(policy) -> None:  # type: ignore[no-untyped-def]
    # 8090-8110 is narrower than 8000-8100; secilc sorts by width, so it wins at 8095.
    assert port_label(policy, "tcp", 8095).type == "narrow_port_t"
    assert port_label(policy, "tcp", 8050).type == "wide_port_t"
    assert port_label(policy, "tcp", 8105).type == "narrow_port_t"


def test_protocol_and_fallback_to_port_initial_sid(policy) -> None:  # type: ignore[no-untyped-def]
    assert port_label(policy, "udp", 80).type == "reserved_port_t"
    res = port_label(policy, "tcp", 40000)
    assert res.matched is None and res.initial_sid == "port" and res.type == "port_t"
    assert port_label(policy, "sctp", 80).type == "port_t"


def test_bulk_lookup_equals_scan(policy) -> None:  # type: ignore[no-untyped-def]
    for port in (1, 79, 80, 81, 1023, 1024, 7999, 8000, 8089, 8090, 8100, 8101, 8110, 8111):
        for proto in ("tcp", "udp"):
            assert (
                port_label(policy, proto, port, with_shadowed=False).type
                == port_label(policy, proto, port).type
            )


def test_nodecon_masks_most_specific_first(policy) -> None:  # type: ignore[no-untyped-def]
    assert node_label(policy, parse_address("127.0.0.1")).type == "lo_node_t"
    res = node_label(policy, parse_address("127.0.0.2"))
    assert res.type == "lo_net_node_t"
    one = node_label(policy, parse_address("127.0.0.1"))
    assert [s.record.context.type for s in one.shadowed] == ["lo_net_node_t"]
    assert node_label(policy, parse_address("0.0.0.0")).type == "node_t"


def test_ipv6_masks_and_mapped_addresses_stay_ipv6(policy) -> None:  # type: ignore[no-untyped-def]
    assert node_label(policy, parse_address("::1")).type == "v6_lo_node_t"
    assert node_label(policy, parse_address("fd12:3456::1")).type == "site_node_t"
    mapped = node_label(policy, parse_address("::ffff:127.0.0.1"))
    # Looked up in the IPv6 table: not lo_node_t (the IPv4 record).
    assert mapped.type == "mapped_node_t"
    assert mapped.query == "::ffff:127.0.0.1"
    assert node_label(policy, parse_address("::")).type == "node_t"


def test_netifcon_exact_without_netif_wildcard(policy) -> None:  # type: ignore[no-untyped-def]
    assert netif_label(policy, "lo").type == "lo_netif_t"
    assert netif_label(policy, "eth0").type == "eth_netif_t"
    # Without the netif_wildcard capability "eth*" is a literal name.
    res = netif_label(policy, "eth1")
    assert res.type == "netif_t" and res.initial_sid == "netif"


def test_match_wildcard_is_the_kernels_glob() -> None:
    assert match_wildcard("eth*", "eth1")
    assert match_wildcard("e?h0", "eth0")
    assert not match_wildcard("eth?", "eth10")
    assert match_wildcard("*", "lo")
    assert not match_wildcard("eth[01]", "eth0")  # no character classes in the kernel


def _binary_to_conf(binary: Path, tmp: Path) -> str:
    conf = tmp / "from-binary.conf"
    subprocess.run(["checkpolicy", "-b", "-F", "-o", str(conf), str(binary)], check=True,
                   capture_output=True)
    return conf.read_text()


def test_checkpolicy_keeps_source_order(compile_cil, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The same overlapping records through checkpolicy: source order decides."""
    binary = compile_cil("(handleunknown deny)" + TYPES + RECORDS)
    text = _binary_to_conf(binary, tmp_path)
    # Put the wide range first in the source; checkpolicy keeps that order.
    text = re.sub(r"^portcon .*\n", "", text, flags=re.M)
    text = re.sub(r"^netifcon eth\*.*\n", "", text, flags=re.M)  # checkpolicy has no globs
    ports = (
        "portcon tcp 80 system_u:object_r:http_port_t\n"
        "portcon tcp 1-1023 system_u:object_r:reserved_port_t\n"
        "portcon tcp 8000-8100 system_u:object_r:wide_port_t\n"
        "portcon tcp 8090-8110 system_u:object_r:narrow_port_t\n"
    )
    text = re.sub(r"^(netifcon )", ports + r"\1", text, count=1, flags=re.M)
    conf = tmp_path / "policy.conf"
    conf.write_text(text)
    policy = load_policy([str(conf)])
    assert policy.source.origin == "conf"
    assert port_label(policy, "tcp", 8095).type == "wide_port_t"  # source order, not width
    assert port_label(policy, "tcp", 8105).type == "narrow_port_t"
    assert port_label(policy, "tcp", 80).type == "http_port_t"


# -- the full reference policy ------------------------------------------------------
@pytest.mark.refpolicy
def test_refpolicy_every_port_is_first_match(refpolicy_standard: Path) -> None:
    import setools

    policy = load_policy([str(refpolicy_standard)])
    records = list(setools.SELinuxPolicy(str(refpolicy_standard)).portcons())
    default = str(policy.snap.initial_sids["port"].type)
    for proto in ("tcp", "udp"):
        # An independent first-match scan over setools' own record list.
        expected: list[str | None] = [None] * 65536
        for pc in records:
            if str(pc.protocol) != proto:
                continue
            for port in range(pc.ports.low, pc.ports.high + 1):
                if expected[port] is None:
                    expected[port] = str(pc.context.type_)
        got = [port_label(policy, proto, p, with_shadowed=False).type for p in range(1, 65536)]
        want = [expected[p] or default for p in range(1, 65536)]
        mismatches = [(p + 1, g, w) for p, (g, w) in enumerate(zip(got, want, strict=True)) if g != w]
        assert not mismatches, mismatches[:10]


@pytest.mark.refpolicy
def test_refpolicy_spot_checks(refpolicy_standard: Path) -> None:
    policy = load_policy([str(refpolicy_standard)])
    assert port_label(policy, "tcp", 80).type == "http_port_t"
    assert port_label(policy, "tcp", 5432).type == "postgresql_port_t"
    assert port_label(policy, "tcp", 61000).type == "unreserved_port_t"
    assert port_label(policy, "udp", 53).type == "dns_port_t"
    res = port_label(policy, "tcp", 8080)
    assert res.type == "http_cache_port_t"
    assert res.shadowed and res.shadowed[-1].record.context.type == "unreserved_port_t"
    assert node_label(policy, ipaddress.ip_address("127.0.0.1")).type == "node_t"


@pytest.mark.refpolicy
def test_local_semanage_records_come_first(debian_local: Path) -> None:
    """libsemanage prepends local records: `semanage port -m -t http_port_t -p tcp 8081`
    beats the policy's own `portcon tcp 8081 transproxy_port_t`, whatever the widths."""
    from selnet.decide.chain import evaluate
    from selnet.model.plan import Scenario, parse_endpoint

    policy = load_policy([str(debian_local)])
    res = port_label(policy, "tcp", 8081)
    assert res.type == "http_port_t"
    assert [s.record.context.type for s in res.shadowed][:1] == ["transproxy_port_t"]
    assert res.matched is not None and res.matched.position < res.shadowed[0].record.position
    assert port_label(policy, "tcp", 15432).type == "postgresql_port_t"
    udp = port_label(policy, "udp", 9005)
    assert udp.matched is not None and (udp.matched.low, udp.matched.high) == (9000, 9010)
    node = node_label(policy, parse_address("127.0.0.1"))
    assert node.matched is not None and node.matched.prefixlen == 8
    # The decision follows the local label: httpd_t may bind it as an http port.
    sc = Scenario("bind", policy.context_for_domain("httpd_t"), parse_endpoint("0.0.0.0:8081"))
    chain = evaluate(policy, sc, policy.bool_values())
    nb = next(r for r in chain.results if r.check.perm == "name_bind")
    assert nb.check.target.type == "http_port_t" and nb.decision.allowed
