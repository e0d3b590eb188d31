"""selnet trace: socket programs step by step, decided on a small compiled CIL policy (and
the send --bind / unbound listen presets of the operation commands)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from selnet.cli.main import main
from selnet.decide.chain import TraceResult, evaluate_trace
from selnet.decide.decision import Decider
from selnet.errors import InputError
from selnet.model.env import NetEnv, parse_sysctls
from selnet.model.trace import TraceModel, parse_steps
from selnet.policy.index import Policy
from selnet.policy.loader import load_policy
from tests.conftest import CompileCil

CAPS = "(policycap network_peer_controls) (policycap extended_socket_class)"
POLICY = """
(handleunknown deny)
(type act_t) (type svc_t) (type cli_t) (type srv_t) (type lst_t) (type ping_t)
(roletype system_r act_t) (roletype system_r svc_t) (roletype system_r cli_t)
(roletype system_r srv_t) (roletype system_r lst_t) (roletype system_r ping_t)
(typeattributeset domain (act_t svc_t cli_t srv_t lst_t ping_t))
(type http_port_t) (type reserved_port_t) (type lo_node_t) (type lo_netif_t)
(typeattributeset port_type (http_port_t reserved_port_t port_t))
(classpermission sockall)
(classpermissionset sockall (tcp_socket (create bind connect listen accept read write
                                          getattr setopt getopt shutdown)))
(classpermissionset sockall (udp_socket (create bind connect read write getattr setopt getopt
                                          shutdown)))
(allow act_t self sockall)
(allow act_t http_port_t (tcp_socket (name_bind)))
(allow act_t node_type (tcp_socket (node_bind)))
(allow act_t lo_node_t (tcp_socket (node_bind)))
(allow act_t self (capability (net_bind_service)))
(allow svc_t act_t (tcp_socket (accept read write)))
(allow cli_t self sockall)
(allow cli_t node_type (tcp_socket (node_bind)))
(allow cli_t node_type (udp_socket (node_bind)))
(allow cli_t lo_node_t (tcp_socket (node_bind)))
(allow cli_t lo_node_t (udp_socket (node_bind)))
(allow cli_t http_port_t (tcp_socket (name_connect)))
(allow srv_t self sockall)
(allow srv_t reserved_port_t (udp_socket (name_bind)))
(allow srv_t node_type (udp_socket (node_bind)))
(allow srv_t self (capability (net_bind_service)))
(allow lst_t self (tcp_socket (create listen accept read write)))
(allow ping_t self (icmp_socket (create write)))
(portcon tcp 80 (system_u object_r http_port_t low_low))
(portcon tcp (1 1023) (system_u object_r reserved_port_t low_low))
(portcon udp (1 1023) (system_u object_r reserved_port_t low_low))
(nodecon (127.0.0.1) (255.255.255.255) (system_u object_r lo_node_t low_low))
(netifcon lo (system_u object_r lo_netif_t low_low) (system_u object_r unlabeled_t low_low))
"""


@pytest.fixture(scope="module")
def policy_path(compile_cil: CompileCil) -> Path:
    return compile_cil(POLICY + CAPS)


@pytest.fixture(scope="module")
def policy(policy_path: Path) -> Policy:
    return load_policy([str(policy_path)], use_cache=False)


def trace(policy: Policy, domain: str, steps: list[str], *, env: NetEnv | None = None,
          socket_from: str | None = None) -> TraceResult:
    bools = policy.bool_values({})
    creator = policy.context_for_domain(socket_from) if socket_from else None
    plan = TraceModel(policy, bools).plan(policy.context_for_domain(domain), steps,
                                          env or NetEnv(), creator)
    return evaluate_trace(policy, plan, bools)


def summary(tr: TraceResult) -> list[tuple[str, str | None, list[str]]]:
    """(step, errno, the permissions its checks ask for) of each step."""
    return [(s.step.step.text, s.errno, [r.check.perm for r in s.results]) for s in tr.steps]


def test_bind_then_send_uses_the_bound_port(policy: Policy) -> None:
    tr = trace(policy, "srv_t", ["sock=udp", "bind=0.0.0.0:68", "sendto=127.0.0.1:67"])
    assert summary(tr) == [
        ("sock=udp", None, ["create"]),
        ("bind=0.0.0.0:68", None, ["bind", "name_bind", "node_bind", "net_bind_service"]),
        ("sendto=127.0.0.1:67", None, ["write"]),  # no autobind: the port is bound
    ]
    assert tr.allowed and tr.completes
    assert not any(n.code == "autobind" for n in tr.plan.steps[2].notes)
    # cli_t may not name_bind port 68: bind fails, sendto is not reached
    tr = trace(policy, "cli_t", ["sock=udp", "bind=0.0.0.0:68", "sendto=127.0.0.1:67"])
    bind, send = tr.steps[1], tr.steps[2]
    assert (bind.errno, bind.cause) == ("EACCES", "avc")
    assert bind.results[bind.denial or 0].check.perm == "name_bind"
    assert not send.reached and send.errno is None
    assert not tr.allowed and tr.first_denial == (1, 1)


def test_unbound_listen_autobinds_without_bind_checks(policy: Policy) -> None:
    tr = trace(policy, "lst_t", ["sock=tcp", "listen", "accept", "recv", "send"])
    assert summary(tr) == [("sock=tcp", None, ["create"]), ("listen", None, ["listen"]),
                           ("accept", None, ["accept"]), ("recv", None, ["read"]),
                           ("send", None, ["write"])]
    assert any(n.code == "listen-autobind" for n in tr.plan.steps[1].notes)
    # the same domain cannot bind first: bind is checked even for port 0
    tr = trace(policy, "lst_t", ["sock=tcp", "bind=127.0.0.1:0", "listen"])
    assert tr.steps[1].errno == "EACCES" and not tr.steps[2].reached


def test_connect_unspec_checks_connect_only(policy: Policy) -> None:
    tr = trace(policy, "cli_t", ["sock=tcp", "connect=127.0.0.1:80", "connect=unspec",
                                 "getpeername"])
    assert summary(tr) == [
        ("sock=tcp", None, ["create"]),
        ("connect=127.0.0.1:80", None, ["connect", "name_connect"]),
        ("connect=unspec", None, ["connect"]),  # selinux_socket_connect_helper: no name_connect
        ("getpeername", "ENOTCONN", ["getattr"]),  # disconnected
    ]
    assert tr.allowed and not tr.completes and tr.steps[3].cause == "kernel"


def test_bind_unspec_v4_any_is_inaddr_any_and_v6_refused(policy: Policy) -> None:
    v4 = trace(policy, "cli_t", ["sock=tcp", "bind=unspec:0.0.0.0:0"])
    assert summary(v4)[1] == ("bind=unspec:0.0.0.0:0", None, ["bind", "node_bind"])
    lo = trace(policy, "cli_t", ["sock=tcp", "bind=unspec:127.0.0.1:0"])
    assert summary(lo)[1] == ("bind=unspec:127.0.0.1:0", "EAFNOSUPPORT", ["bind"])
    v6 = trace(policy, "cli_t", ["sock=tcp6", "bind=unspec:0.0.0.0:0"])
    assert summary(v6)[1] == ("bind=unspec:0.0.0.0:0", "EAFNOSUPPORT", ["bind"])
    err = v6.steps[1].step.error
    assert err is not None and err.function == "__selinux_socket_bind"


def test_ping_group_range(policy: Policy) -> None:
    steps = ["sock=icmp", "sendto=127.0.0.1:0"]
    inside = trace(policy, "ping_t", steps, env=parse_sysctls(["net.ipv4.ping_group_range=0 0"]))
    assert inside.completes
    for rng in ("1 0", "100 200"):
        out = trace(policy, "ping_t", steps, env=parse_sysctls([f"net.ipv4.ping_group_range={rng}"]))
        # the create check comes first (selinux_socket_create), then ping_init_sock refuses
        assert summary(out)[0] == ("sock=icmp", "EACCES", ["create"])
        assert out.steps[0].cause == "kernel" and out.allowed
        assert not out.steps[1].reached
    # an empty range is stored as "1 0" (ipv4_ping_group_range)
    assert parse_sysctls(["ping_group_range=5 2"]).ping_group_range == (1, 0)
    with pytest.raises(InputError):
        parse_sysctls(["ping_group_range=1"])


def test_socket_options_and_shutdown(policy: Policy) -> None:
    tr = trace(policy, "cli_t", ["sock=tcp", "setsockopt=SO_REUSEADDR", "getsockopt=SO_ERROR",
                                 "getsockname", "shutdown"])
    assert summary(tr)[1:] == [("setsockopt=SO_REUSEADDR", None, ["setopt"]),
                               ("getsockopt=SO_ERROR", None, ["getopt"]),
                               ("getsockname", None, ["getattr"]),
                               ("shutdown", "ENOTCONN", ["shutdown"])]
    debug = trace(policy, "cli_t", ["sock=tcp", "setsockopt=SO_DEBUG"])
    assert summary(debug)[1] == ("setsockopt=SO_DEBUG", "EACCES", ["setopt", "net_admin"])
    assert debug.steps[1].cause == "capability"
    noopt = trace(policy, "lst_t", ["sock=tcp", "setsockopt=SO_KEEPALIVE"])
    assert noopt.steps[1].errno == "EACCES" and not noopt.allowed


def test_inherited_socket_has_the_creators_label(policy: Policy) -> None:
    steps = ["sock=tcp", "bind=127.0.0.1:80", "listen", "handoff", "accept", "recv"]
    tr = trace(policy, "svc_t", steps, socket_from="act_t")
    assert tr.completes and tr.allowed
    by_step = {s.step.step.text: s for s in tr.steps}
    for text in ("sock=tcp", "bind=127.0.0.1:80", "listen"):
        assert by_step[text].step.subject.type == "act_t"
    for text in ("accept", "recv"):
        (r,) = by_step[text].results
        # the service is the subject, the inherited (and the accepted) socket is act_t's
        assert (r.check.subject.type, r.check.target.type) == ("svc_t", "act_t")
    # svc_t cannot make its own socket
    own = trace(policy, "svc_t", ["sock=tcp", "listen"])
    assert own.steps[0].errno == "EACCES"
    # without handoff the creator makes socket() only; svc_t may not bind act_t's socket
    only = trace(policy, "svc_t", ["sock=tcp", "bind=127.0.0.1:80"], socket_from="act_t")
    assert only.steps[0].step.subject.type == "act_t" and only.steps[1].errno == "EACCES"
    assert only.steps[1].results[0].check.subject.type == "svc_t"


def test_kernel_state_errors(policy: Policy) -> None:
    cases = {
        ("sock=tcp", "send"): "EPIPE",
        ("sock=tcp", "recv"): "ENOTCONN",
        ("sock=udp", "send"): "EDESTADDRREQ",
        ("sock=tcp", "accept"): "EINVAL",
        ("sock=tcp", "bind=127.0.0.1:0", "bind=127.0.0.1:0"): "EINVAL",
        ("sock=tcp", "listen", "connect=127.0.0.1:80"): "EISCONN",
    }
    for steps, errno in cases.items():
        tr = trace(policy, "cli_t", list(steps))
        assert tr.steps[-1].errno == errno and tr.steps[-1].cause == "kernel", steps
        assert all(s.errno is None for s in tr.steps[:-1]), steps


@pytest.mark.parametrize("steps", [
    [], ["bind=127.0.0.1:0"], ["sock=tcp", "fly"], ["sock=tcp", "bind=[::1]:0"],
    ["sock=tcp", "handoff"], ["sock=tcp", "setsockopt=SO_NOPE"], ["sock=tcpx"],
    ["sock=tcp", "listen=5"], ["sock=tcp", "connect"],
])
def test_bad_steps_are_input_errors(steps: list[str], policy: Policy) -> None:
    with pytest.raises(InputError):
        trace(policy, "cli_t", steps)


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, Any]:
    rc = main([*argv, "--json"])
    return rc, json.loads(capsys.readouterr().out)


def test_cli_json_matches_the_schema(capsys: pytest.CaptureFixture[str],
                                     policy_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((Path(__file__).parent.parent / "docs" / "schemas" /
                         "trace.schema.json").read_text())
    p = ["--policy", str(policy_path)]
    rc, obj = _json(capsys, ["trace", "svc_t", "sock=tcp", "bind=127.0.0.1:80", "listen",
                             "handoff", "accept", "recv", "--socket-from", "act_t", *p])
    assert rc == 0 and obj["allowed"] and obj["socket_from"] == "system_u:system_r:act_t"
    assert [s["errno"] for s in obj["steps"]] == [None] * 6
    assert obj["steps"][4]["checks"][0]["subject"].split(":")[2] == "svc_t"
    jsonschema.validate(obj, schema)
    rc, obj = _json(capsys, ["trace", "cli_t", "sock=udp", "bind=0.0.0.0:68", "send", *p])
    assert rc == 1 and obj["first_denial"] == {"step": 1, "check": 1}
    assert obj["steps"][2]["reached"] is False
    jsonschema.validate(obj, schema)
    rc, obj = _json(capsys, ["trace", "cli_t", "sock=tcp", "bind=nowhere", *p])
    assert rc == 2 and obj["exit"] == 2
    jsonschema.validate(obj, schema)
    assert main(["trace", "svc_t", "sock=tcp", "handoff", *p]) == 2  # handoff needs a creator


def test_send_bind_and_unbound_listen_presets(capsys: pytest.CaptureFixture[str],
                                              policy_path: Path) -> None:
    p = ["--policy", str(policy_path)]
    rc, obj = _json(capsys, ["send", "srv_t", "127.0.0.1:67/udp", "--bind", "0.0.0.0:68", *p])
    assert rc == 0
    assert [(c["step"], c["perm"]) for c in obj["checks"]] == [
        ("socket", "create"), ("bind", "bind"), ("bind", "name_bind"), ("bind", "node_bind"),
        ("bind", "net_bind_service"), ("send", "write")]
    rc, obj = _json(capsys, ["listen", "lst_t", *p])
    assert rc == 0 and obj["endpoint"] == "0.0.0.0:0/tcp"
    assert [c["perm"] for c in obj["checks"]] == ["create", "listen", "accept", "read", "write"]
    rc, obj = _json(capsys, ["listen", "lst_t", "tcp6", *p])
    assert rc == 0 and obj["endpoint"] == "[::]:0/tcp"
    assert main(["listen", "lst_t", "udp", *p]) == 2  # a datagram server must bind


def test_parse_steps_requires_a_socket_first() -> None:
    with pytest.raises(InputError):
        parse_steps(["listen"], False)
    assert [s.op for s in parse_steps(["sock=udp6", "connect=unspec"], False)] == ["sock",
                                                                                  "connect"]


def test_operation_commands_note_an_excluding_ping_group_range(
        capsys: pytest.CaptureFixture[str], policy_path: Path) -> None:
    argv = ["send", "ping_t", "127.0.0.1/icmp", "--policy", str(policy_path)]
    rc, obj = _json(capsys, [*argv, "--sysctl", "net.ipv4.ping_group_range=1 0"])
    assert rc == 0 and any("fails with EACCES" in n for n in obj["notes"])
    rc, obj = _json(capsys, [*argv, "--sysctl", "net.ipv4.ping_group_range=0 0"])
    assert rc == 0 and not any("fails with EACCES" in n for n in obj["notes"])


def test_limited_broadcast_needs_so_broadcast(policy: Policy) -> None:
    # udp_sendmsg: EACCES from the kernel, not SELinux, without SO_BROADCAST
    tr = trace(policy, "cli_t", ["sock=udp", "sendto=255.255.255.255:67"])
    assert (tr.steps[1].errno, tr.steps[1].cause) == ("EACCES", "kernel") and tr.allowed
    tr = trace(policy, "cli_t", ["sock=udp", "setsockopt=SO_BROADCAST",
                                 "sendto=255.255.255.255:67"])
    assert tr.completes


# -- a socket passed to another domain: file_has_perm (fd use, then read and write) ----------
FD_POLICY = """
(type rcv_t) (type norw_t) (roletype system_r rcv_t) (roletype system_r norw_t)
(typeattributeset domain (rcv_t norw_t))
(allow svc_t act_t (fd (use)))
(allow norw_t act_t (fd (use)))
(allow norw_t act_t (tcp_socket (accept)))
(allow rcv_t act_t (tcp_socket (read write accept)))
"""
PASS_STEPS = ["sock=tcp", "bind=127.0.0.1:80", "listen", "{how}", "accept", "recv"]


@pytest.fixture(scope="module")
def fd_policy(compile_cil: CompileCil) -> Policy:
    return load_policy([str(compile_cil(POLICY + CAPS + FD_POLICY))], use_cache=False)


def _pass(policy: Policy, domain: str, how: str) -> TraceResult:
    return trace(policy, domain, [s.format(how=how) for s in PASS_STEPS], socket_from="act_t")


@pytest.mark.parametrize("how", ["recvfd", "exec"])
def test_passed_socket_checks_fd_use_then_read_write(fd_policy: Policy, how: str) -> None:
    ok = _pass(fd_policy, "svc_t", how)
    step = ok.steps[3]
    assert [(r.check.tclass, r.check.perm, r.check.target.type, r.decision.allowed)
            for r in step.results] == [("fd", "use", "act_t", True),
                                       ("tcp_socket", "read", "act_t", True),
                                       ("tcp_socket", "write", "act_t", True)]
    assert ok.completes and ok.allowed
    # the creator itself receives: the SIDs are equal, no fd use check
    same = trace(fd_policy, "act_t", [s.format(how=how) for s in PASS_STEPS[:4]],
                 socket_from="act_t")
    assert [r.check.perm for r in same.steps[3].results] == ["read", "write"]


def test_recvfd_denials_install_no_descriptor(fd_policy: Policy) -> None:
    nouse = _pass(fd_policy, "rcv_t", "recvfd")
    st = nouse.steps[3]
    assert (st.errno, st.cause) == ("MSG_CTRUNC", "avc")
    assert [r.reached for r in st.results] == [True, False, False]  # inode_has_perm not made
    assert not nouse.steps[4].reached
    # read and write are one avc_has_perm call: both are made, both denied
    norw = _pass(fd_policy, "norw_t", "recvfd").steps[3]
    assert [(r.check.perm, r.reached, r.decision.allowed) for r in norw.results] == [
        ("use", True, True), ("read", True, False), ("write", True, False)]
    assert norw.errno == "MSG_CTRUNC" and norw.denial == 1


def test_exec_denials(fd_policy: Policy) -> None:
    # read/write denied: the exec succeeds, /dev/null replaces the socket, accept fails
    norw = _pass(fd_policy, "norw_t", "exec")
    ex, acc = norw.steps[3], norw.steps[4]
    assert (ex.errno, ex.denial) == (None, 1)
    assert (acc.errno, acc.cause) == ("ENOTSOCK", "closed")
    assert not any(r.reached for r in acc.results)  # sockfd_lookup fails before the hook
    assert not norw.steps[5].reached
    # fd use denied: the new program's own mappings are refused too, the exec dies
    nouse = _pass(fd_policy, "rcv_t", "exec")
    assert (nouse.steps[3].errno, nouse.steps[3].cause) == ("SIGSEGV", "avc")


def test_fd_rules_through_a_module_overlay_match_secilc(compile_cil: CompileCil,
                                                        tmp_path: Path) -> None:
    """A CIL module's fd rules, applied in memory on the binary base, decide as the policy
    secilc compiles with the module does (allow, dontaudit, conditional)."""
    mod = tmp_path / "fdmod.cil"
    mod.write_text("(allow rcv_t act_t (fd (use)))\n(dontaudit norw_t cli_t (fd (use)))\n"
                   "(boolean fdbool false)\n"
                   "(booleanif fdbool (true (allow norw_t srv_t (fd (use)))))\n")
    base = compile_cil(POLICY + CAPS + FD_POLICY)
    layered = load_policy([str(base), str(mod)], use_cache=False)
    whole = load_policy([str(compile_cil(POLICY + CAPS + FD_POLICY + mod.read_text()))],
                        use_cache=False)
    assert layered.overlay is not None
    for pol in (layered, whole):
        for bools in ({}, {"fdbool": True}):
            d = Decider(pol, pol.bool_values(bools))
            got = [(d.decide(s, t, "fd", "use").allowed, d.decide(s, t, "fd", "use").silent)
                   for s, t in (("rcv_t", "act_t"), ("norw_t", "cli_t"), ("norw_t", "srv_t"))]
            assert got == [(True, False), (False, True), (bool(bools), False)], (pol, bools)
