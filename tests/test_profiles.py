"""Domain profiles, port reports and the matrix (issue #4)."""

from __future__ import annotations

import csv
import importlib.util
import io
import ipaddress
import json
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from selnet.analyses.profiles import (
    PROTOCOLS,
    access_of,
    candidate_targets,
    domain_profile,
    domain_summary,
    group_port_types,
    in_ranges,
    matrix_rows,
    port_report,
    rule_groups,
    socket_context,
    type_report,
)
from selnet.cli import main
from selnet.decide.chain import evaluate
from selnet.decide.decision import Decider
from selnet.kernel.classes import NAME_CONNECT_CLASSES, socket_class
from selnet.model.env import NetEnv
from selnet.model.labels import port_map
from selnet.model.plan import Endpoint, Scenario
from selnet.policy.loader import load_policy
from selnet.render.profile import port_json, profile_json, summary_lines
from tests.conftest import EXAMPLE_CIL

# Overlapping portcons (CIL sorts narrowest first: 8080-8081 beats 8000-8100, 80 beats 1-1023),
# a gap (1024-5431 ...) left to the `port` initial SID, attributes on both sides of rules,
# conditionals with &&, ||, ! and both branches.
SNIPPET = """
(type srv_t) (roletype system_r srv_t)
(type cli_t) (roletype system_r cli_t)
(type helper_t) (roletype system_r helper_t)
(type helper_sock_t)
(type www_port_t) (type alt_port_t) (type db_port_t) (type gen_port_t)
(typeattribute web_servers) (typeattributeset web_servers (srv_t))
(typeattribute web_ports) (typeattributeset web_ports (www_port_t alt_port_t))
(typeattributeset port_type (www_port_t alt_port_t db_port_t gen_port_t))
(boolean b_a false) (boolean b_b false) (boolean b_c true)
(portcon tcp 80 (system_u object_r www_port_t low_low))
(portcon tcp (8000 8100) (system_u object_r alt_port_t low_low))
(portcon tcp (8080 8081) (system_u object_r www_port_t low_low))
(portcon tcp (1 1023) (system_u object_r gen_port_t low_low))
(portcon tcp 5432 (system_u object_r db_port_t low_low))
(portcon udp (1 1023) (system_u object_r gen_port_t low_low))
(allow web_servers self (tcp_socket (create bind listen accept connect read write)))
(allow web_servers web_ports (tcp_socket (name_bind)))
(allow web_servers node_t (tcp_socket (node_bind)))
(allow srv_t self (capability (net_bind_service)))
(booleanif (and b_a b_b)
    (true (allow srv_t db_port_t (tcp_socket (name_connect)))))
(booleanif (or b_a (not b_c))
    (true (allow srv_t gen_port_t (tcp_socket (name_connect))))
    (false (allow srv_t port_t (tcp_socket (name_connect)))))
(allow cli_t self (tcp_socket (create connect read write)))
(allow cli_t web_ports (tcp_socket (name_connect)))
(allow cli_t self (udp_socket (create connect read write bind)))
(allow cli_t node_t (udp_socket (node_bind)))
(allow cli_t port_type (udp_socket (name_bind)))
(typetransition helper_t helper_t tcp_socket helper_sock_t)
(allow helper_t helper_sock_t (tcp_socket (create connect read write)))
(allow helper_t www_port_t (tcp_socket (name_connect)))
(allow helper_sock_t db_port_t (tcp_socket (name_connect)))
"""


@pytest.fixture(scope="module")
def policy(compile_cil: Callable[..., Path]) -> Any:
    return load_policy([str(compile_cil(SNIPPET))])


@pytest.fixture(scope="module")
def policy_path(compile_cil: Callable[..., Path]) -> Path:
    return compile_cil(SNIPPET)


def _grants(grants: Any) -> dict[str, tuple[str, bool, str | None]]:
    return {
        g.type: (
            ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in g.ranges),
            g.access.allowed,
            g.access.condition,
        )
        for g in grants
    }


# -- the port map ------------------------------------------------------------------------------
def test_port_map_first_match_and_initial_sid(policy: Any) -> None:
    tcp = [
        (iv.low, iv.high, iv.context.type, iv.initial_sid)
        for iv in port_map(policy).intervals["tcp"]
    ]
    assert tcp == [
        (1, 79, "gen_port_t", False),
        (80, 80, "www_port_t", False),
        (81, 1023, "gen_port_t", False),
        (1024, 5431, "port_t", True),
        (5432, 5432, "db_port_t", False),
        (5433, 7999, "port_t", True),
        (8000, 8079, "alt_port_t", False),
        (8080, 8081, "www_port_t", False),
        (8082, 8100, "alt_port_t", False),
        (8101, 65535, "port_t", True),
    ]
    assert [iv.context.type for iv in port_map(policy).intervals["sctp"]] == ["port_t"]


def test_port_map_agrees_with_label_lookup(policy: Any) -> None:
    from selnet.model.labels import port_label

    pm = port_map(policy)
    for proto in PROTOCOLS:
        for port in (1, 79, 80, 81, 1023, 1024, 5432, 8000, 8080, 8081, 8082, 8100, 8101, 65535):
            assert pm.lookup(proto, port).context == port_label(policy, proto, port).context


# -- domain profiles, by hand ---------------------------------------------------------------------
def test_server_profile(policy: Any) -> None:
    prof = domain_profile(policy, "srv_t")
    tcp = prof.server[0]
    assert tcp.protocol == "tcp"
    assert _grants(tcp.name_bind) == {
        "www_port_t": ("80, 8080-8081", True, ""),
        "alt_port_t": ("8000-8079, 8082-8100", True, ""),
    }
    assert tcp.name_bind_ports == ((80, 80), (8000, 8100))
    assert [(n.type, n.access.allowed) for n in tcp.node_bind] == [("node_t", True)]
    assert tcp.bindable == ((80, 80), (8000, 8100), (32768, 60999))
    assert tcp.no_name_bind == (32768, 60999)
    assert all(a.allowed for a in tcp.socket_perms.values())
    assert prof.capabilities["net_bind_service"].allowed
    udp = prof.server[1]
    assert udp.name_bind == () and udp.bindable == ()


def test_client_profile_conditionals(policy: Any) -> None:
    prof = domain_profile(policy, "srv_t")
    tcp = prof.client[0]
    assert tcp.port_checked
    # Conditions print as sesearch prints them (second operand first, "! b").
    assert _grants(tcp.name_connect) == {
        "gen_port_t": ("1-79, 81-1023", False, "! b_c || b_a"),
        "port_t": ("1024-5431, 5433-7999, 8101-65535", True, "!(! b_c || b_a)"),
        "db_port_t": ("5432", False, "b_b && b_a"),
    }
    db = next(g for g in tcp.name_connect if g.type == "db_port_t")
    assert db.access.fixes == ({"b_a": True, "b_b": True},)
    assert "udp" in prof.unrestricted_clients


def test_boolean_effects(policy: Any) -> None:
    prof = domain_profile(policy, "srv_t")
    eff = {b.name: b for b in prof.booleans}
    assert set(eff) == {"b_a", "b_c"}  # b_b alone changes nothing while b_a is off
    assert eff["b_a"].current is False
    assert [(c.what, c.type) for c in eff["b_a"].when_on] == [("tcp name_connect", "gen_port_t")]
    assert [(c.what, c.type) for c in eff["b_a"].when_off] == [("tcp name_connect", "port_t")]
    assert eff["b_c"].current is True
    assert [c.type for c in eff["b_c"].when_on] == ["port_t"]
    assert [c.type for c in eff["b_c"].when_off] == ["gen_port_t"]
    # with b_a on, b_b now matters: it adds db_port_t
    prof2 = domain_profile(policy, "srv_t", policy.bool_values({"b_a": True}))
    eff2 = {b.name: b for b in prof2.booleans}
    assert [(c.type, c.ranges) for c in eff2["b_b"].when_on] == [("db_port_t", ((5432, 5432),))]


def test_target_attribute_and_client(policy: Any) -> None:
    prof = domain_profile(policy, "cli_t")
    tcp = prof.client[0]
    assert _grants(tcp.name_connect) == {
        "www_port_t": ("80, 8080-8081", True, ""),
        "alt_port_t": ("8000-8079, 8082-8100", True, ""),
    }
    assert tcp.reachable == ((80, 80), (8000, 8100))
    assert prof.server[0].bindable == ()  # no tcp bind at all
    # udp: name_bind on every port_type (port_t included), but no capability
    udp = prof.server[1]
    assert _grants(udp.name_bind) == {
        "gen_port_t": ("1-1023", True, ""),
        "port_t": ("1024-65535", True, ""),
    }
    assert udp.bindable == ((1024, 65535),)  # below 1024 needs net_bind_service


def test_socket_type_transition_is_the_subject(policy: Any) -> None:
    prof = domain_profile(policy, "helper_t")
    tcp = prof.client[0]
    assert tcp.socket.endswith(":helper_sock_t")
    # the rule on helper_t -> www_port_t is never used: the socket is the subject
    assert _grants(tcp.name_connect) == {"db_port_t": ("5432", True, "")}
    # and the summary says so
    lines = summary_lines(domain_summary(policy, prof))
    assert f"  tcp: socket (labeled {tcp.socket}) create connect write read: yes" in lines
    assert "    name_connect now: db_port_t (5432)" in lines


def test_sysctl_changes_free_range(policy: Any) -> None:
    env = NetEnv(local_port_range=(8000, 9000))
    prof = domain_profile(policy, "srv_t", env=env)
    tcp = prof.server[0]
    assert tcp.no_name_bind == (8000, 9000)
    assert tcp.bindable == ((80, 80), (8000, 9000))


def test_unknown_domain_is_input_error(policy: Any) -> None:
    from selnet.errors import InputError

    with pytest.raises(InputError):
        domain_profile(policy, "nosuch_t")


# -- port reports --------------------------------------------------------------------------------
def test_port_report(policy: Any) -> None:
    rep = port_report(policy, 8080, "tcp")
    assert rep.type == "www_port_t"
    assert rep.label is not None and [s.record.context.type for s in rep.label.shadowed] == [
        "alt_port_t"
    ]
    assert rep.ranges == {"tcp": ((80, 80), (8080, 8081))}
    assert [u.domain for u in rep.bind["tcp"]] == ["srv_t"]
    assert [u.domain for u in rep.connect["tcp"]] == ["cli_t"]
    assert "web_ports" in rep.attributes
    assert not rep.ephemeral


def test_port_report_conditions_and_socket_label(policy: Any) -> None:
    rep = port_report(policy, 5432, "tcp")
    users = {u.domain: u for u in rep.connect["tcp"]}
    assert set(users) == {"srv_t", "helper_t"}
    assert users["srv_t"].access.condition == "b_b && b_a" and not users["srv_t"].access.allowed
    assert users["helper_t"].socket_type == "helper_sock_t" and users["helper_t"].access.allowed


def test_port_report_initial_sid_and_ephemeral(policy: Any) -> None:
    rep = port_report(policy, 40000, "tcp")
    assert rep.type == "port_t" and rep.label is not None and rep.label.initial_sid == "port"
    assert rep.ephemeral and [n.code for n in rep.notes][:1] == ["port-ephemeral"]
    users = {u.domain: u.access for u in rep.connect["tcp"]}
    assert users["srv_t"].allowed and users["srv_t"].condition == "!(! b_c || b_a)"
    udp = port_report(policy, 53, "udp")
    assert udp.connect == {} and [u.domain for u in udp.bind["udp"]] == ["cli_t"]


def test_type_report(policy: Any) -> None:
    rep = type_report(policy, "gen_port_t")
    assert rep.ranges == {"tcp": ((1, 79), (81, 1023)), "udp": ((1, 1023),)}
    assert [u.domain for u in rep.bind["udp"]] == ["cli_t"]


# -- the matrix, and its equivalence with Decider -------------------------------------------------
def _brute_force(policy: Any) -> set[tuple[str, str, str, str, str, bool]]:
    """Decider for every domain x every port context: (domain, proto, op, type, cond, now)."""
    decider = Decider(policy, policy.bool_values(None))
    out = set()
    pm = port_map(policy)
    for d in policy.domains():
        dom = policy.context_for_domain(d)
        for proto in PROTOCOLS:
            sclass = {
                "tcp": "tcp_socket",
                "udp": "udp_socket",
                "sctp": "sctp_socket",
                "dccp": "dccp_socket",
            }[proto]
            if sclass not in policy.snap.classes:
                continue
            sock = socket_context(policy, dom, sclass, decider.bools)
            for perm, op in (("name_bind", "bind"), ("name_connect", "connect")):
                if op == "connect" and proto == "udp":
                    continue
                for ctx in pm.contexts(proto):
                    acc = access_of(decider.decide(sock, ctx, sclass, perm))
                    if acc.possible:
                        out.add((d, proto, op, ctx.type, acc.condition or "", acc.allowed))
    return out


def test_matrix_equals_decider(policy: Any) -> None:
    rows = list(matrix_rows(policy))
    got = {
        (r.domain, r.protocol, r.operation, r.port_type, r.condition, r.allowed_now) for r in rows
    }
    assert got == _brute_force(policy)
    srv = {
        (r.operation, r.low, r.high, r.port_type, r.condition)
        for r in rows
        if r.domain == "srv_t" and r.protocol == "tcp"
    }
    assert ("connect", 5432, 5432, "db_port_t", "b_b && b_a") in srv
    assert ("bind", 8080, 8081, "www_port_t", "") in srv


def test_matrix_on_example_policy_respects_constraints() -> None:
    policy = load_policy([str(EXAMPLE_CIL)])
    rows = list(matrix_rows(policy))
    got = {
        (r.domain, r.protocol, r.operation, r.port_type, r.condition, r.allowed_now) for r in rows
    }
    assert got == _brute_force(policy)
    # MCS: web_t/client_t at s0 may never reach tenant_port_t (s0:c1), whatever the booleans
    assert not any(
        r.port_type == "tenant_port_t" and r.domain in ("web_t", "client_t") for r in rows
    )
    assert any(r.port_type == "tenant_port_t" and r.domain == "admin_t" for r in rows)


# -- CLI ------------------------------------------------------------------------------------------
def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_domain_json(policy_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(
        ["domain", "srv_t", "--policy", str(policy_path), "--json", "--bool", "b_a=on"], capsys
    )
    assert rc == 0
    data = json.loads(out)
    assert set(data) >= {
        "domain",
        "server",
        "client",
        "booleans",
        "capabilities",
        "labeled_networking",
        "obsolete",
        "not_port_restricted",
    }
    tcp = data["client"][0]
    assert {g["type"]: g["allowed"] for g in tcp["name_connect"]}["gen_port_t"] is True
    rc, out, _ = _run(["domain", "srv_t", "--policy", str(policy_path), "--full"], capsys)
    assert rc == 0 and "80, 8080-8081 (www_port_t)" in out
    # the summary (default) groups both of web_ports' types under the attribute
    rc, out, _ = _run(["domain", "srv_t", "--policy", str(policy_path)], capsys)
    assert rc == 0
    assert "name_bind now: web_ports (2 port types: 80, 8000-8100)" in out
    assert data["summary"]["server"][0]["now"][0]["attribute"] == "web_ports"


# -- the summary: grouped, nothing lost ------------------------------------------------------
def test_group_port_types_attributes_and_every(policy: Any) -> None:
    # udp: port_type's port types are gen_port_t and port_t (the initial SID): every one
    groups = group_port_types(policy, "udp", {"gen_port_t", "port_t"})
    assert [(g.attribute, g.every, g.ranges) for g in groups] == [("port_type", True, ((1, 65535),))]
    # tcp: web_ports is used only when both its types are in the set
    groups = group_port_types(policy, "tcp", {"www_port_t", "alt_port_t", "db_port_t"})
    assert [(g.attribute, g.types) for g in groups] == [
        ("web_ports", ("www_port_t", "alt_port_t")), (None, ("db_port_t",))]
    groups = group_port_types(policy, "tcp", {"www_port_t", "db_port_t"})
    assert [(g.attribute, g.types) for g in groups] == [
        (None, ("www_port_t",)), (None, ("db_port_t",))]
    # ... or when its other types are allowed anyway (``within``)
    groups = group_port_types(policy, "tcp", {"www_port_t"}, within={"alt_port_t"})
    assert [(g.attribute, g.types) for g in groups] == [(None, ("www_port_t",))]


def test_summary_booleans_group_what_they_open(policy: Any) -> None:
    prof = domain_profile(policy, "cli_t")
    summ = domain_summary(policy, prof)
    udp = summ.server[1]
    assert [(g.attribute, g.every) for g in udp.now] == [("port_type", True)]
    prof = domain_profile(policy, "srv_t")
    summ = domain_summary(policy, prof)
    eff = {b.name: b for b in summ.booleans}
    # b_c off would grant name_connect on gen_port_t; on (now) grants port_t
    assert [(c.what, [g.types for g in c.groups]) for c in eff["b_c"].when_off] == [
        ("tcp name_connect", [("gen_port_t",)])]
    lines = summary_lines(summ)
    assert "  b_c (on now): on allows tcp name_connect port_t (1024-5431, 5433-7999, " \
           "8101-65535); off allows tcp name_connect gen_port_t (1-79, 81-1023)" in lines
    # db_port_t needs b_a and b_b: no single boolean opens it, the side counts it
    tcp = summ.client[0]
    assert tcp.later == 2  # gen_port_t (b_a or !b_c) and db_port_t (b_a && b_b)
    for d in policy.domains():
        _summary_facts_hold(policy, domain_summary(policy, domain_profile(policy, d)))


def _summary_facts_hold(policy: Any, summ: Any) -> None:
    """Every group of the summary is true port by port: the now-groups are exactly the
    profile's allowed grants, and each boolean's groups are allowed with that value."""
    prof = summ.profile
    for side, full in ((summ.server, prof.server), (summ.client, prof.client)):
        for s, f in zip(side, full, strict=True):
            grants = f.name_bind if s.perm == "name_bind" else f.name_connect
            assert {t for g in s.now for t in g.types} == {
                g.type for g in grants if g.access.allowed}, (s.protocol, s.perm)
    pm = port_map(policy)
    dom = policy.context_for_domain(prof.domain)
    effects = {b.name: b for b in prof.booleans}
    for b in summ.booleans:
        for value, changes in ((True, b.when_on), (False, b.when_off)):
            eff = effects[b.name]
            bools = {**policy.bool_values(None), b.name: value}
            decider = Decider(policy, bools)
            for c in changes:
                proto, _, perm = c.what.partition(" ")
                if not c.groups:
                    continue
                sclass = f"{proto}_socket"
                sock = socket_context(policy, dom, sclass, bools)
                for g in c.groups:
                    for ctx in pm.contexts(proto):
                        if ctx.type in g.types:
                            assert decider.decide(sock, ctx, sclass, perm).allowed, (
                                b.name, value, ctx.type)
            # and every type the boolean changes is in some group
            raw = {(c.what, c.type) for c in (eff.when_on if value else eff.when_off)}
            grouped = {(c.what, t) for c in changes for g in c.groups for t in g.types}
            grouped |= {(c.what, t) for c in changes for t in c.types}
            grouped |= {(c.what, None) for c in changes if not c.groups and not c.types}
            assert raw <= grouped, (b.name, value, raw - grouped)


@pytest.mark.refpolicy
def test_refpolicy_domain_summary_fits_on_a_screen(
    refpolicy_standard: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = load_policy([str(refpolicy_standard)])
    outs = {}
    for d in ("httpd_t", "sshd_t"):
        rc, out, _ = _run(["domain", d, "--policy", str(refpolicy_standard)], capsys)
        assert rc == 0 and len(out.splitlines()) <= 40, (d, len(out.splitlines()))
        outs[d] = out
        rc, full, _ = _run(["domain", d, "--policy", str(refpolicy_standard), "--full"], capsys)
        assert len(full.splitlines()) > 400  # --full keeps every port type and grant
        _summary_facts_hold(policy, domain_summary(policy, domain_profile(policy, d)))
    httpd = outs["httpd_t"]
    assert "    name_bind now: http_port_t (80, 443, 488, 8008-8009, 8443, 8448), " \
           "http_cache_port_t (3128, 8080, 8118, 10001-10010)" in httpd
    assert "  httpd_can_network_connect (off now): on allows tcp name_connect every port type " \
           "(through port_type)\n" in httpd
    assert "name_connect now: dns_port_t (53, 853); " in httpd
    sshd = outs["sshd_t"]
    assert "    name_connect now: every port type (through port_type)\n" in sshd
    assert "    connect() succeeds now to: 1-65535\n" in sshd
    assert "  sshd_port_forwarding (off now): on allows tcp name_bind every port type " \
           "(through port_type)\n" in sshd
    # the claim is true port by port: with the boolean on, every tcp port may be reached
    bools = policy.bool_values({"httpd_can_network_connect": True})
    decider = Decider(policy, bools)
    dom = policy.context_for_domain("httpd_t")
    for ctx in port_map(policy).contexts("tcp"):
        assert decider.decide(dom, ctx, "tcp_socket", "name_connect").allowed, ctx


def test_cli_bad_input(policy_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = ["--policy", str(policy_path)]
    assert _run(["domain", "nosuch_t", *p], capsys)[0] == 2
    assert _run(["domain", "srv_t", "--bool", "nosuch=on", *p], capsys)[0] == 2
    assert _run(["domain", "srv_t", "--sysctl", "bogus=1", *p], capsys)[0] == 2
    assert _run(["port", "8080/icmp", *p], capsys)[0] == 2
    assert _run(["port", "0", *p], capsys)[0] == 2
    assert _run(["port", *p], capsys)[0] == 2
    assert _run(["port", "--type", "nosuch_t", *p], capsys)[0] == 2
    assert _run(["matrix", "--format", "sqlite", *p], capsys)[0] == 2


def test_cli_port(policy_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(["port", "8080", "--policy", str(policy_path), "--json"], capsys)
    data = json.loads(out)
    assert rc == 0 and data["type"] == "www_port_t"
    assert [u["domain"] for u in data["name_bind"]["tcp"]] == ["srv_t"]
    assert data["label"]["shadowed"][0]["record"]["context"].endswith("alt_port_t")
    rc, out, _ = _run(["port", "--type", "www_port_t", "--policy", str(policy_path)], capsys)
    assert rc == 0 and "may name_connect (tcp):" in out and "cli_t" in out


# -- port reports name the rule and the attribute ------------------------------------------------
TE_RULE = re.compile(r"(allow|auditallow|dontaudit) (\S+) (\S+):(\S+) (\S+|\{ [a-z_ ]+ \});")


def _compiles_as_te(statements: list[str], tmp_path: Path, policy: Any) -> None:
    """Each printed statement, pasted into a module with its require block, compiles with
    checkmodule: valid policy syntax, nothing abbreviated."""
    for i, stmt in enumerate(statements):
        m = TE_RULE.fullmatch(stmt)
        assert m, stmt
        _, src, tgt, cls, perms = m.groups()
        names = [n for n in (src, tgt) if n != "self"]
        req = [f"attribute {n};" if n in policy.snap.attr_types else f"type {n};"
               for n in dict.fromkeys(names)]
        te = tmp_path / f"paste{i}.te"
        te.write_text(f"module paste{i} 1.0;\nrequire {{\n  {' '.join(req)}\n"
                      f"  class {cls} {perms.strip('{} ').join(['{ ', ' }'])};\n}}\n{stmt}\n")
        proc = subprocess.run(["checkmodule", "-m", "-o", str(te.with_suffix(".mod")), str(te)],
                              capture_output=True, text=True, check=False)
        assert proc.returncode == 0, (stmt, proc.stderr)


def test_port_names_rule_and_attribute(
    policy: Any, policy_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rep = port_report(policy, 8080, "tcp")
    (srv,) = rep.bind["tcp"]
    assert srv.rule is not None and srv.rule.source == "web_servers"
    assert (srv.via, srv.via_target) == ("web_servers", "web_ports")
    rc, out, _ = _run(["port", "8080", "--policy", str(policy_path)], capsys)
    assert "    srv_t  allow web_servers web_ports:tcp_socket name_bind; (via attribute " \
           "web_servers; port type via attribute web_ports)\n" in out
    rc, out, _ = _run(["port", "8080", "--policy", str(policy_path), "--json"], capsys)
    data = json.loads(out)
    (u,) = data["name_bind"]["tcp"]
    assert (u["rule"], u["via"], u["via_target"]) == (
        "allow web_servers web_ports:tcp_socket name_bind;", "web_servers", "web_ports")
    assert data["name_bind_by_rule"]["tcp"][0]["domains"] == ["srv_t"]
    # a conditional grant: the statement stays pasteable, the condition is worded beside it
    rc, out, _ = _run(["port", "5432", "--policy", str(policy_path), "--full"], capsys)
    assert rc == 0
    line = next(x for x in out.splitlines() if x.startswith("    srv_t"))
    assert line == "    srv_t  allow srv_t db_port_t:tcp_socket name_connect;  " \
                   "[if b_b && b_a: off now; needs b_a=on, b_b=on]"
    stmts = [TE_RULE.search(x) for x in out.splitlines()]
    _compiles_as_te([m.group(0) for m in stmts if m], tmp_path, policy)


@pytest.mark.refpolicy
def test_refpolicy_port_groups_by_rule(
    refpolicy_standard: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = load_policy([str(refpolicy_standard)])
    p = ["--policy", str(refpolicy_standard)]
    rc, out, _ = _run(["port", "80", *p], capsys)
    lines = out.splitlines()
    assert rc == 0 and len(lines) <= 40
    assert "    httpd_t  allow httpd_t http_port_t:tcp_socket name_bind;" in lines
    rep = port_report(policy, 80, "tcp")
    # a group line names how many domains share the rule, and they all do
    unconf = next(g for g in rule_groups(rep.bind["tcp"]) if g.rule is not None
                  and g.rule.source == "corenet_unconfined_type")
    assert f"    {len(unconf.users)} domains  allow corenet_unconfined_type port_type:tcp_socket " \
           f"name_bind; (via attribute corenet_unconfined_type; port type via attribute " \
           f"port_type): " in out
    assert all(u.via == "corenet_unconfined_type" and u.access.allowed for u in unconf.users)
    rc, full, _ = _run(["port", "80", *p, "--full"], capsys)
    named = {x.split()[0] for x in full.splitlines() if x.startswith("    ") and "allow" in x}
    assert named == {u.domain for us in (*rep.bind.values(), *rep.connect.values()) for u in us}
    stmts = [m.group(0) for x in (out + full).splitlines() if (m := TE_RULE.search(x))]
    assert len(stmts) > 100
    _compiles_as_te(sorted(set(stmts))[::25], tmp_path, policy)


def test_cli_matrix_formats(
    policy_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = ["--policy", str(policy_path)]
    rc, out, err = _run(["matrix", *p], capsys)
    assert rc == 0 and err == ""  # no progress when stderr is not a terminal
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {
        "domain",
        "protocol",
        "operation",
        "low",
        "high",
        "port_type",
        "condition",
        "allowed_now",
    } <= set(rows[0])
    rc, out, _ = _run(["matrix", "--format", "jsonl", *p], capsys)
    lines = [json.loads(x) for x in out.splitlines()]
    assert len(lines) == len(rows)
    db = tmp_path / "m.sqlite"
    rc, out, _ = _run(["matrix", "--format", "sqlite", "-o", str(db), "--json", *p], capsys)
    assert rc == 0 and json.loads(out)["rows"] == len(rows)
    con = sqlite3.connect(db)
    n = con.execute(
        "SELECT allowed_now, count(*) FROM matrix WHERE domain='srv_t' "
        "AND condition!='' GROUP BY allowed_now ORDER BY allowed_now"
    ).fetchall()
    # off now: gen_port_t (2 ranges) + db_port_t; on now: port_t's 3 ranges (false branch)
    assert n == [(0, 3), (1, 3)]
    con.close()


def test_json_of_example_profile_is_serializable() -> None:
    policy = load_policy([str(EXAMPLE_CIL)])
    data = profile_json(domain_profile(policy, "web_t"))
    json.dumps(data)
    obsolete = data["obsolete"]
    assert isinstance(obsolete, list)
    obs = {(o["class"], o["perm"]) for o in obsolete}
    assert ("tcp_socket", "send_msg") in obs and ("netif", "tcp_recv") in obs
    json.dumps(port_json(port_report(policy, 9100, "tcp")))


# -- the full reference policy: profiles agree with the kernel model port by port ---------
# fmt: off
SAMPLE_PORTS = (1, 21, 22, 25, 53, 80, 88, 111, 123, 389, 443, 500, 514, 631, 1023, 1024, 1900,
                2049, 3128, 3306, 5060, 5432, 5900, 6000, 6379, 8080, 8443, 9090, 10000, 20000,
                32768, 40000, 60999, 61000, 65535)
# fmt: on


def _chain(policy: Any, bools: dict[str, bool], op: str, dom: Any, port: int, proto: str) -> Any:
    addr = ipaddress.ip_address("0.0.0.0" if op == "bind" else "127.0.0.1")
    return evaluate(policy, Scenario(op, dom, Endpoint(addr, port, proto), NetEnv()), bools)


@pytest.mark.refpolicy
def test_refpolicy_profiles_match_evaluate(refpolicy_mcs: Path) -> None:
    policy = load_policy([str(refpolicy_mcs)])
    bools = policy.bool_values(None)
    wanted = [
        "httpd_t",
        "sshd_t",
        "named_t",
        "postgresql_t",
        "mysqld_t",
        "squid_t",
        "ntpd_t",
        "dhcpd_t",
        "cupsd_t",
        "postfix_master_t",
        "postfix_smtpd_t",
        "dovecot_t",
        "slapd_t",
        "smbd_t",
        "nmbd_t",
        "rpcbind_t",
        "nfsd_t",
        "openvpn_t",
        "snmpd_t",
        "syslogd_t",
        "xinetd_t",
        "ftpd_t",
        "unconfined_t",
        "sysadm_t",
        "user_t",
    ]
    domains = [d for d in wanted if policy.snap.resolve_type(d)]
    assert len(domains) >= 20
    checked = 0
    for d in domains:
        dom = policy.context_for_domain(d)
        prof = domain_profile(policy, d, bools)
        for side in prof.server:
            if side.protocol not in ("tcp", "udp"):
                continue
            nb = list(side.name_bind_ports)
            bindable = list(side.bindable)
            for port in SAMPLE_PORTS:
                chain = _chain(policy, bools, "bind", dom, port, side.protocol)
                assert chain.allowed == in_ranges(bindable, port), (d, side.protocol, port)
                for r in chain.results:
                    if r.check.perm == "name_bind":
                        assert r.decision.allowed == in_ranges(nb, port), (d, port)
                checked += 1
        tcp = prof.client[0]
        for port in SAMPLE_PORTS:
            chain = _chain(policy, bools, "connect", dom, port, "tcp")
            assert chain.allowed == in_ranges(list(tcp.reachable), port), (d, port)
            nc = next(r for r in chain.results if r.check.perm == "name_connect")
            assert nc.decision.allowed == in_ranges(list(tcp.name_connect_ports), port), (d, port)
            checked += 1
    assert checked > 2000


@pytest.mark.refpolicy
def test_refpolicy_matrix_runs_and_agrees(refpolicy_mcs: Path) -> None:
    policy = load_policy([str(refpolicy_mcs)])
    rows = list(matrix_rows(policy))
    assert len(rows) > 10000
    by_dom: dict[str, set[tuple[str, str, str]]] = {}
    for r in rows:
        if r.allowed_now:
            by_dom.setdefault(r.domain, set()).add((r.protocol, r.operation, r.port_type))
    for d in ("httpd_t", "named_t", "sshd_t", "postgresql_t"):
        prof = domain_profile(policy, d)
        want = {
            (s.protocol, "bind", g.type)
            for s in prof.server
            for g in s.name_bind
            if g.access.allowed
        }
        want |= {
            (c.protocol, "connect", g.type)
            for c in prof.client
            for g in c.name_connect
            if g.access.allowed
        }
        assert by_dom.get(d, set()) == want, d
    # every granted row is Decider's verdict (sampled: one row in 200)
    decider = Decider(policy, policy.bool_values(None))
    pm = port_map(policy)
    for r in rows[::200]:
        dom = policy.context_for_domain(r.domain)
        sclass = f"{r.protocol}_socket"
        sock = socket_context(policy, dom, sclass, decider.bools)
        ctx = pm.lookup(r.protocol, r.low).context
        perm = "name_bind" if r.operation == "bind" else "name_connect"
        assert decider.decide(sock, ctx, sclass, perm).allowed == r.allowed_now


def _matrix_unmemoised(policy: Any, domains: list[str]) -> list[tuple[object, ...]]:
    """The matrix as it was computed before issue 13: one Decider decision per domain and
    port context, contexts sorted by their first port."""
    decider = Decider(policy, policy.bool_values(None))
    pm = port_map(policy)
    out: list[tuple[object, ...]] = []
    for d in domains:
        dom = policy.context_for_domain(d)
        for proto in PROTOCOLS:
            by_ctx = pm.ranges(proto)
            sclass = socket_class(proto, policy.snap.polcaps)
            sock = socket_context(policy, dom, sclass, decider.bools)
            for perm, op in (("name_bind", "bind"), ("name_connect", "connect")):
                if perm == "name_connect" and sclass not in NAME_CONNECT_CLASSES:
                    continue
                if perm in policy.snap.classes.get(sclass, ()):
                    cands = candidate_targets(policy, sclass, sock.type, perm)
                    ctxs = [c for c in by_ctx if c.type in cands]
                else:
                    ctxs = list(by_ctx)
                for ctx in sorted(ctxs, key=lambda c: by_ctx[c][0]):
                    acc = access_of(decider.decide(sock, ctx, sclass, perm))
                    if acc.possible:
                        out.extend((d, proto, op, lo, hi, ctx.type, acc.condition or "",
                                    acc.allowed, sock.type) for lo, hi in by_ctx[ctx])
    return out


def test_matrix_rows_unchanged_by_memoisation(policy: Any) -> None:
    domains = list(policy.domains())
    assert [r.as_tuple() for r in matrix_rows(policy)] == _matrix_unmemoised(policy, domains)
    example = load_policy([str(EXAMPLE_CIL)])  # MCS constraints
    assert [r.as_tuple() for r in matrix_rows(example)] == _matrix_unmemoised(
        example, list(example.domains()))


def test_verdict_alone_equals_the_decision(policy: Any) -> None:
    """Decider.allowed (what the fix engine's measurements ask, no provenance built) and
    Decisions.allowed_as give decide()'s verdict on every domain x type x socket permission,
    under every boolean setting, with MCS constraints and with a typebound."""
    from selnet.analyses.decisions import Decisions

    example = load_policy([str(EXAMPLE_CIL)])
    bounded = load_policy([str(EXAMPLE_CIL)])
    doms = list(bounded.domains())
    bounded.snap.bounds[doms[0]] = doms[-1]  # the kernel still enforces a bound
    checked = denied = 0
    for pol in (policy, example, bounded):
        names = sorted(pol.snap.booleans)
        settings = [dict.fromkeys(names, False), dict.fromkeys(names, True)]
        types = sorted(pol.snap.type_attrs)
        for bools in settings:
            decider, memo = Decider(pol, bools), Decisions(pol, bools)
            for d in pol.domains():
                scon = pol.context_for_domain(d)
                for t in types:
                    tcon = pol.object_context(t)
                    for tclass in ("tcp_socket", "udp_socket"):
                        for perm in ("name_bind", "name_connect", "node_bind", "recv_msg"):
                            want = decider.decide(scon, tcon, tclass, perm).allowed
                            assert decider.allowed(scon, tcon, tclass, perm) == want
                            key = memo.key(scon, tcon, tclass, perm)
                            assert memo.allowed_as(key, scon, tcon, tclass, perm) == want
                            checked += 1
                            denied += not want
    assert checked > 1000 and 0 < denied < checked


@pytest.mark.refpolicy
def test_refpolicy_matrix_rows_unchanged_by_memoisation(
    refpolicy_standard: Path, refpolicy_mcs: Path
) -> None:
    # Decisions are shared between domains and port types with equal keys: the rows
    # must be exactly the unshared ones, in the same order (UBAC constraints read t1/t2,
    # MCS ones the levels).
    for path in (refpolicy_standard, refpolicy_mcs):
        policy = load_policy([str(path)])
        domains = list(policy.domains())[::7]
        got = [r.as_tuple() for r in matrix_rows(policy, domains=domains)]
        assert len(got) > 10000
        assert got == _matrix_unmemoised(policy, domains)


# -- a generated policy with many port types (bench/gen_policy.py) ----------------------------
@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Any:
    spec = importlib.util.spec_from_file_location(
        "gen_policy", Path(__file__).resolve().parent.parent / "bench" / "gen_policy.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    out = gen.build(300, tmp_path_factory.mktemp("gen") / "gen300.policy")
    return load_policy([str(out)])


def test_generated_policy_profile_and_summary(generated: Any) -> None:
    policy = generated
    prof = domain_profile(policy, "web_t")
    grp1 = {f"p{i}_port_t" for i in range(100, 200)}
    tcp = prof.server[0]
    assert {g.type for g in tcp.name_bind if g.access.allowed} == grp1 | {
        f"p{i}_port_t" for i in range(5)}
    summ = domain_summary(policy, prof)
    assert [(g.attribute, len(g.types)) for g in summ.server[0].now] == [
        ("grp1_port_type", 100), *((None, 1),) * 5]
    eff = {b.name: b for b in summ.booleans}
    (conn,) = eff["web_can_network_connect"].when_on
    assert [(g.attribute, g.every) for g in conn.groups] == [("port_type", True)]
    # gen_port_type holds every generated type but not port_t (the gaps): not "every"
    admin = domain_summary(policy, domain_profile(policy, "admin_t")).client[0]
    assert [(g.attribute, g.every, len(g.types)) for g in admin.now] == [
        ("gen_port_type", False, 300)]
    _summary_facts_hold(policy, summ)
    domains = list(policy.domains())
    assert [r.as_tuple() for r in matrix_rows(policy)] == _matrix_unmemoised(policy, domains)


def test_readme_port_example_is_current(capsys: pytest.CaptureFixture[str]) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = re.search(r"```\n\$ selnet port 80\n(.*?)```", readme, re.S)
    assert block is not None
    rc, out, _ = _run(["port", "80", "--policy", str(EXAMPLE_CIL)], capsys)
    root = str(Path(__file__).resolve().parent.parent) + "/"
    assert rc == 0 and out.replace(root, "") == block.group(1)


def test_cli_entry_point_runs() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "selnet", "domain", "web_t", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["domain"].startswith("system_u:system_r:web_t")
