"""selnet audit: parsing every format, diagnosis, ranked and verified fixes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from selnet.cli import main
from selnet.explain.audit import AuditReport, run_audit
from selnet.kernel.env import NetEnv
from selnet.policy.loader import load_policy

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
    assert g.fix is not None and g.fix.kind == "semanage-port" and g.fix.verified
    assert g.fix.commands == ["semanage port -a -t svc_port_t -p tcp 8500"]
    assert rep.exit_denied


def test_boolean_narrowest_first(policy) -> None:  # type: ignore[no-untyped-def]
    rep = audit(policy, avc("name_connect", "dest=5432", WEB, "system_u:object_r:db_port_t"))
    g = group(rep, "boolean-off")
    booleans = [f for f in g.fixes if f.kind == "boolean"]
    assert [f.commands[0] for f in booleans][:2] == [
        "setsebool -P web_connect_db on", "setsebool -P web_connect_any on"]
    assert g.fix is not None and g.fix.commands == ["setsebool -P web_connect_db on"]
    assert booleans[1].data["broad"] is True  # generic port types
    assert not any(f.kind == "semanage-port" for f in g.fixes)  # a service's port keeps its label


def test_rule_fix_verified_by_recompiling(policy) -> None:  # type: ignore[no-untyped-def]
    rep = audit(policy, avc("name_bind", "src=5432", WEB, "system_u:object_r:db_port_t"))
    g = group(rep, "missing-service-port-rule")
    rule = next(f for f in g.fixes if f.kind == "rule")
    assert rule.verified and "secilc" in rule.verify
    assert rule.commands[0] == "(allow web_t db_port_t (tcp_socket (name_bind)))"


def test_port_label_not_installed(policy) -> None:  # type: ignore[no-untyped-def]
    rep = audit(policy, avc("name_bind", "src=9100", "system_u:system_r:worker_t", GEN))
    g = group(rep, "port-label-not-installed")
    assert g.fix is not None
    assert g.fix.commands == ["semanage port -a -t pkg_port_t -p tcp 9100"]


def test_constraint_no_rule_fix(policy) -> None:  # type: ignore[no-untyped-def]
    rep = audit(policy, avc("name_bind", "src=8080", "system_u:system_r:conf_t",
                            "system_u:object_r:svc_port_t"))
    g = group(rep, "constraint")
    assert g.fix is None
    assert any("constraint" in line for line in g.explanation)


def test_ephemeral_port_range(policy) -> None:  # type: ignore[no-untyped-def]
    lines = [avc("name_bind", f"src={p}", WEB, t, serial=200 + i)
             for i, (p, t) in enumerate([(61001, GEN), (62010, GEN), (63999, GEN),
                                         (5432, "system_u:object_r:db_port_t")])]
    rep = audit(policy, "\n".join(lines))
    g = group(rep, "ephemeral-port-range")
    assert g.fix is not None and g.fix.kind == "sysctl" and g.fix.verified
    assert 'net.ipv4.ip_local_port_range="32768 63999"' in g.fix.commands[-1]


def test_socket_owned_by_other_domain(policy) -> None:  # type: ignore[no-untyped-def]
    rep = audit(policy, avc("accept", "lport=80", WEB, "system_u:system_r:init_t"))
    g = group(rep, "socket-owned-by-other-domain")
    assert g.fix is not None and g.fix.kind == "rule"
    assert g.fix.commands[0] == "(allow web_t init_t (tcp_socket (accept)))"


def test_labeled_networking_peer_subject(policy) -> None:  # type: ignore[no-untyped-def]
    line = ('type=AVC msg=audit(1700000000.300:300): avc:  denied  { ingress } for  pid=0 '
            'comm="swapper/0" saddr=10.0.0.5 src=40000 daddr=10.0.0.1 dest=80 netif=eth0 '
            'scontext=system_u:object_r:unlabeled_t tcontext=system_u:object_r:netif_t '
            'tclass=netif permissive=0')
    rep = audit(policy, line)
    g = group(rep, "labeled-networking")
    text = " ".join(g.explanation)
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
    sits = {g.situation: g for g in rep.groups}
    assert "dontaudit-hidden" in sits["generic-port-type"].entries[0].diag.situations \
        or any("dontaudit-hidden" in g.entries[0].diag.situations for g in rep.groups)
    assert any("permissive" in g.entries[0].diag.situations for g in rep.groups)
    foreign = sits["foreign-policy"]
    assert "unknown type httpd_t" in " ".join(foreign.explanation)
    assert foreign.still_denied and foreign.fix is None
    assert "obsolete-permission" in sits


def test_label_changed_since(policy) -> None:  # type: ignore[no-untyped-def]
    # The AVC says gen_port_t but this policy labels 8080 svc_port_t: allowed now.
    rep = audit(policy, avc("name_bind", "src=8080", WEB, GEN))
    g = group(rep, "allowed-now")
    assert g.entries[0].diag.label_changed and not rep.exit_denied


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
    assert g.fix.commands == ["semanage port -a -t svc_port_t -p tcp 8500"]


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


# -- the full reference policy -----------------------------------------------------------------
def _refpolicy() -> str | None:
    try:
        out = subprocess.run([str(ROOT / "scripts" / "build-refpolicy")], capture_output=True,
                             text=True, check=True, timeout=300).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        if line.startswith("standard "):
            return line.split(None, 1)[1]
    return None


@pytest.fixture(scope="module")
def refpolicy():  # type: ignore[no-untyped-def]
    path = _refpolicy()
    if path is None:
        pytest.skip("reference policy not available")
    return load_policy([path])


HTTPD = "system_u:system_r:httpd_t:s0"


@pytest.mark.refpolicy
def test_refpolicy_httpd_db_boolean(refpolicy) -> None:  # type: ignore[no-untyped-def]
    rep = run_audit(refpolicy, [(DATA / "refpolicy-mixed.log").read_text().splitlines()])
    g = group(rep, "boolean-off")
    assert g.fix is not None
    assert g.fix.commands == ["setsebool -P httpd_can_network_connect_db on"]
    kinds = [f.kind for f in g.fixes]
    assert kinds.index("boolean") < kinds.index("rule")
    broad = next(f for f in g.fixes if f.commands == ["setsebool -P httpd_can_network_connect on"])
    assert broad.data["broad"] and g.fixes.index(broad) > g.fixes.index(g.fix)
    iface = next((f for f in g.fixes if f.kind == "interface"), None)
    if iface is not None:
        assert iface.commands == ["corenet_tcp_connect_postgresql_port(httpd_t)"]
    g2 = group(rep, "generic-port-type")
    assert g2.fix is not None
    assert g2.fix.commands == ["semanage port -a -t http_port_t -p tcp 8500"]


@pytest.mark.refpolicy
def test_refpolicy_exact_record_uses_m(refpolicy) -> None:  # type: ignore[no-untyped-def]
    # 5432 has an exact portcon (postgresql_port_t): a relabel there needs -m.
    from selnet.explain.diagnose import Diagnoser
    from selnet.explain.fixes import FixFinder

    dx = Diagnoser(refpolicy)
    assert "postgresql_port_t" not in dx.facts.generic
    assert {"unreserved_port_t", "reserved_port_t", "port_t"} <= dx.facts.generic
    assert FixFinder(dx, use_interfaces=False)  # smoke


@pytest.mark.refpolicy
def test_refpolicy_streaming_speed(refpolicy) -> None:  # type: ignore[no-untyped-def]
    import time

    lines = (DATA / "refpolicy-mixed.log").read_text().splitlines() * 2000
    t = time.perf_counter()
    rep = run_audit(refpolicy, [lines], env=NetEnv(), use_interfaces=False)
    rate = len(lines) / (time.perf_counter() - t)
    assert rep.groups and rate > 20000
