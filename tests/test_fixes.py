"""The fix engine: one engine for the check commands and audit, ranked by what each fix
really opens (issue 10's failure kinds, each with a test)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from selnet.audit.auditor import run_audit
from selnet.cli import main
from selnet.fix.engine import _shared_prefix

ROOT = Path(__file__).resolve().parents[1]


def _json(capsys: Any, *argv: str) -> tuple[int, dict[str, Any]]:
    rc = main([*argv, "--json"])
    return rc, json.loads(capsys.readouterr().out)


def _denied(out: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in out["checks"] if c["reached"] and not c["allowed"])


def _avc(perm: str, extra: str, dom: str, target: str) -> str:
    return (f"type=AVC msg=audit(1700000000.100:101): avc:  denied  {{ {perm} }} for  pid=1 "
            f"comm=\"x\" {extra} scontext=system_u:system_r:{dom}:s0 "
            f"tcontext=system_u:object_r:{target}:s0 tclass=tcp_socket permissive=0")


def test_shared_prefix_not_commonpath() -> None:
    # os.path.commonpath(["httpd", "http"]) is "" (they are not paths): the old ranking bug.
    assert _shared_prefix("httpd", "http") == 4
    assert _shared_prefix("sshd", "puppet") == 0


@pytest.mark.refpolicy
def test_connect_8080_relay_first_connect_flagged(refpolicy_standard: Path, capsys: Any) -> None:
    rc, out = _json(capsys, "connect", "httpd_t", "127.0.0.1:8080",
                    "--policy", str(refpolicy_standard))
    assert rc == 1
    fixes = _denied(out)["fixes"]
    assert fixes[0]["commands"] == ["setsebool -P httpd_can_network_relay on"]
    assert fixes[0]["verified"] and not fixes[0]["broad"]
    assert fixes[0]["opens"]["domains"] == 1 and not fixes[0]["opens"]["generic"]
    every = next(f for f in fixes if f["commands"] == ["setsebool -P httpd_can_network_connect on"])
    assert every["broad"] and "every-port" in every["flags"] and every["opens"]["generic"]
    assert every["opens"]["port_numbers"] > 60000
    assert fixes.index(every) > 0
    # the denied check's own line names every boolean that would allow it, unranked
    assert "httpd_can_network_connect, httpd_can_network_relay" in _denied(out)["explanation"]


@pytest.mark.refpolicy
@pytest.mark.parametrize(("domain", "port", "first"), [
    ("httpd_t", 8082, "semanage port -a -t http_port_t -p tcp 8082"),
    ("sshd_t", 2222, "semanage port -a -t ssh_port_t -p tcp 2222"),
])
def test_listen_relabels_into_own_type_and_audit_agrees(refpolicy_standard: Path, capsys: Any,
                                                        domain: str, port: int, first: str) -> None:
    rc, out = _json(capsys, "listen", domain, f"0.0.0.0:{port}", "--policy",
                    str(refpolicy_standard))
    fixes = _denied(out)["fixes"]
    assert rc == 1 and fixes[0]["commands"] == [first] and fixes[0]["kind"] == "port-label"
    # broad interfaces are measured by what they grant and ranked below, flagged
    broad = next(f for f in fixes if f["commands"] == [
        f"corenet_tcp_bind_all_unreserved_ports({domain})"])
    assert broad["broad"] and broad["opens"]["generic"] and broad["opens"]["port_numbers"] > 60000
    assert fixes.index(broad) > 0
    # the same denial, as audit sees it: the same first fix (one engine)
    from selnet.policy.loader import load_policy

    rep = run_audit(load_policy([str(refpolicy_standard)]),
                    [[_avc("name_bind", f"src={port}", domain, "unreserved_port_t")]])
    [g] = rep.groups
    assert g.fix is not None and g.fix.commands == (first,)


@pytest.mark.refpolicy
def test_random_port_is_never_relabeled(refpolicy_standard: Path, capsys: Any) -> None:
    # 61500 is just above ip_local_port_range (32768-60999): a port picked at random.
    rc, out = _json(capsys, "bind", "httpd_t", "0.0.0.0:61500", "--policy",
                    str(refpolicy_standard))
    fixes = _denied(out)["fixes"]
    assert rc == 1 and fixes
    assert not [f for f in fixes if f["kind"] in ("port-label", "new-port-type")]
    assert fixes[0]["kind"] == "port-range"
    assert 'ip_local_port_range="32768 61500"' in fixes[0]["commands"][0]
    # inside the range, bind() checks no name_bind at all: nothing to fix
    rc, out = _json(capsys, "bind", "httpd_t", "0.0.0.0:40000", "--policy",
                    str(refpolicy_standard))
    assert rc == 0


@pytest.mark.refpolicy
def test_client_relabel_needs_evidence(refpolicy_standard: Path) -> None:
    """A client denied on a generic port is never offered "relabel it to some type the
    domain reaches" (radiusd on 1813/tcp was offered snmp_port_t): only a type with
    evidence, here the port's udp label radacct_port_t, plus the rule to reach it."""
    from selnet.policy.loader import load_policy

    rep = run_audit(load_policy([str(refpolicy_standard)]),
                    [[_avc("name_connect", "dest=1813", "radiusd_t", "unreserved_port_t")]])
    [g] = rep.groups
    labels = [f for f in g.fixes if f.kind == "port-label"]
    assert labels and all("radacct_port_t" in f.commands[0] for f in labels)
    assert labels[0].commands == ("semanage port -a -t radacct_port_t -p tcp 1813",
                                  "allow radiusd_t radacct_port_t:tcp_socket name_connect;")


@pytest.mark.refpolicy
def test_boolean_description_from_policy_xml(refpolicy_standard: Path, capsys: Any) -> None:
    xml = Path("/usr/share/selinux/devel/policy.xml")
    if not xml.is_file():
        pytest.skip("selinux-policy-dev's policy.xml is not installed")
    rc, out = _json(capsys, "connect", "httpd_t", "127.0.0.1:8080",
                    "--policy", str(refpolicy_standard))
    relay = _denied(out)["fixes"][0]
    assert rc == 1
    assert relay["booleans"] == {"httpd_can_network_relay":
                                 "Determine whether httpd can act as a relay."}


def test_example_policy_fixes_in_json(capsys: Any) -> None:
    from selnet.policy.source import example_policy_path

    rc, out = _json(capsys, "connect", "web_t", "127.0.0.1:5432", "--policy",
                    str(example_policy_path()))
    fix = _denied(out)["fixes"][0]
    assert rc == 1
    assert set(fix) >= {"kind", "commands", "verified", "opens", "why"}
    assert set(fix["opens"]) >= {"domains", "port_numbers", "port_types", "generic"}
    assert fix["commands"] == ["setsebool -P web_can_connect_db on"]
    assert fix["opens"]["port_types"] == ["db_port_t"]


@pytest.mark.refpolicy
def test_audit_module_compiles_and_is_verified(refpolicy_standard: Path, tmp_path: Path,
                                               capsys: Any) -> None:
    log = tmp_path / "denials.log"
    log.write_text("\n".join([
        _avc("name_connect", "dest=80", "ntpd_t", "http_port_t"),
        _avc("name_bind", "src=8502", "ntpd_t", "unreserved_port_t").replace(":101)", ":102)"),
    ]) + "\n")
    rc, out = _json(capsys, "audit", str(log), "--policy", str(refpolicy_standard),
                    "--module", "ntpfix", "-o", str(tmp_path))
    assert rc == 0 and out["verified"] and all(r["allowed"] for r in out["records"])
    te = (tmp_path / "ntpfix.te").read_text()
    assert te.startswith("module ntpfix 1.0;") and "require {" in te
    # checkmodule compiled it (the .pp is written only then)
    assert (tmp_path / "ntpfix.pp").stat().st_size > 0 and out["pp_error"] is None
    assert "semanage port -a -t ntpd_port_t -p tcp 8502" in (tmp_path / "ntpfix.sh").read_text()


def test_audit_module_cil_compiles_with_secilc_on_the_example(tmp_path: Path,
                                                              capsys: Any) -> None:
    """On a CIL base the module compiles with the base (secilc), and the recompiled policy
    allows every record the module claims to fix (the overlay's answer, proven)."""
    from selnet.decide.decision import Decider
    from selnet.policy.loader import load_policy
    from selnet.policy.source import example_policy_path

    base = example_policy_path()
    log = tmp_path / "d.log"
    log.write_text(_avc("name_connect", "dest=5432", "dns_t", "db_port_t") + "\n")
    rc, out = _json(capsys, "audit", str(log), "--policy", str(base), "--module", "cfix",
                    "-o", str(tmp_path), "--no-interfaces")
    assert rc == 0 and out["verified"] and out["rules"] >= 1
    compiled = tmp_path / "recompiled.policy"
    subprocess.run(["secilc", "-o", str(compiled), "-f", "/dev/null", str(base),
                    str(tmp_path / "cfix.cil")], check=True, capture_output=True)
    pol = load_policy([str(compiled)], use_cache=False)
    dec = Decider(pol)
    for r in out["records"]:
        assert dec.decide(r["scontext"], r["tcontext"], r["class"], r["perm"]).allowed




def test_audit_module_resolves_conflicting_best_fixes(compile_cil: Any, tmp_path: Path,
                                                      capsys: Any) -> None:
    """Each group's best fix alone can undo another's: relabeling 5432 for worker_t's bind
    takes it from web_t's connect (db_port_t).  The module's fixes are chosen together, so
    every record is allowed."""
    root = Path(__file__).resolve().parent
    policy = compile_cil((root / "data" / "audit" / "audit-policy.cil").read_text())
    log = root / "data" / "audit" / "ausearch-connect.log"
    rc, out = _json(capsys, "audit", str(log), "--policy", str(policy), "--module", "both",
                    "-o", str(tmp_path))
    assert rc == 0 and out["verified"], out
    assert all(r["allowed"] for r in out["records"])
    assert "semanage port -m" not in (tmp_path / "both.sh").read_text()
