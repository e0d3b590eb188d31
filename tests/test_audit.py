"""selnet audit: parsing every format, diagnosis, ranked and verified fixes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selnet.audit.auditor import AuditReport, run_audit
from selnet.cli import main
from selnet.model.env import NetEnv
from selnet.policy.loader import load_policy
from selnet.render.audit import explanation

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "audit"
BASE = ROOT / "tests" / "policies" / "base.cil"
SNIPPET = DATA / "audit-policy.cil"


@pytest.fixture(scope="module")
def policy():  # type: ignore[no-untyped-def]
    return load_policy([str(BASE), str(SNIPPET)])


def audit(policy, text: str, **kw) -> AuditReport:  # type: ignore[no-untyped-def]
    kw.setdefault("use_interfaces", False)
    return run_audit(policy, [text.splitlines()], **kw)


def group(rep: AuditReport, situation: str):  # type: ignore[no-untyped-def]
    got = [g for g in rep.groups if g.situation == situation]
    assert got, [(g.domain, g.situation) for g in rep.groups]
    return got[0]


def avc(perm: str, extra: str, scon: str, tcon: str, tclass: str = "tcp_socket",
        serial: int = 100, permissive: int = 0) -> str:
    return (f"type=AVC msg=audit(1700000000.{serial % 1000:03d}:{serial}): avc:  denied  "
            f"{{ {perm} }} for  pid=812 comm=\"web\" {extra} scontext={scon} tcontext={tcon} "
            f"tclass={tclass} permissive={permissive}")


WEB = "system_u:system_r:web_t"
GEN = "system_u:object_r:gen_port_t"


# -- situations on the small CIL policy ---------------------------------------------------
def test_generic_port_relabel_with_add(policy) -> None:  # type: ignore[no-untyped-def]
    rep = audit(policy, avc("name_bind", "src=8500", WEB, GEN))
    g = group(rep, "generic-port-type")
    assert g.fix is not None and g.fix.kind == "port-label" and g.fix.verified
    assert g.fix.commands == ("semanage port -a -t svc_port_t -p tcp 8500",)
    assert g.fix.tier == 0 and g.fix.opens is not None and g.fix.opens.port_numbers == 1
    assert rep.exit_denied


def test_boolean_narrowest_first(policy) -> None:  # type: ignore[no-untyped-def]
    rep = audit(policy, avc("name_connect", "dest=5432", WEB, "system_u:object_r:db_port_t"))
    g = group(rep, "boolean-off")
    booleans = [f for f in g.fixes if f.kind == "boolean"]
    assert [f.commands[0] for f in booleans][:2] == [
        "setsebool -P web_connect_db on", "setsebool -P web_connect_any on"]
    assert g.fix is not None and g.fix.commands == ("setsebool -P web_connect_db on",)
    assert booleans[1].broad and "generic" in booleans[1].flags  # generic port types
    assert g.fixes.index(booleans[1]) > g.fixes.index(next(f for f in g.fixes if f.kind == "rule"))
    assert not any(f.kind == "port-label" for f in g.fixes)  # a service's port keeps its label


def test_rule_fix_verified_on_the_overlay(policy) -> None:  # type: ignore[no-untyped-def]
    rep = audit(policy, avc("name_bind", "src=5432", WEB, "system_u:object_r:db_port_t"))
    g = group(rep, "missing-service-port-rule")
    rule = next(f for f in g.fixes if f.kind == "rule")
    assert rule.verified and rule.changes  # applied through the overlay, decided again
    assert rule.commands[0] == "allow web_t db_port_t:tcp_socket name_bind;"
    assert rule.cil == ("(allow web_t db_port_t (tcp_socket (name_bind)))",)


def test_port_label_not_installed(policy) -> None:  # type: ignore[no-untyped-def]
    rep = audit(policy, avc("name_bind", "src=9100", "system_u:system_r:worker_t", GEN))
    g = group(rep, "port-label-not-installed")
    assert g.fix is not None
    assert g.fix.commands == ("semanage port -a -t pkg_port_t -p tcp 9100",)


def test_constraint_no_rule_fix(policy) -> None:  # type: ignore[no-untyped-def]
    rep = audit(policy, avc("name_bind", "src=8080", "system_u:system_r:conf_t",
                            "system_u:object_r:svc_port_t"))
    g = group(rep, "constraint")
    assert g.fix is None
    assert any("constraint" in line for line in explanation(g))


def test_ephemeral_port_range(policy) -> None:  # type: ignore[no-untyped-def]
    lines = [avc("name_bind", f"src={p}", WEB, t, serial=200 + i)
             for i, (p, t) in enumerate([(61001, GEN), (62010, GEN), (63999, GEN),
                                         (5432, "system_u:object_r:db_port_t")])]
    rep = audit(policy, "\n".join(lines))
    g = group(rep, "ephemeral-port-range")
    assert g.fix is not None and g.fix.kind == "port-range" and g.fix.verified
    assert 'net.ipv4.ip_local_port_range="32768 63999"' in g.fix.commands[-1]
    # random ports are never relabeled one by one
    assert not any(f.kind in ("port-label", "new-port-type") for f in g.fixes)


def test_socket_owned_by_other_domain(policy) -> None:  # type: ignore[no-untyped-def]
    rep = audit(policy, avc("accept", "lport=80", WEB, "system_u:system_r:init_t"))
    g = group(rep, "socket-owned-by-other-domain")
    assert g.fix is not None and g.fix.kind == "rule"
    # the rule is on the creator's socket label, and covers serving on it (tests/
    # test_audit_inherited.py checks the permissions against the trace model)
    assert g.fix.commands[0].startswith("allow web_t init_t:tcp_socket {")
    assert "accept" in g.fix.commands[0]


def test_labeled_networking_peer_subject(policy) -> None:  # type: ignore[no-untyped-def]
    line = ('type=AVC msg=audit(1700000000.300:300): avc:  denied  { ingress } for  pid=0 '
            'comm="swapper/0" saddr=10.0.0.5 src=40000 daddr=10.0.0.1 dest=80 netif=eth0 '
            'scontext=system_u:object_r:unlabeled_t tcontext=system_u:object_r:netif_t '
            'tclass=netif permissive=0')
    rep = audit(policy, line)
    g = group(rep, "labeled-networking")
    text = " ".join(explanation(g))
    assert "PEER label" in text and "no label was supplied" in text and "softirq" in text


def test_dontaudit_permissive_foreign_obsolete(policy) -> None:  # type: ignore[no-untyped-def]
    lines = [
        avc("name_bind", "src=9999", WEB, GEN, tclass="udp_socket", serial=1),
        avc("name_bind", "src=8600", WEB, GEN, serial=2, permissive=1),
        avc("name_connect", "dest=80", "system_u:system_r:httpd_t",
            "system_u:object_r:http_port_t", serial=3),
        avc("send_msg", "", WEB, "system_u:object_r:svc_port_t", serial=4),
    ]
    rep = audit(policy, "\n".join(lines))
    by_key = {(g.tclass, g.target): g for g in rep.groups}
    assert len(by_key) == len(rep.groups) == 4
    hidden = by_key[("udp_socket", "gen_port_t")]
    assert hidden.entries[0].diag.situations == ["generic-port-type", "dontaudit-hidden"]
    assert hidden.still_denied
    assert any("semodule -DB" in line for line in explanation(hidden))
    perm = by_key[("tcp_socket", "gen_port_t")]
    assert perm.entries[0].diag.situations == ["generic-port-type", "permissive"]
    assert perm.still_denied and perm.entries[0].diag.rec.permissive
    assert perm.fix is not None
    assert perm.fix.commands == ("semanage port -a -t svc_port_t -p tcp 8600",)
    foreign = by_key[("tcp_socket", "http_port_t")]
    assert foreign.situation == "foreign-policy"
    assert "unknown type httpd_t" in " ".join(explanation(foreign))
    assert foreign.still_denied and foreign.fix is None
    assert by_key[("tcp_socket", "svc_port_t")].situation == "obsolete-permission"
    assert rep.exit_denied


def test_label_changed_since(policy) -> None:  # type: ignore[no-untyped-def]
    # The AVC says gen_port_t but this policy labels 8080 svc_port_t.  The logged access
    # (web_t -> gen_port_t) is still denied: exit 1, with both decisions; the fix gives the
    # port, on the logging machine, the label this policy has.
    rep = audit(policy, avc("name_bind", "src=8080", WEB, GEN))
    g = group(rep, "label-differs")
    d = g.entries[0].diag
    assert d.label_changed and rep.exit_denied and g.still_denied
    [v] = d.verdicts
    assert v.decision is not None and not v.decision.allowed and v.decided_target == "gen_port_t"
    assert v.current is not None and v.current.allowed and v.current_target == "svc_port_t"
    assert g.allowed_now
    assert g.fix is not None and g.fix.commands == ("semanage port -m -t svc_port_t -p tcp 8080",)


# -- every log format ------------------------------------------------------------------------
FORMATS = {
    "raw": avc("name_bind", "src=8500", WEB, GEN),
    "node": "node=web01 " + avc("name_bind", "src=8500", WEB, GEN),
    "ausearch": ("----\ntype=AVC msg=audit(11/25/2026 17:47:24.123:456) : avc:  denied  "
                 "{ name_bind } for  pid=812 comm=web server src=8500 "
                 "scontext=system_u:system_r:web_t tcontext=system_u:object_r:gen_port_t "
                 "tclass=tcp_socket permissive=0"),
    "journald": ("Nov 25 17:47:24 host audit[812]: AVC avc:  denied  { name_bind } for  "
                 "pid=812 comm=\"web\" src=8500 scontext=system_u:system_r:web_t "
                 "tcontext=system_u:object_r:gen_port_t tclass=tcp_socket permissive=0"),
    "kernel": ("[  12.345678] audit: type=1400 audit(1700000000.123:456): avc:  denied  "
               "{ name_bind } for  pid=812 comm=\"web\" src=8500 scontext=system_u:system_r:"
               "web_t tcontext=system_u:object_r:gen_port_t tclass=tcp_socket permissive=0"),
    "wrapped": ("type=AVC msg=audit(1700000000.123:456): avc:  denied  { name_bind } for  "
                "pid=812 comm=\"web\" src=8500\n  scontext=system_u:system_r:web_t "
                "tcontext=system_u:object_r:gen_port_t\n  tclass=tcp_socket permissive=0"),
}


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_formats(policy, fmt: str) -> None:  # type: ignore[no-untyped-def]
    rep = audit(policy, FORMATS[fmt])
    g = group(rep, "generic-port-type")
    assert g.fix is not None
    assert g.fix.commands == ("semanage port -a -t svc_port_t -p tcp 8500",)


def test_grouping_repeats_and_counts(policy) -> None:  # type: ignore[no-untyped-def]
    lines = [avc("name_bind", "src=8500", WEB, GEN, serial=i) for i in range(1, 50)]
    lines += ["", "type=AVC msg=audit(1700000000.5:500): avc:  denied  { name_bind } for pid=1",
              "", "type=USER_AVC msg=audit(1.1:9): pid=1 msg='x'",
              avc("read", "", WEB, "system_u:object_r:gen_port_t", tclass="file", serial=99),
              'type=AVC msg=audit(1700000000.1:77): avc:  granted  { name_bind } for  src=8080 '
              'scontext=system_u:system_r:web_t tcontext=system_u:object_r:svc_port_t '
              'tclass=tcp_socket']
    rep = audit(policy, "\n".join(lines))
    assert len(rep.groups) == 1 and rep.groups[0].count == 49
    assert rep.non_network_records == 1 and rep.granted_records == 1
    assert rep.stats.malformed >= 1


# -- CLI --------------------------------------------------------------------------------------
def test_cli_json_and_exit_codes(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / "a.log"
    log.write_text(avc("name_bind", "src=8500", WEB, GEN) + "\n")
    pol = ["--policy", str(BASE), "--policy", str(SNIPPET)]
    assert main(["audit", *pol, "--json", "--no-interfaces", str(log)]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["groups"][0]["situation"] == "generic-port-type"
    assert out["groups"][0]["fix"]["verified"] is True
    ok = tmp_path / "ok.log"
    ok.write_text(avc("name_bind", "src=8080", WEB, "system_u:object_r:svc_port_t") + "\n")
    assert main(["audit", *pol, "--no-interfaces", str(ok)]) == 0
    capsys.readouterr()
    assert main(["audit", *pol, str(tmp_path / "missing.log")]) == 2
    assert main(["audit", *pol, "--show-broad", "--no-interfaces", str(log)]) == 1
    assert "setenforce 0" in capsys.readouterr().out


# -- permissive and dontaudit, exactly ----------------------------------------------------------
QUIET_CIL = """
(type web_t) (roletype system_r web_t)
(type lax_t) (roletype system_r lax_t)
(typeattributeset domain (web_t lax_t))
(typepermissive lax_t)
(type svc_port_t) (type quiet_port_t) (type cq_port_t)
(typeattributeset port_type (svc_port_t quiet_port_t cq_port_t))
(portcon tcp 8080 (system_u object_r svc_port_t ((s0) (s0))))
(portcon tcp 7000 (system_u object_r quiet_port_t ((s0) (s0))))
(portcon tcp 7001 (system_u object_r cq_port_t ((s0) (s0))))
(allow web_t svc_port_t (tcp_socket (name_bind)))
(allow lax_t svc_port_t (tcp_socket (name_bind)))
(dontaudit web_t quiet_port_t (tcp_socket (name_bind)))
(boolean quiet_mode true)
(booleanif quiet_mode (true (dontaudit web_t cq_port_t (tcp_socket (name_bind)))))
"""


@pytest.fixture(scope="module")
def quiet_policy(compile_cil):  # type: ignore[no-untyped-def]
    return compile_cil(QUIET_CIL)


def _cli_json(argv: list[str], capsys) -> tuple[int, dict]:  # type: ignore[no-untyped-def,type-arg]
    rc = main(["audit", "--json", "--no-interfaces", *argv])
    return rc, json.loads(capsys.readouterr().out)


def test_permissive_record_still_denied(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    # permissive=1: the access went through, but this policy still denies it -> exit 1.
    log = tmp_path / "p.log"
    log.write_text(avc("name_bind", "src=8600", WEB, GEN, permissive=1) + "\n")
    rc, out = _cli_json(["--policy", str(BASE), "--policy", str(SNIPPET), str(log)], capsys)
    assert rc == 1 and out["still_denied"] is True
    [g] = out["groups"]
    assert g["situation"] == "generic-port-type" and g["still_denied"] is True
    [d] = g["denials"]
    assert d["permissive"] is True and d["still_denied"] is True
    assert d["situations"] == ["generic-port-type", "permissive"]
    assert [(v["allowed"], v["reason"], v["enforced"]) for v in d["verdicts"]] == [
        (False, "no-rule", True)]
    assert "permissive=1 in the record: the access succeeded, but would be denied when " \
           "enforcing" in g["explanation"]
    assert g["fix"]["commands"] == ["semanage port -a -t svc_port_t -p tcp 8600"]
    # The same kind of record for an access the policy allows now: not denied, exit 0.
    ok = tmp_path / "ok.log"
    ok.write_text(avc("name_bind", "src=8080", WEB, "system_u:object_r:svc_port_t",
                      permissive=1) + "\n")
    rc, out = _cli_json(["--policy", str(BASE), "--policy", str(SNIPPET), str(ok)], capsys)
    assert rc == 0 and out["still_denied"] is False
    assert out["groups"][0]["denials"][0]["situations"] == ["allowed-now", "permissive"]


@pytest.mark.parametrize("permissive", [0, 1])
def test_permissive_type_in_policy(quiet_policy, permissive: int) -> None:  # type: ignore[no-untyped-def]
    # lax_t is a typepermissive domain: the policy's verdict is still "denied" (not
    # enforced), so the denial counts as still denied and is marked permissive.
    pol = load_policy([str(quiet_policy)])
    rep = audit(pol, avc("name_bind", "src=7000", "system_u:system_r:lax_t",
                         "system_u:object_r:quiet_port_t", permissive=permissive))
    [g] = rep.groups
    d = g.entries[0].diag
    assert d.situations == ["missing-service-port-rule", "permissive"]
    [v] = d.verdicts
    assert v.decision is not None
    assert (v.decision.allowed, v.decision.enforced, v.decision.silent) == (False, False, False)
    assert g.still_denied and rep.exit_denied
    text = "\n".join(explanation(g))
    assert ("name_bind -> quiet_port_t (as logged): denied: no allow rule (lax_t is permissive: "
            "not enforced)") in text
    if not permissive:
        assert "lax_t is a permissive domain in this policy" in text
    assert "dontaudit" not in text  # the dontaudit rules are web_t's, not lax_t's
    # web_t, not permissive, on the same port: no permissive situation.
    rep = audit(pol, avc("name_bind", "src=7001", WEB, "system_u:object_r:cq_port_t"),
                bools={"quiet_mode": False})
    assert rep.groups[0].entries[0].diag.situations == ["missing-service-port-rule"]


@pytest.mark.parametrize(("port", "target", "bools", "hidden"), [
    (7000, "quiet_port_t", None, True),                      # unconditional dontaudit
    (7001, "cq_port_t", None, True),                         # boolean default true
    (7001, "cq_port_t", {"quiet_mode": True}, True),
    (7001, "cq_port_t", {"quiet_mode": False}, False),       # conditional rule inactive
    (8081, "port_t", None, False),                           # no dontaudit at all
])
def test_dontaudit_hidden_exact(quiet_policy, port: int, target: str,  # type: ignore[no-untyped-def]
                                bools: dict[str, bool] | None, hidden: bool) -> None:
    from selnet.render.audit import report_json, report_lines

    pol = load_policy([str(quiet_policy)])
    rep = audit(pol, avc("name_bind", f"src={port}", WEB, f"system_u:object_r:{target}"),
                bools=bools)
    [g] = rep.groups
    base_sit = "generic-port-type" if target == "port_t" else "missing-service-port-rule"
    assert g.entries[0].diag.situations == [base_sit] + (["dontaudit-hidden"] if hidden else [])
    assert g.still_denied and rep.exit_denied
    text = "\n".join(report_lines(rep))
    data = report_json(rep)
    [jd] = data["groups"][0]["denials"]  # type: ignore[index]
    assert [v["dontaudit"] for v in jd["verdicts"]] == [hidden]
    assert ("semodule -DB" in text) is hidden
    assert ("(dontaudit: would not be logged)" in text) is hidden
    assert ("the AVC is not logged" in text) is hidden
    assert any("semodule -DB" in x for x in data["groups"][0]["explanation"]) is hidden  # type: ignore[index]
    assert ("dontaudit-hidden" in jd["situations"]) is hidden
    # the silence does not change what is needed: the verified rule fix is still offered
    rule = next(f for f in g.fixes if f.kind == "rule")
    assert rule.verified
    assert rule.commands[0] == f"allow web_t {target}:tcp_socket name_bind;"


def test_dontaudit_boolean_cli(quiet_policy, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / "q.log"
    log.write_text(avc("name_bind", "src=7001", WEB, "system_u:object_r:cq_port_t") + "\n")
    for flag, hidden in (("quiet_mode=on", True), ("quiet_mode=off", False)):
        rc, out = _cli_json(["--policy", str(quiet_policy), "--bool", flag, str(log)], capsys)
        assert rc == 1
        sits = out["groups"][0]["denials"][0]["situations"]
        assert ("dontaudit-hidden" in sits) is hidden, flag


# -- MLS/MCS constraints on an MLS CIL policy -------------------------------------------------
MCS_CIL = """
(type cli_t) (roletype system_r cli_t)
(type bcli_t) (roletype system_r bcli_t)
(type free_t) (roletype system_r free_t)
(typeattributeset domain (cli_t bcli_t free_t))
(type tenant_port_t) (type svc_port_t) (type gen_port_t)
(typeattributeset port_type (tenant_port_t svc_port_t gen_port_t))
(typeattribute mcs_constrained_type)
(typeattributeset mcs_constrained_type (cli_t bcli_t))
(portcon tcp 9100 (system_u object_r tenant_port_t ((s0 (c1)) (s0 (c1)))))
(portcon tcp 8080 (system_u object_r svc_port_t ((s0) (s0))))
(portcon tcp (10000 20000) (system_u object_r gen_port_t ((s0 (c1)) (s0 (c1)))))
(allow cli_t tenant_port_t (tcp_socket (name_connect)))
(allow free_t tenant_port_t (tcp_socket (name_connect)))
(allow bcli_t svc_port_t (tcp_socket (name_connect)))
(boolean bcli_tenant false)
(booleanif bcli_tenant (true (allow bcli_t tenant_port_t (tcp_socket (name_connect)))))
(mlsconstrain (tcp_socket (name_connect)) (or (dom h1 h2) (neq t1 mcs_constrained_type)))
"""
TENANT = "system_u:object_r:tenant_port_t:s0:c1"


@pytest.fixture(scope="module")
def mcs_policy(compile_cil):  # type: ignore[no-untyped-def]
    return load_policy([str(compile_cil(MCS_CIL, mls=True))])


def _constraint_asserts(g) -> None:  # type: ignore[no-untyped-def]
    d = g.entries[0].diag
    assert g.situation == "constraint" and g.still_denied
    assert d.constraint_text is not None and d.constraint_text.startswith(
        "mlsconstrain tcp_socket name_connect")
    problem = next(x for x in explanation(g) if x.startswith("problem: "))
    assert "mlsconstrain tcp_socket name_connect" in problem
    assert "subject level s0 vs target level s0:c1" in problem
    assert "no allow rule can help" in problem
    # an allow rule, a boolean or a port relabel cannot satisfy a level relation
    assert g.fix is None
    assert not any(f.kind in ("boolean", "semanage-port") for f in g.fixes)


def test_mcs_constraint_with_te_rule(mcs_policy) -> None:  # type: ignore[no-untyped-def]
    rep = audit(mcs_policy, avc("name_connect", "dest=9100", "system_u:system_r:cli_t:s0",
                                TENANT))
    [g] = rep.groups
    assert g.entries[0].diag.situations == ["constraint"]
    _constraint_asserts(g)
    assert rep.exit_denied
    from selnet.render.audit import report_json

    jd = report_json(rep)["groups"][0]["denials"][0]  # type: ignore[index]
    assert jd["constraint"]["statement"].startswith("mlsconstrain tcp_socket name_connect")
    assert [v["reason"] for v in jd["verdicts"]] == ["constraint"]


def test_mcs_constraint_with_boolean_rule(mcs_policy) -> None:  # type: ignore[no-untyped-def]
    # The only rule is under an off boolean: setting it would still leave the MCS
    # constraint failing, so the problem is the constraint, not the boolean.
    rep = audit(mcs_policy, avc("name_connect", "dest=9100", "system_u:system_r:bcli_t:s0",
                                TENANT))
    [g] = rep.groups
    assert g.entries[0].diag.situations == ["constraint", "boolean-off"]
    _constraint_asserts(g)
    # A generic port at s0:c1: constraint first, no relabel offered.
    rep = audit(mcs_policy, avc("name_connect", "dest=15000", "system_u:system_r:bcli_t:s0",
                                "system_u:object_r:gen_port_t:s0:c1"))
    [g] = rep.groups
    assert g.entries[0].diag.situations == ["constraint", "generic-port-type"]
    _constraint_asserts(g)


def test_mcs_levels_decide(mcs_policy) -> None:  # type: ignore[no-untyped-def]
    # the subject's high level dominates s0:c1: the constraint holds
    rep = audit(mcs_policy, avc("name_connect", "dest=9100",
                                "system_u:system_r:cli_t:s0-s0:c1", TENANT))
    assert rep.groups[0].situation == "allowed-now" and not rep.exit_denied
    # not an MCS-constrained type: the constraint holds at s0
    rep = audit(mcs_policy, avc("name_connect", "dest=9100", "system_u:system_r:free_t:s0",
                                TENANT))
    assert rep.groups[0].situation == "allowed-now" and not rep.exit_denied
    # level satisfied, only the boolean is missing: now the boolean is the fix
    rep = audit(mcs_policy, avc("name_connect", "dest=9100",
                                "system_u:system_r:bcli_t:s0-s0:c1", TENANT))
    [g] = rep.groups
    assert g.entries[0].diag.situations == ["boolean-off"]
    assert g.fix is not None and g.fix.commands == ("setsebool -P bcli_tenant on",)


# -- companion records in ausearch -i and journald logs -----------------------------------------
def test_ausearch_companions(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    pol = ["--policy", str(BASE), "--policy", str(SNIPPET)]
    rc, out = _cli_json([*pol, str(DATA / "ausearch-connect.log")], capsys)
    assert rc == 1
    assert out["stats"]["events"] == 2 and out["stats"]["malformed"] == 0
    assert out["stats"]["non_avc_records"] == {"PROCTITLE": 2, "SOCKADDR": 1, "SYSCALL": 2}
    groups = {g["domain"]: g for g in out["groups"]}
    web, worker = groups["web_t"], groups["worker_t"]
    [d] = web["denials"]
    assert d["source_format"] == "ausearch" and d["comms"] == ["web server"]
    assert d["kernel_check"]["operation"] == "connect() to port 5432/tcp"
    assert "syscall connect exit=EACCES comm=web server" in web["explanation"]
    assert "socket address (SOCKADDR): inet 127.0.0.1 port 5432" in web["explanation"]
    [d] = worker["denials"]
    assert d["comms"] == ["job runner"]
    assert d["kernel_check"]["operation"] == "bind() to local port 5432/tcp"
    assert "syscall bind exit=EACCES comm=job runner" in worker["explanation"]
    # the first event's SOCKADDR belongs to it alone
    assert not any("SOCKADDR" in x for x in worker["explanation"])


def test_journald_companions(capsys) -> None:  # type: ignore[no-untyped-def]
    pol = ["--policy", str(BASE), "--policy", str(SNIPPET)]
    rc, out = _cli_json([*pol, str(DATA / "journald-connect.log")], capsys)
    assert rc == 1
    groups = {g["domain"]: g for g in out["groups"]}
    web = groups["web_t"]
    [d] = web["denials"]
    assert d["source_format"] == "journald" and d["pids"] == ["1234"]
    assert d["kernel_check"]["operation"] == "connect() to port 5432/tcp"
    assert "syscall connect exit=EACCES comm=web" in web["explanation"]
    assert "socket address (SOCKADDR): inet 192.168.0.5 port 5432" in web["explanation"]
    # the SYSCALL after worker's AVC is another pid's: not this event's syscall
    worker = groups["worker_t"]
    assert worker["denials"][0]["kernel_check"]["operation"] == "bind() to local port 5432/tcp"
    assert not any(x.startswith("syscall ") for x in worker["explanation"])


# -- exit statuses ------------------------------------------------------------------------------
def test_exit_status_allowed_now_vs_denied(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    pol = ["--policy", str(BASE), "--policy", str(SNIPPET)]
    allowed = [
        avc("name_bind", "src=8080", WEB, "system_u:object_r:svc_port_t", serial=1),
        avc("name_connect", "dest=5432", WEB, "system_u:object_r:db_port_t", serial=3),
    ]
    log = tmp_path / "allowed.log"
    log.write_text("\n".join(allowed) + "\n")
    # with the boolean on, every network denial of the log is allowed now
    rc, out = _cli_json([*pol, "--bool", "web_connect_db=on", str(log)], capsys)
    assert rc == 0 and out["still_denied"] is False
    assert sorted((g["situation"], g["target"], g["count"]) for g in out["groups"]) == [
        ("allowed-now", "db_port_t", 1), ("allowed-now", "svc_port_t", 1)]
    assert all(g["logged"]["allowed"] and g["current"]["allowed"] for g in out["groups"])
    assert out["stats"]["network_denials"] == out["stats"]["distinct_network_denials"] == 2
    # the boolean as the policy sets it: one is still denied
    rc, out = _cli_json([*pol, str(log)], capsys)
    assert rc == 1 and out["still_denied"] is True
    assert [g["situation"] for g in out["groups"]] == ["boolean-off", "allowed-now"]
    # Logged versus current: 8080 logged as gen_port_t (relabeled since).  The logged
    # access is still denied (exit 1) although this policy's label would pass.
    log.write_text(avc("name_bind", "src=8080", WEB, GEN, serial=2) + "\n")
    rc, out = _cli_json([*pol, str(log)], capsys)
    assert rc == 1 and out["still_denied"] is True
    [g] = out["groups"]
    assert g["situation"] == "label-differs"
    assert g["logged"] == {"allowed": False, "target": "gen_port_t"}
    assert g["current"] == {"allowed": True, "target": "svc_port_t"}
    # unreadable input: 2, before any output, even next to a good file
    assert main(["audit", *pol, str(log), str(tmp_path)]) == 2
    assert main(["audit", *pol, str(log), str(tmp_path / "missing.log")]) == 2
    assert capsys.readouterr().out == ""


def test_exit_status_no_network_denials(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    lines = [
        "Nov 25 17:47:24 web01 systemd[1]: Started web.service.",
        avc("read", 'name="shadow"', WEB, "system_u:object_r:gen_port_t", tclass="file",
            serial=1),
        avc("sys_admin", "capability=21", WEB, WEB, tclass="capability", serial=2),
        "type=AVC msg=audit(1700000000.5:500): avc:  denied  { name_bind } for pid=1",
        'type=AVC msg=audit(1700000000.6:501): avc:  denied  { name_bind } for  pid=1 '
        'comm="x" src=80 scontext=system_u:system_r:web_t tcontext',
        "type=SYSCALL msg=audit(1700000000.001:1): arch=c000003e syscall=0 success=no exit=-13",
    ]
    log = tmp_path / "other.log"
    log.write_text("\n".join(lines) + "\n")
    pol = ["--policy", str(BASE), "--policy", str(SNIPPET)]
    rc, out = _cli_json([*pol, str(log)], capsys)
    assert rc == 0 and out["still_denied"] is False and out["groups"] == []
    st = out["stats"]
    assert (st["network_denials"], st["non_network_avcs"], st["granted"]) == (0, 2, 0)
    assert st["malformed"] == 2 and [m["line"] for m in st["malformed_samples"]] == [4, 5]
    assert st["non_avc_records"] == {"SYSCALL": 1}
    assert main(["audit", *pol, "--no-interfaces", str(log)]) == 0
    text = capsys.readouterr().out
    assert "0 network denials" in text and "2 non-network AVCs skipped" in text
    assert "2 malformed lines skipped" in text and "no network denials" in text


# -- the full reference policy -----------------------------------------------------------------
@pytest.fixture(scope="module")
def refpolicy(refpolicy_standard: Path):  # type: ignore[no-untyped-def]
    return load_policy([str(refpolicy_standard)])


HTTPD = "system_u:system_r:httpd_t:s0"


@pytest.mark.refpolicy
def test_refpolicy_httpd_db_boolean(refpolicy) -> None:  # type: ignore[no-untyped-def]
    from selnet.fix.interfaces import DEFAULT_INCLUDE_DIR

    rep = run_audit(refpolicy, [(DATA / "refpolicy-mixed.log").read_text().splitlines()])
    g = group(rep, "boolean-off")
    assert g.fix is not None
    assert g.fix.commands == ("setsebool -P httpd_can_network_connect_db on",)
    kinds = [f.kind for f in g.fixes]
    assert kinds.index("boolean") < kinds.index("rule")
    broad = next(f for f in g.fixes if f.commands == ("setsebool -P httpd_can_network_connect on",))
    assert broad.broad and "every-port" in broad.flags
    assert g.fixes.index(broad) > g.fixes.index(g.fix)
    g2 = group(rep, "generic-port-type")
    assert g2.fix is not None
    assert g2.fix.commands == ("semanage port -a -t http_port_t -p tcp 8500",)
    # The refpolicy interface for the missing rule (selinux-policy-dev's headers, which
    # scripts/bootstrap installs): a broken interface lookup must fail, not pass quietly.
    ifaces = [f for f in g.fixes if f.kind == "interface"]
    if not (DEFAULT_INCLUDE_DIR / "kernel" / "corenetwork.if").is_file():
        assert not ifaces
        pytest.skip(f"{DEFAULT_INCLUDE_DIR} is absent (selinux-policy-dev): interface fix unchecked")
    assert ifaces, [(f.kind, f.commands) for f in g.fixes]
    assert ifaces[0].commands == ("corenet_tcp_connect_postgresql_port(httpd_t)",)


def _bind_denial(policy, port: int, logged_type: str) -> AuditReport:  # type: ignore[no-untyped-def]
    line = avc("name_bind", f"src={port}", HTTPD, f"system_u:object_r:{logged_type}:s0")
    return run_audit(policy, [[line]], env=NetEnv(), use_interfaces=False)


@pytest.mark.refpolicy
def test_refpolicy_exact_record_uses_m(refpolicy) -> None:  # type: ignore[no-untyped-def]
    """`semanage port -a` adds a record and fails on a port that has one of its own;
    `-m` modifies that record.  (seinfo --portcon 8081: `portcon tcp 8081
    transproxy_port_t` besides `portcon tcp 1024-65535 unreserved_port_t`.)"""
    from selnet.policy.overlay import ModifyPortcon

    # 8500/tcp has no record of its own, only the wide unreserved range: -a.
    g = group(_bind_denial(refpolicy, 8500, "unreserved_port_t"), "generic-port-type")
    assert g.fix is not None and g.fix.kind == "port-label" and g.fix.verified
    assert g.fix.commands == ("semanage port -a -t http_port_t -p tcp 8500",)
    # 8081/tcp has its exact record, a service's port type (transproxy_port_t): serving
    # on it as a web server is `semanage port -m`, and the fix says who loses the old
    # label; the missing rule is offered too.
    g = group(_bind_denial(refpolicy, 8081, "transproxy_port_t"), "missing-service-port-rule")
    relabel = next(f for f in g.fixes if f.commands ==
                   ("semanage port -m -t http_port_t -p tcp 8081",))
    assert relabel.verified and relabel.opens is not None and "loses-label" in relabel.flags
    assert {x.target for x in relabel.opens.losses} == {"transproxy_port_t"}
    assert "transproxy_t" in {x.subject for x in relabel.opens.losses}  # its server
    rule = next(f for f in g.fixes if f.kind == "rule")
    assert rule.verified
    assert rule.commands[0] == "allow httpd_t transproxy_port_t:tcp_socket name_bind;"
    # A live system where `semanage port -m -t unreserved_port_t -p tcp 8081` was run:
    # 8081 keeps an exact record, now with a generic type, so relabeling it for
    # httpd_t needs -m.
    relabeled = refpolicy.with_changes(ModifyPortcon("tcp", 8081, 8081, "unreserved_port_t"))
    for logged in ("transproxy_port_t", "unreserved_port_t"):  # log from before or after
        g = group(_bind_denial(relabeled, 8081, logged), "generic-port-type")
        assert g.fix is not None and g.fix.kind == "port-label" and g.fix.verified
        assert g.fix.commands == ("semanage port -m -t http_port_t -p tcp 8081",)
    g = group(_bind_denial(relabeled, 8500, "unreserved_port_t"), "generic-port-type")
    assert g.fix is not None and g.fix.commands == ("semanage port -a -t http_port_t -p tcp 8500",)


def _renumbered(lines: list[str], copies: int):  # type: ignore[no-untyped-def]
    """``lines`` ``copies`` times over, copy k 10 s later and 1000 serials on: distinct
    events, as a long audit.log holds them (a verbatim repeat is the same events again)."""
    import re

    stamp = re.compile(r"audit\((\d+)\.(\d+):(\d+)\)")
    for k in range(copies):
        def shift(m: re.Match[str], k: int = k) -> str:
            return f"audit({int(m[1]) + 10 * k}.{m[2]}:{int(m[3]) + 1000 * k})"

        for line in lines:
            yield stamp.sub(shift, line)


@pytest.mark.refpolicy
def test_refpolicy_large_log_counts_scale(refpolicy) -> None:  # type: ignore[no-untyped-def]
    """A 14,000-line log streamed through: every count is exactly N times one copy's,
    the same groups and fixes come out, and the grouping window stays as small as for
    a short log (memory bounded, not growing with the input).  Throughput is measured
    by bench/bench_audit.py, not here."""
    one = (DATA / "refpolicy-mixed.log").read_text().splitlines()

    def audit_copies(n: int) -> AuditReport:
        return run_audit(refpolicy, [_renumbered(one, n)], env=NetEnv(), use_interfaces=False)

    n = 2000
    single, few, rep = audit_copies(1), audit_copies(20), audit_copies(n)
    s1, s = single.stats, rep.stats
    assert s.lines == n * s1.lines == n * len(one)
    assert (s.records, s.avc_records, s.events, s.malformed) == (
        n * s1.records, n * s1.avc_records, n * s1.events, n * s1.malformed)
    assert s.non_avc_records == {k: n * v for k, v in s1.non_avc_records.items()}
    assert (rep.network_records, rep.non_network_records, rep.granted_records) == (
        n * single.network_records, n * single.non_network_records, n * single.granted_records)
    assert (single.network_records, single.non_network_records) == (3, 1)
    assert rep.distinct == single.distinct == 2

    def groups(r: AuditReport) -> list[tuple[object, ...]]:
        return [(g.domain, g.situation, g.target, len(g.entries),
                 g.fix.commands if g.fix else None) for g in r.groups]

    assert groups(rep) == groups(single)
    assert [g.count for g in rep.groups] == [n * g.count for g in single.groups] == [2 * n, n]
    # bounded: as many events open at once for 2000 copies as for 20
    assert s.peak_open_events == few.stats.peak_open_events <= 2 * s1.events
    assert len(s.malformed_samples) < s.malformed


def test_legacy_tcp_recv_is_an_inbound_check(policy) -> None:  # type: ignore[no-untyped-def]
    # netif tcp_recv was a compat_net check against the RECEIVING socket, not postroute.
    line = avc("tcp_recv", "netif=eth0", WEB, "system_u:object_r:netif_t", tclass="netif")
    rep = audit(policy, line)
    [g] = rep.groups
    text = " ".join(explanation(g))
    assert g.situation == "obsolete-permission"
    assert "RECEIVING socket" in text and "2.6.30" in text and "postroute" not in text
    out = audit(policy, avc("tcp_send", "netif=eth0", WEB, "system_u:object_r:netif_t",
                            tclass="netif"))
    assert "outbound" in " ".join(explanation(out.groups[0]))


def test_allowed_now_names_the_boolean_rule(policy) -> None:  # type: ignore[no-untyped-def]
    rep = audit(policy, avc("name_connect", "dest=5432", WEB, "system_u:object_r:db_port_t"),
                bools={"web_connect_db": True})
    g = group(rep, "allowed-now")
    line = next(x for x in explanation(g) if x.startswith("this policy: "))
    assert "allowed by allow web_t db_port_t:tcp_socket name_connect; [ web_connect_db ]:True" \
        in line
    assert not rep.exit_denied


def test_json_is_the_same_under_any_hash_seed(refpolicy_mcs: Path) -> None:
    """The fixes' "opens" come from sets of types: the report must not depend on
    PYTHONHASHSEED (reviewers diff audit --json between runs)."""
    import os
    import subprocess
    import sys

    log = Path(__file__).parent / "data" / "audit" / "refpolicy-mixed.log"
    outs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}  # the session's cache (conftest)
        r = subprocess.run([sys.executable, "-m", "selnet", "audit", str(log), "--policy",
                            str(refpolicy_mcs), "--json"], capture_output=True, env=env)
        assert r.returncode in (0, 1), r.stderr
        outs.append(r.stdout)
    assert json.loads(outs[0])["groups"], "the log has network denials"
    assert outs[0] == outs[1]
