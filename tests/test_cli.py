"""The command line: output shapes, exit statuses, and one-line errors for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from selnet.cli import main
from tests.conftest import EXAMPLE_CIL


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    # The bundled example policy, named explicitly: on a machine with SELinux
    # enabled the default would be the live policy.
    extra = [] if "--policy" in args else ["--policy", str(EXAMPLE_CIL)]
    return subprocess.run(
        [sys.executable, "-m", "selnet", *args, *extra], capture_output=True, text=True,
        input=stdin, env=os.environ.copy(), check=False,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int, fragment: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("selnet: ") and "Traceback" not in proc.stderr
    assert fragment in lines[0], lines[0]


# -- bad input -------------------------------------------------------------------------
def test_missing_policy_file(tmp_path: Path) -> None:
    assert_one_line_error(run_cli("info", "--policy", str(tmp_path / "nope")), 2, "no such policy file")


def test_file_that_is_not_a_policy(tmp_path: Path) -> None:
    f = tmp_path / "notes.txt"
    f.write_text("hello, this is not a policy\n")
    assert_one_line_error(run_cli("info", "--policy", str(f)), 2, "not a policy")


def test_truncated_policy(tmp_path: Path, compile_cil) -> None:  # type: ignore[no-untyped-def]
    good = compile_cil("(handleunknown deny) (type a_t) (roletype system_r a_t)")
    bad = tmp_path / "truncated.policy"
    bad.write_bytes(good.read_bytes()[:2000])
    assert_one_line_error(run_cli("info", "--policy", str(bad)), 2, "truncated.policy")


def test_cil_that_does_not_compile_shows_the_compiler(tmp_path: Path) -> None:
    f = tmp_path / "broken.cil"
    f.write_text("(type a_t)\n(allow a_t b_t (tcp_socket (name_bind)))\n")
    proc = run_cli("info", "--policy", str(f))
    assert_one_line_error(proc, 2, "does not compile")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("label", "port", "8080/foo"), "unknown protocol"),
        (("label", "port", "0/tcp"), "out of range"),
        (("label", "port", "65536"), "out of range"),
        (("label", "node", "300.1.2.3"), "not an IPv4 or IPv6 address"),
        (("label", "node", "::1::2"), "not an IPv4 or IPv6 address"),
        (("label", "netif", "bad/name"), "not a network interface name"),
        (("connect", "no_such_t", "127.0.0.1:80"), "unknown domain"),
        (("connect", "web_t", "127.0.0.1:80/xyz"), "unknown protocol"),
        (("connect", "web_t", "::1:80"), "malformed address"),
        (("connect", "web_t", "127.0.0.1"), "a port is needed"),
        (("connect", "web_t", "127.0.0.1:5432", "--bool", "nope=on"), "unknown boolean"),
        (("connect", "web_t", "127.0.0.1:5432", "--bool", "web_can_connect_db=maybe"), "--bool"),
        (("bind", "web_t", "127.0.0.1:80", "--sysctl", "net.ipv4.foo=1"), "unsupported --sysctl"),
        (("send", "web_t", "127.0.0.1:80/tcp"), "send is for datagrams"),
    ],
)
def test_bad_arguments(args: tuple[str, ...], fragment: str) -> None:
    assert_one_line_error(run_cli(*args), 2, fragment)


def test_usage_error_exit_status() -> None:
    assert main(["label", "port"]) == 2


def test_each_group_registers_the_commands_listed_for_it() -> None:
    """A run builds only its command's group (cli.main.GROUPS says which): the table must
    name every command each group registers, and a command's own parser must be the
    one the full parser has."""
    import argparse
    import importlib

    from selnet.cli.main import GROUPS, build_parser
    from selnet.cli.options import policy_parent

    for group, names in GROUPS.items():
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(f"selnet.cli.{group}").register(sub, policy_parent())
        assert tuple(sub.choices) == names, group
    full = build_parser()
    for names in GROUPS.values():
        for name in names:
            one = build_parser([name, "--help"])
            sub_one = next(a for a in one._actions if isinstance(a, argparse._SubParsersAction))
            sub_all = next(a for a in full._actions if isinstance(a, argparse._SubParsersAction))
            assert list(sub_one.choices) == list(names), name
            assert sub_one.choices[name].format_help() == sub_all.choices[name].format_help()
    # No command word (or an unknown one): every command, so usage errors list them all.
    assert _choices(build_parser(["--version"])) == _choices(full)
    assert _choices(build_parser(["nosuch"])) == _choices(full)


def _choices(parser: object) -> list[str]:
    import argparse

    assert isinstance(parser, argparse.ArgumentParser)
    return [c for a in parser._actions if isinstance(a, argparse._SubParsersAction)
            for c in a.choices]


# -- output -------------------------------------------------------------------------------
def test_label_json_shape() -> None:
    proc = run_cli("label", "port", "8080/tcp", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["type"] == "http_port_t" and out["matched"]["low"] == 8080
    assert {"context", "type", "attributes", "matched", "shadowed"} <= out.keys()
    assert any(s["record"]["context"].split(":")[2] == "http_cache_port_t" for s in out["shadowed"])
    node = json.loads(run_cli("label", "node", "10.1.2.3", "--json").stdout)
    assert node["type"] == "internal_node_t"
    default = json.loads(run_cli("label", "node", "203.0.113.9", "--json").stdout)
    assert default["matched"] is None and default["initial_sid"] == "node"


def test_info_json_shape() -> None:
    out = json.loads(run_cli("info", "--json").stdout)
    for key in ("policy_version", "mls", "handle_unknown", "policy_capabilities",
                "portcon_count", "nodecon_count", "netifcon_count"):
        assert key in out
    assert out["mls"] is True and "network_peer_controls" in out["policy_capabilities"]
    obsolete = {(o["class"], p) for o in out["obsolete_permissions"] for p in o["perms"]}
    assert ("node", "tcp_send") in obsolete and ("tcp_socket", "send_msg") in obsolete
    assert ("tcp_socket", "name_connect") not in obsolete


def test_connect_exit_status_and_json() -> None:
    denied = run_cli("connect", "web_t", "127.0.0.1:5432", "--json")
    assert denied.returncode == 1
    out = json.loads(denied.stdout)
    assert out["allowed"] is False
    keys = {"hook", "subject", "target", "class", "perm", "allowed", "reached", "rules",
            "booleans", "silent"}
    assert all(keys <= c.keys() for c in out["checks"])
    nc = next(c for c in out["checks"] if c["perm"] == "name_connect")
    assert nc["hook"] == "selinux_socket_connect_helper" and not nc["allowed"]
    assert nc["boolean_fixes"][0]["set"] == {"web_can_connect_db": True}
    allowed = run_cli("connect", "web_t", "127.0.0.1:5432", "--bool", "web_can_connect_db=on")
    assert allowed.returncode == 0, allowed.stdout
    assert "verdict: allowed" in allowed.stdout


def test_explain_demo_shows_server_without_client() -> None:
    proc = run_cli("explain")
    assert proc.returncode == 0
    assert "verdict: allowed" in proc.stdout and "verdict: DENIED" in proc.stdout


def test_several_cil_files(tmp_path: Path) -> None:
    from tests.conftest import BASE_CIL

    snippet = tmp_path / "t.cil"
    snippet.write_text("(handleunknown deny) (type a_t) (roletype system_r a_t)\n"
                       "(allow a_t self (tcp_socket (create)))\n")
    proc = run_cli("info", "--json", "--policy", str(BASE_CIL), "--policy", str(snippet))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["origin"] == "cil"
