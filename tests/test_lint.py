"""selnet lint: every rule at known lines, clean modules, exit codes, JSON/SARIF, refpolicy."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from selnet.cli import main
from selnet.fix.interfaces import DEFAULT_INCLUDE_DIR
from selnet.lint import RULE_IDS, lint_paths
from selnet.policy.source import example_policy_path

DATA = Path(__file__).resolve().parent / "data" / "lint"
BAD = [str(DATA / "bad.te"), str(DATA / "bad.cil")]
CLEAN = [str(DATA / "clean.te"), str(DATA / "clean.cil")]
REFPOLICY_SRC = Path("/usr/src/selinux-policy-src.tar.zst")

needs_devel = pytest.mark.skipif(
    not (DEFAULT_INCLUDE_DIR / "kernel" / "corenetwork.if").is_file(),
    reason="needs selinux-policy-dev (corenet interfaces, perm sets)")

# (file, line, rule) -> the (class, perms) or interface it names
EXPECTED = {
    ("bad.te", 7, "NET001"): ("udp_socket", ("send_msg", "recv_msg")),
    ("bad.te", 8, "NET001"): ("tcp_socket", ("acceptfrom",)),
    ("bad.te", 10, "NET002"): ("netif", ("ingress", "egress")),
    ("bad.te", 12, "NET003"): ("tcp_socket", ("name_connect",)),
    ("bad.te", 13, "NET003"): ("tcp_socket", ("name_connect",)),
    ("bad.te", 15, "NET004"): ("udp_socket", ("listen", "accept")),
    ("bad.te", 17, "NET005"): ("udp_socket", ("name_connect",)),
    ("bad.te", 19, "NET006"): ("tcp_socket", ("name_bind",)),
    ("bad.te", 21, "NET007"): ("", ()),
    ("bad.cil", 5, "NET001"): ("tcp_socket", ("newconn",)),
    ("bad.cil", 6, "NET001"): ("node", ("enforce_dest",)),
    ("bad.cil", 6, "NET002"): ("node", ("recvfrom",)),
    ("bad.cil", 7, "NET003"): ("udp_socket", ("name_bind",)),
    ("bad.cil", 8, "NET004"): ("rawip_socket", ("listen",)),
    ("bad.cil", 9, "NET001"): ("netif", ("tcp_send",)),
    ("bad.cil", 10, "NET006"): ("tcp_socket", ("name_bind",)),
    ("bad.cil", 11, "NET005"): ("icmp_socket", ("name_connect",)),
}


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(argv)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


@needs_devel
def test_every_rule_at_its_line() -> None:
    report = lint_paths(BAD)
    got = {(Path(f.file).name, f.line, f.rule): (f.tclass, f.perms) for f in report.findings}
    assert got == EXPECTED
    assert set(report.counts()) == set(RULE_IDS)
    assert all(report.counts()[r] for r in RULE_IDS)
    by = {(Path(f.file).name, f.line, f.rule): f for f in report.findings}
    assert by[("bad.te", 12, "NET003")].interface == "corenet_tcp_connect_all_ports"
    assert by[("bad.te", 21, "NET007")].interface == "corenet_tcp_sendrecv_generic_port"
    assert by[("bad.te", 21, "NET007")].origin.startswith("corenetwork.if:")
    assert by[("bad.te", 10, "NET002")].check_ids == ("rx.netif_ingress", "tx.netif_egress")
    assert by[("bad.cil", 10, "NET006")].target == "badcil_ports"  # via typeattributeset


@needs_devel
def test_text_output_and_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(["lint", *BAD], capsys)
    assert rc == 1
    lines = out.splitlines()
    assert len(lines) == len(EXPECTED) + 1
    line7 = next(x for x in lines if x.startswith(f"{DATA / 'bad.te'}:7: NET001 "))
    assert "selinux_sock_rcv_skb_iptables_compat" in line7  # the kernel fact
    assert "; use: netif egress / node sendto" in line7  # the replacement (send_msg first)
    assert "netif ingress / node recvfrom / peer recv" in line7
    nf = next(x for x in lines if ": NET004 " in x)
    assert "hooks.c:4938" in nf and "EOPNOTSUPP" in nf
    assert lines[-1] == (f"{len(EXPECTED)} findings in 2 files: NET001 5, NET002 2, NET003 3, "
                         "NET004 2, NET005 2, NET006 2, NET007 1")


@needs_devel
def test_clean_module(capsys: pytest.CaptureFixture[str]) -> None:
    assert lint_paths(CLEAN).findings == ()
    rc, out, _ = _run(["lint", *CLEAN], capsys)
    assert (rc, out) == (0, "0 findings in 2 files\n")


def test_unreadable_file_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = _run(["lint", str(DATA / "clean.te"), str(tmp_path / "missing.te")], capsys)
    assert rc == 2 and out == ""
    assert err == f"selnet: cannot read {tmp_path / 'missing.te'}: No such file or directory\n"


@needs_devel
def test_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(["lint", "--json", *BAD], capsys)
    doc = json.loads(out)
    assert rc == 1 and doc["schema_version"] == 1
    assert doc["counts"] == {"NET001": 5, "NET002": 2, "NET003": 3, "NET004": 2, "NET005": 2,
                             "NET006": 2, "NET007": 1}
    for f in doc["findings"]:
        assert set(f) == {"rule", "file", "line", "message", "fact", "replacement"}
        assert f["rule"] in RULE_IDS and isinstance(f["line"], int)
        assert f["fact"] and f["replacement"]


@needs_devel
def test_sarif_shape(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(["lint", "--sarif", *BAD], capsys)
    doc = json.loads(out)
    assert rc == 1 and doc["version"] == "2.1.0"
    run = doc["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "selnet"
    assert [r["id"] for r in driver["rules"]] == list(RULE_IDS)
    assert all(r["shortDescription"]["text"] for r in driver["rules"])
    results = run["results"]
    assert len(results) == len(EXPECTED)
    for res in results:
        assert res["ruleId"] in RULE_IDS
        assert driver["rules"][res["ruleIndex"]]["id"] == res["ruleId"]
        loc = res["locations"][0]["physicalLocation"]
        assert Path(loc["artifactLocation"]["uri"]).name in ("bad.te", "bad.cil")
        assert isinstance(loc["region"]["startLine"], int) and loc["region"]["startLine"] >= 1
        assert res["message"]["text"]
    got = {(Path(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]).name,
            r["locations"][0]["physicalLocation"]["region"]["startLine"], r["ruleId"])
           for r in results}
    assert got == set(EXPECTED)


@needs_devel
def test_with_policy_class_map_and_generic_ports(tmp_path: Path) -> None:
    from selnet.policy.loader import load_policy

    te = tmp_path / "p.te"
    te.write_text("allow a_t http_cache_port_t:tcp_socket name_bind;\n"
                  "allow a_t self:udp_socket { bind name_connect };\n")
    assert {f.rule for f in lint_paths([str(te)]).findings} == {"NET005"}
    report = lint_paths([str(te)], policy=load_policy([str(example_policy_path())]))
    got = {(f.line, f.rule, f.origin) for f in report.findings}
    # http_cache_port_t spans >= 256 ports in the example policy; udp_socket lacks
    # name_connect in its own class map.
    assert got == {(1, "NET006", "policy"), (2, "NET005", "policy")}


@needs_devel
def test_configured_files_silence_net002(tmp_path: Path) -> None:
    te = tmp_path / "secmark.te"
    te.write_text("allow a_t netif_t:netif ingress;\ncorenet_relabelto_all_packets(b_t)\n")
    assert [f.rule for f in lint_paths([str(te)]).findings] == []
    assert lint_paths([str(te)]).configured


@pytest.fixture(scope="module")
def refpolicy_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not REFPOLICY_SRC.is_file() or shutil.which("zstd") is None:
        pytest.skip("needs selinux-policy-src and zstd")
    dest = tmp_path_factory.mktemp("refpolicy-src")
    subprocess.run(["tar", "--zstd", "-xf", str(REFPOLICY_SRC), "-C", str(dest)], check=True)
    return dest / "selinux-policy-src" / "policy" / "modules"


@needs_devel
@pytest.mark.refpolicy
def test_refpolicy_sources(refpolicy_tree: Path) -> None:
    report = lint_paths([str(refpolicy_tree)])
    counts = report.counts()
    # Refpolicy commit 161bda392 removed the compat_net permissions: none remain in
    # its modules, and no module calls a deprecated corenet interface.
    assert counts["NET001"] == counts["NET005"] == counts["NET007"] == 0
    # corenetwork and iptables configure SECMARK: per-packet rules then count.
    assert report.configured and counts["NET002"] == 0
    got = {(Path(f.file).name, f.line, f.tclass) for f in report.findings if f.rule == "NET004"}
    assert ("isns.te", 29, "udp_socket") in got and ("lpd.te", 127, "udp_socket") in got
    assert counts["NET003"] > 100 and counts["NET006"] > 100


@needs_devel
@pytest.mark.refpolicy
def test_refpolicy_module_alone(refpolicy_tree: Path) -> None:
    # A module linted on its own configures nothing: its generic_if/node calls are flagged.
    amanda = refpolicy_tree / "admin" / "amanda.te"
    rep = lint_paths([str(amanda)])
    net002 = {(f.line, f.interface) for f in rep.findings if f.rule == "NET002"}
    assert (104, "corenet_tcp_sendrecv_generic_if") in net002
    assert (105, "corenet_tcp_sendrecv_generic_node") in net002
