"""selnet diff / whatif: the effective network difference, with causes, on compiled policies.

Each test compiles the two sides with secilc (tests/policies/base.cil + a snippet) and
asserts what changed, port by port, and why.  The overlay test checks the overlay
against a secilc recompile of the same module: whatif must see exactly what diff of the
real compiled policy sees.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from selnet.cli.main import main
from selnet.policy.loader import load_policy
from selnet.policy.overlay import AddPortcon
from selnet.review.boolfn import FALSE, TRUE, conj, of_conditions
from selnet.review.diff import DiffFilter, diff_policies
from selnet.review.types import NetChange, PolicyDiff
from tests.conftest import CompileCil

BASE = """
(handleunknown deny)
(policycap network_peer_controls) (policycap extended_socket_class)
(type server_t) (type client_t) (type other_t)
(typeattributeset domain (server_t client_t other_t))
(roletype system_r server_t) (roletype system_r client_t) (roletype system_r other_t)
(type http_port_t) (type db_port_t)
(typeattributeset port_type (http_port_t db_port_t))
(typeattribute web_clients)
(allow server_t self (tcp_socket (create bind listen accept read write)))
(allow server_t node_type (tcp_socket (node_bind)))
(allow server_t self (capability (net_bind_service)))
(allow server_t http_port_t (tcp_socket (name_bind)))
(allow client_t self (tcp_socket (create connect read write)))
(allow other_t self (tcp_socket (create connect read write)))
(allow web_clients http_port_t (tcp_socket (name_connect)))
(typeattributeset web_clients (client_t))
(portcon tcp 80 (system_u object_r http_port_t low_low))
(portcon tcp 5432 (system_u object_r db_port_t low_low))
"""

DB_RULE = "(booleanif db_connect (true (allow client_t db_port_t (tcp_socket (name_connect)))))"


def _pair(compile_cil: CompileCil, old: str, new: str) -> PolicyDiff:
    a = load_policy([str(compile_cil(BASE + old))])
    b = load_policy([str(compile_cil(BASE + new))])
    return diff_policies(a, b)


def _causes(d: PolicyDiff) -> set[str]:
    return {c.summary for ch in d.changes for c in ch.causes}


def _at(d: PolicyDiff, domain: str, op: str, port: int, proto: str = "tcp") -> NetChange:
    found = [c for c in d.changes if c.domain == domain and c.operation == op
             and c.protocol == proto and any(lo <= port <= hi for lo, hi in c.ports)]
    assert len(found) == 1, found
    return found[0]


# -- boolean functions ---------------------------------------------------------------
def test_boolfn_is_canonical() -> None:
    a_or_b = of_conditions([(("a", "b", "||"), True)])
    not_both_off = of_conditions([(("a", "!", "b", "!", "&&", "!"), True)])
    assert a_or_b == not_both_off
    assert a_or_b.expression() == "a || b"
    # A boolean that changes nothing is dropped: (a && b) || (a && !b) is a.
    assert of_conditions([(("a", "b", "&&"), True), (("a", "b", "!", "&&"), True)]) == \
        of_conditions([(("a",), True)])
    assert of_conditions([(("a",), False)]).expression() == "!a"
    assert of_conditions([(None, True), (("a",), True)]) == TRUE
    assert of_conditions([]) == FALSE
    assert conj(of_conditions([(("a",), True)]), of_conditions([(("a",), False)])) == FALSE


# -- diff ----------------------------------------------------------------------------
def test_same_policy_is_no_difference(compile_cil: CompileCil) -> None:
    d = _pair(compile_cil, "(boolean db_connect false)\n" + DB_RULE,
              "(boolean db_connect false)\n" + DB_RULE)
    assert d.equal and d.changes == ()
    assert d.domains_compared >= 3


def test_one_portcon_one_rule_one_boolean_default_are_exactly_three_causes(
        compile_cil: CompileCil) -> None:
    old = "(boolean db_connect false)\n" + DB_RULE
    new = ("(boolean db_connect true)\n" + DB_RULE +
           "\n(portcon tcp 8080 (system_u object_r http_port_t low_low))"
           "\n(allow other_t db_port_t (tcp_socket (name_connect)))")
    d = _pair(compile_cil, old, new)
    assert _causes(d) == {
        "portcon tcp 8080: port_t -> http_port_t",
        "rule added: allow other_t db_port_t:tcp_socket name_connect;",
        "boolean db_connect default off -> on",
    }
    # 8080 is now http_port_t: the server may bind it, the client may reach it.
    bind = _at(d, "server_t", "bind", 8080)
    assert (bind.before.state, bind.after.state, bind.direction) == ("denied", "allowed",
                                                                   "gained")
    assert bind.ports == ((8080, 8080),)
    # The portcon cause carries the records and the rules on both sides.
    cause = next(c for c in bind.causes if c.kind == "portcon")
    assert cause.before == ("(no portcon: the port initial SID)",)
    assert cause.after[0].startswith("portcon tcp 8080 system_u:object_r:http_port_t")
    assert "allow server_t http_port_t:tcp_socket name_bind;" in cause.after
    reach = _at(d, "client_t", "connect", 8080)
    assert reach.after.state == "allowed" and reach.direction == "gained"
    # The boolean default: same condition, now allowed.
    db = _at(d, "client_t", "connect", 5432)
    assert (db.before.state, db.before.condition, db.before.now) == ("conditional",
                                                                     "db_connect", False)
    assert (db.after.state, db.after.now) == ("conditional", True)
    assert [c.kind for c in db.causes] == ["boolean"]
    rule = _at(d, "other_t", "connect", 5432)
    assert rule.causes[0].after == ("allow other_t db_port_t:tcp_socket name_connect;",)
    # Nothing else changed: server_t's other ports, other_t elsewhere.
    assert {(c.domain, c.operation) for c in d.changes} == {
        ("server_t", "bind"), ("client_t", "connect"), ("other_t", "connect")}


def test_resplit_range_and_equivalent_condition_are_no_difference(
        compile_cil: CompileCil) -> None:
    old = ("(portcon tcp (8000 8010) (system_u object_r http_port_t low_low))\n"
           "(boolean a false) (boolean b false)\n"
           "(booleanif (or a b) (true (allow other_t db_port_t (tcp_socket (name_connect)))))")
    new = ("(portcon tcp (8000 8004) (system_u object_r http_port_t low_low))\n"
           "(portcon tcp (8005 8010) (system_u object_r http_port_t low_low))\n"
           "(boolean a false) (boolean b false)\n"
           "(booleanif (not (and (not b) (not a)))"
           " (true (allow other_t db_port_t (tcp_socket (name_connect)))))")
    d = _pair(compile_cil, old, new)
    assert d.equal, [(c.domain, c.ports, c.causes) for c in d.changes]


def test_a_port_retyped_to_one_the_domain_may_also_use_is_no_difference(
        compile_cil: CompileCil) -> None:
    # client_t may connect to http_port_t and (unconditionally) db_port_t: moving 5432 from
    # one to the other changes no decision.
    rule = "(allow client_t db_port_t (tcp_socket (name_connect)))"
    old = rule + "\n(portcon tcp 9000 (system_u object_r db_port_t low_low))"
    new = rule + "\n(portcon tcp 9000 (system_u object_r http_port_t low_low))"
    d = _pair(compile_cil, old, new)
    assert not [c for c in d.changes if c.domain == "client_t"]
    # ...but server_t may bind http_port_t only: it gains 9000.
    assert _at(d, "server_t", "bind", 9000).direction == "gained"


def test_attribute_membership_and_permissive_are_causes(compile_cil: CompileCil) -> None:
    d = _pair(compile_cil, "", "(typeattributeset web_clients (other_t))\n"
              "(typepermissive server_t)")
    reach = _at(d, "other_t", "connect", 80)
    assert reach.direction == "gained"
    assert [c.kind for c in reach.causes] == ["attribute"]
    assert reach.causes[0].after == ("typeattribute other_t web_clients;",)
    bind = _at(d, "server_t", "bind", 5432)
    assert bind.after.state == "permissive" and bind.direction == "gained"
    assert bind.causes[0].kind == "permissive"
    # A permissive domain's unchecked ports were open already: no change there.
    assert not [c for c in d.changes if c.domain == "server_t" and c.protocol == "tcp" and
                c.operation == "bind" and any(lo <= 80 <= hi for lo, hi in c.ports)]
    assert _at(d, "server_t", "connect", 80).ports == ((1, 65535),)


def test_bind_below_the_unprivileged_start_needs_the_capability(
        compile_cil: CompileCil) -> None:
    d = _pair(compile_cil, "", "(allow client_t http_port_t (tcp_socket (name_bind)))\n"
              "(allow client_t self (tcp_socket (bind)))\n"
              "(allow client_t node_type (tcp_socket (node_bind)))")
    ports = [c.ports for c in d.changes if c.domain == "client_t" and c.operation == "bind"
             and c.protocol == "tcp"]
    # Every port the kernel does not check for name_bind opens too (the local range:
    # bind() there needs only the socket and node permissions); 80 needs
    # net_bind_service, which client_t lacks.
    flat = [r for ps in ports for r in ps]
    assert (32768, 60999) in flat
    assert not any(lo <= 80 <= hi for lo, hi in flat)


def test_whatif_overlay_agrees_with_a_secilc_recompile(compile_cil: CompileCil,
                                                       tmp_path: Path) -> None:
    module = ("(portcon tcp 8443 (system_u object_r http_port_t low_low))\n"
              "(allow other_t http_port_t (tcp_socket (name_connect)))\n"
              "(typeattributeset web_clients (server_t))\n")
    cil = tmp_path / "mod.cil"
    cil.write_text(module)
    base_path = compile_cil(BASE)
    base = load_policy([str(base_path)])
    overlaid = load_policy([str(base_path), str(cil)])
    recompiled = load_policy([str(compile_cil(BASE + module))])
    via_overlay = diff_policies(base, overlaid)
    via_secilc = diff_policies(base, recompiled)

    def key(d: PolicyDiff) -> set[tuple[object, ...]]:
        return {(c.domain, c.operation, c.protocol, c.ports, c.before, c.after, c.direction)
                for c in d.changes}

    assert key(via_overlay) == key(via_secilc)
    assert len(via_overlay.changes) >= 3


def test_filters(compile_cil: CompileCil) -> None:
    a = load_policy([str(compile_cil(BASE))])
    b = a.with_changes(AddPortcon("tcp", 8080, 8080, "http_port_t"),
                       AddPortcon("tcp", 9090, 9090, "http_port_t"))
    everything = diff_policies(a, b)
    assert {c.domain for c in everything.changes} == {"server_t", "client_t"}
    one = diff_policies(a, b, only=DiffFilter(frozenset({"client_t"}), ((None, 9090),)))
    assert [(c.domain, c.ports) for c in one.changes] == [("client_t", ((9090, 9090),))]


# -- the reference policy ------------------------------------------------------------
def test_whatif_port_on_the_reference_policy(refpolicy_standard: Path) -> None:
    base = load_policy([str(refpolicy_standard)])
    d = diff_policies(base, base.with_changes(AddPortcon("tcp", 8082, 8082, "http_port_t")))
    gained = {c.domain for c in d.changes if c.operation == "bind" and c.direction == "gained"
              and c.ports == ((8082, 8082),) and c.after.state == "allowed"}
    assert "httpd_t" in gained
    # Every gain is on 8082/tcp and names the portcon.
    assert all(c.ports == ((8082, 8082),) and c.protocol == "tcp" for c in d.changes)
    assert all(any(x.kind == "portcon" for x in c.causes) for c in d.changes)
    # Domains that reached unreserved ports lose 8082 (it is no longer unreserved_port_t).
    assert any(c.direction == "lost" for c in d.changes)


def test_diff_against_debians_policy_names_causes(refpolicy_standard: Path,
                                                  debian_local: Path) -> None:
    a = load_policy([str(refpolicy_standard)])
    b = load_policy([str(debian_local)])
    domains = frozenset({"httpd_t", "sshd_t", "named_t", "squid_t", "postfix_smtpd_t"})
    d = diff_policies(a, b, only=DiffFilter(domains))
    assert d.changes, "Debian's policy and refpolicy differ for these services"
    for c in d.changes:
        assert c.causes and all(x.kind != "other" for x in c.causes), c


# -- the command line ----------------------------------------------------------------
def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().out


def test_cli_exit_codes_and_formats(compile_cil: CompileCil,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    old = str(compile_cil(BASE + "(boolean db_connect false)\n" + DB_RULE))
    new = str(compile_cil(BASE + "(boolean db_connect true)\n" + DB_RULE))
    assert _run(["diff", old, old], capsys)[0] == 0
    code, out = _run(["diff", old, new], capsys)
    assert code == 1
    assert "boolean db_connect default off -> on" in out and len(out.splitlines()) <= 40
    assert _run(["diff", old, new, "--fail-on", "lost"], capsys)[0] == 0
    assert _run(["diff", new, old, "--fail-on", "lost"], capsys)[0] == 1
    code, out = _run(["diff", old, new, "--json"], capsys)
    obj = json.loads(out)
    assert obj["schema_version"] == 1 and obj["equal"] is False
    ch = obj["changes"][0]
    assert set(ch) >= {"domain", "operation", "protocol", "ports", "before", "after", "causes"}
    assert ch["ports"] == [[5432, 5432]] and ch["direction"] == "gained"
    code, out = _run(["diff", old, new, "--csv"], capsys)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["domain"], r["ports"], r["direction"]) for r in rows] == [
        ("client_t", "5432", "gained")]
    code, out = _run(["diff", old, new, "--domain", "clinet_t"], capsys)
    assert code == 2


def test_cli_whatif(compile_cil: CompileCil, capsys: pytest.CaptureFixture[str]) -> None:
    pol = str(compile_cil(BASE + "(boolean db_connect false)\n" + DB_RULE))
    code, out = _run(["whatif", "--policy", pol, "--bool", "db_connect=on", "--json"], capsys)
    obj = json.loads(out)
    assert code == 1 and obj["new"]["changes"] == ["setsebool -P db_connect on"]
    assert [(c["domain"], c["ports"]) for c in obj["changes"]] == [("client_t", [[5432, 5432]])]
    code, out = _run(["whatif", "--policy", pol, "--port", "tcp 8080 http_port_t", "--json"],
                     capsys)
    got = {(c["domain"], c["operation"]) for c in json.loads(out)["changes"]}
    assert got == {("server_t", "bind"), ("client_t", "connect")}
    code, out = _run(["whatif", "--policy", pol, "--rule",
                      "allow other_t { http_port_t db_port_t }:tcp_socket name_connect;",
                      "--json", "--only-port", "5432"], capsys)
    assert [(c["domain"], c["ports"]) for c in json.loads(out)["changes"]] == [
        ("other_t", [[5432, 5432]])]
    assert _run(["whatif", "--policy", pol, "--bool", "db_connect=off"], capsys)[0] == 0
    assert _run(["whatif", "--policy", pol, "--rule", "allow x_t"], capsys)[0] == 2
    assert _run(["whatif", "--policy", pol], capsys)[0] == 2


def test_cli_diff_whole_reference_policy_against_itself(refpolicy_standard: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "selnet", "diff", str(refpolicy_standard),
                           str(refpolicy_standard)], capture_output=True, text=True,
                          check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "no difference in network access" in proc.stdout


def test_json_matches_the_schemas(compile_cil: CompileCil,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    root = Path(__file__).resolve().parent.parent / "docs" / "schemas"
    old = str(compile_cil(BASE + "(boolean db_connect false)\n" + DB_RULE))
    new = str(compile_cil(BASE + "(boolean db_connect true)\n" + DB_RULE +
                          "\n(typepermissive other_t)"))
    cases = [("diff", ["diff", old, new]), ("diff", ["diff", old, old]),
             ("diff", ["diff", old, "/nonexistent.policy"]),
             ("whatif", ["whatif", "--policy", old, "--port", "tcp 8080 http_port_t"]),
             ("whatif", ["whatif", "--policy", old, "--bool", "nope=on"])]
    for command, argv in cases:
        code, out = _run([*argv, "--json"], capsys)
        obj = json.loads(out)
        schema = json.loads((root / f"{command}.schema.json").read_text())
        errors = list(jsonschema.Draft202012Validator(schema).iter_errors(obj))
        assert not errors, (argv, errors[0].message)
        assert (code == 2) == ("error" in obj)


def test_cli_whatif_module_and_layered_diff(compile_cil: CompileCil, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    pol = str(compile_cil(BASE))
    mod = tmp_path / "web.cil"
    mod.write_text("(portcon tcp 8443 (system_u object_r http_port_t low_low))\n")
    code, out = _run(["whatif", "--policy", pol, "--module", str(mod), "--json"], capsys)
    obj = json.loads(out)
    assert code == 1
    assert {(c["domain"], c["operation"], tuple(map(tuple, c["ports"])))
            for c in obj["changes"]} == {("server_t", "bind", ((8443, 8443),)),
                                         ("client_t", "connect", ((8443, 8443),))}
    assert [m["path"] for m in obj["new"]["modules"]] == [str(mod)]
    # The same module layered on NEW in a diff gives the same answer.
    code, out = _run(["diff", pol, pol, "--new-module", str(mod), "--json"], capsys)
    again = json.loads(out)
    assert again["changes"] == obj["changes"]
