"""The kernel check table: one entry per check, used by the model, diagnosis and docs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from selnet.audit.avclog import AvcRecord
from selnet.audit.diagnose import kernel_checks
from selnet.decide.chain import evaluate
from selnet.kernel import checks as K
from selnet.kernel.classes import KERNEL_PERMS
from selnet.model.env import NetEnv
from selnet.model.plan import Scenario, parse_endpoint
from selnet.render.checks import replace_section

ROOT = Path(__file__).resolve().parent.parent


def test_ids_unique_and_perms_live() -> None:
    assert len(K.BY_ID) == len(K.CHECKS)
    for c in K.CHECKS:
        # A check the kernel makes is on a permission its class map has.
        if c.tclass in KERNEL_PERMS:
            assert c.perm in KERNEL_PERMS[c.tclass], c.id
        assert c.file.startswith(("security/", "net/")) and c.line > 0, c.id


def test_doc_is_generated_from_the_table() -> None:
    doc = (ROOT / "docs" / "kernel-model.md").read_text()
    assert replace_section(doc) == doc, "docs/kernel-model.md is stale: run scripts/gen-docs"


@pytest.mark.parametrize(("tclass", "perm", "hooks"), [
    ("tcp_socket", "name_bind", {"__selinux_socket_bind"}),
    ("udp_socket", "node_bind", {"__selinux_socket_bind"}),
    ("tcp_socket", "name_connect", {"selinux_socket_connect_helper"}),
    ("capability", "net_bind_service", {"__inet_bind", "__inet6_bind", "sctp_do_bind"}),
    ("cap_userns", "net_raw", {"inet_create", "inet6_create", "sk_setsockopt"}),
    ("netif", "ingress", {"selinux_inet_sys_rcv_skb"}),
    ("node", "recvfrom", {"selinux_inet_sys_rcv_skb"}),
    ("netif", "egress", {"selinux_ip_postroute"}),
    ("peer", "recv", {"selinux_socket_sock_rcv_skb"}),
    ("association", "recvfrom", {"selinux_xfrm_sock_rcv_skb"}),
])
def test_avc_lookup(tclass: str, perm: str, hooks: set[str]) -> None:
    assert {c.hook for c in K.for_avc(tclass, perm)} == hooks


def test_ingress_subject_is_the_peer() -> None:
    for id_ in ("rx.netif_ingress", "rx.node_recvfrom"):
        assert K.check(id_).subject == "peer"
    # ...and tcp_recv on netif (a removed 2.6.30 check) comes from no entry at all.
    assert K.for_avc("netif", "tcp_recv") == ()


def test_diagnosis_uses_the_table() -> None:
    rec = AvcRecord("denied", ("name_bind",), "system_u:system_r:a_t:s0",
                    "system_u:object_r:b_t:s0", "tcp_socket", False, {"src": "8080"}, None,
                    None, None, "raw", 1, "")
    assert [c.id for c in kernel_checks(rec)] == ["bind.name_bind"]


@pytest.mark.parametrize(("endpoint", "expect"), [
    ("127.0.0.1:0/raw", "inet_create"), ("[::1]:0/raw", "inet6_create"),
])
def test_net_raw_per_family(load: Any, compile_cil: Any, endpoint: str, expect: str) -> None:
    from tests.test_model import CAPS, POLICY

    pol = load(compile_cil(CAPS + POLICY))
    sc = Scenario("connect", pol.context_for_domain("cli_t"), parse_endpoint(endpoint), NetEnv())
    chain = evaluate(pol, sc, pol.bool_values())
    caps = [r.check for r in chain.results if r.check.perm == "net_raw"]
    assert [c.hook for c in caps] == [expect] and caps[0].errno == "EPERM"


@pytest.mark.parametrize(("endpoint", "expect"), [
    ("127.0.0.1:80", "__inet_bind"), ("[::1]:80", "__inet6_bind"),
    ("127.0.0.1:80/sctp", "sctp_do_bind"), ("[::1]:80/sctp", "sctp_do_bind"),
])
def test_net_bind_service_per_family(load: Any, compile_cil: Any, endpoint: str,
                                     expect: str) -> None:
    from tests.test_model import CAPS, POLICY

    pol = load(compile_cil(CAPS + POLICY))
    sc = Scenario("bind", pol.context_for_domain("cli_t"), parse_endpoint(endpoint), NetEnv())
    chain = evaluate(pol, sc, pol.bool_values())
    caps = [r.check for r in chain.results if r.check.perm == "net_bind_service"]
    assert [c.hook for c in caps] == [expect]
    # The capability comes after the SELinux bind hook's checks.
    perms = [r.check.perm for r in chain.results]
    assert perms.index("net_bind_service") > perms.index("node_bind")


def test_so_debug_net_admin_refuses_with_eacces() -> None:
    # sk_setsockopt: SO_DEBUG without CAP_NET_ADMIN is -EACCES; the other net_admin options
    # are -EPERM (observed on 6.1 by the trace_so_debug conformance scenarios)
    by_id = {c.id: c for c in K.for_avc("capability", "net_admin")}
    assert by_id["setsockopt.net_admin_debug"].errno == "EACCES"
    assert by_id["setsockopt.net_admin"].errno == "EPERM"
    assert by_id["setsockopt.net_admin_debug"].step == "setsockopt"
