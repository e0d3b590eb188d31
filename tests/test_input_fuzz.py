"""Arbitrary user input never escapes as anything but a one-line InputError."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from selnet.errors import InputError
from selnet.model.env import parse_sysctls
from selnet.model.labels import check_netif_name, parse_address, parse_port
from selnet.model.plan import parse_endpoint

ENDPOINTISH = st.text(alphabet="0123456789abcdef:.[]/%-tcpudpsctpicmpraw ", max_size=40)


def _only_input_error(func, text: str) -> None:  # type: ignore[no-untyped-def]
    try:
        func(text)
    except InputError as exc:
        assert "\n" not in str(exc) and str(exc)


@settings(max_examples=400, deadline=None)
@given(st.one_of(ENDPOINTISH, st.text(max_size=40)))
def test_endpoint_parsing_only_raises_input_error(text: str) -> None:
    _only_input_error(parse_endpoint, text)
    _only_input_error(parse_port, text)
    _only_input_error(parse_address, text)
    _only_input_error(check_netif_name, text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_sysctl_parsing_only_raises_input_error(text: str) -> None:
    _only_input_error(lambda t: parse_sysctls([t]), text)


def test_valid_endpoints_round_trip() -> None:
    ep = parse_endpoint("[::ffff:127.0.0.1]:80/udp")
    assert (str(ep.address), ep.port, ep.proto, ep.family) == ("::ffff:7f00:1", 80, "udp", 6)
    assert parse_endpoint("127.0.0.1:0/raw", ).port == 0
    assert parse_endpoint("127.0.0.1/icmp").port == 0


_AVC = ('type=AVC msg=audit(1700000000.123:456): avc:  denied  {{ {perm} }} for  pid=1 comm="x" '
        "{field}={value} scontext=system_u:system_r:{dom}:s0 tcontext=system_u:object_r:{tgt}:s0 "
        "tclass={tclass} permissive={perm_flag}")


@settings(max_examples=150, deadline=None)
@given(
    perm=st.sampled_from(["name_bind", "name_connect", "node_bind", "recv", "ingress", "bogus"]),
    field=st.sampled_from(["src", "dest", "saddr", "netif", "lport"]),
    value=st.text(max_size=12).filter(lambda v: " " not in v and "\n" not in v),
    dom=st.sampled_from(["web_t", "db_t", "client_t", "nosuch_t", ""]),
    tgt=st.sampled_from(["http_port_t", "db_port_t", "node_t", "unlabeled_t", "web_t", "zz"]),
    tclass=st.sampled_from(["tcp_socket", "udp_socket", "node", "peer", "netif", "nosuch"]),
    perm_flag=st.sampled_from(["0", "1", "x"]),
)
def test_audit_pipeline_never_raises(**kw: str) -> None:
    """Odd field values in otherwise plausible AVCs reach diagnosis and fix search."""
    from selnet.audit.auditor import run_audit
    from selnet.policy.loader import load_policy
    from tests.conftest import EXAMPLE_CIL

    policy = load_policy([str(EXAMPLE_CIL)])
    run_audit(policy, [[_AVC.format(**kw)]], use_interfaces=False)
