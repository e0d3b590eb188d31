"""`selnet explain DOMAIN`: the four layers judged, client and server, on real policies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from selnet.cli import main


def _explain(capsys: Any, *argv: str) -> dict[str, Any]:
    assert main(["explain", *argv, "--json"]) == 0
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out


def _layer(out: dict[str, Any], layer: str, perm: str) -> dict[str, Any]:
    return next(x for x in out["layers"] if x["layer"] == layer and x["perm"] == perm)


@pytest.mark.refpolicy
@pytest.mark.parametrize("domain", ["httpd_t", "sshd_t"])
def test_four_layers_judged(refpolicy_standard: Path, capsys: Any, domain: str) -> None:
    out = _explain(capsys, domain, "--policy", str(refpolicy_standard))
    # legacy permissions: never checked, and this policy no longer declares them
    for layer, perm in (("netif", "tcp_send"), ("netif", "tcp_recv"), ("node", "tcp_recv"),
                        ("port", "send_msg"), ("port", "recv_msg")):
        row = _layer(out, layer, perm)
        assert not row["checked"] and "2.6.30" in row["obsolete"] and not row["declared"]
    # netif/node: only with labeled networking; ingress/recvfrom have the peer as subject
    for layer, perm, subject in (("netif", "egress", "socket"), ("netif", "ingress", "peer"),
                                 ("node", "sendto", "socket"), ("node", "recvfrom", "peer")):
        row = _layer(out, layer, perm)
        assert row["checked"] and row["only_with_labeled_networking"]
        assert row["subjects"] == [subject]
    # socket and port permissions: checked on their syscalls, always
    assert _layer(out, "port", "name_connect")["steps"] == ["connect"]
    assert _layer(out, "port", "name_bind")["steps"] == ["bind"]
    assert _layer(out, "socket", "getattr")["steps"] == ["getsockname", "getpeername"]
    assert not _layer(out, "port", "name_connect")["only_with_labeled_networking"]
    # what create_stream_socket_perms grants that no network syscall checks
    macro = {p["perm"]: p for p in out["macros"]["create_stream_socket_perms"]}
    assert macro["setopt"]["steps"] == ["setsockopt"] and macro["append"]["file_side"]


@pytest.mark.refpolicy
def test_sshd_serves_without_connecting(refpolicy_standard: Path, capsys: Any) -> None:
    out = _explain(capsys, "sshd_t", "--policy", str(refpolicy_standard))
    assert out["serve_without_connect"]["answer"]
    [first, *_] = out["server"]
    assert first["endpoint"] == "0.0.0.0:22/tcp" and first["allowed"]
    # the listen chain never checks name_connect: a server needs no connect-out permission
    assert not [c for c in first["checks"] if c["perm"] == "name_connect"]
    assert [22, 22] in out["serve_without_connect"]["bind"]["tcp"]


@pytest.mark.refpolicy
def test_httpd_minimal_policy(refpolicy_standard: Path, capsys: Any) -> None:
    out = _explain(capsys, "httpd_t", "--policy", str(refpolicy_standard))
    assert "(allow httpd_t http_port_t (tcp_socket (name_bind)))" in out["minimal"]["cil"]
    include = Path("/usr/share/selinux/devel/include/kernel/corenetwork.if")
    if include.is_file():
        assert "corenet_tcp_bind_http_port(httpd_t)" in out["minimal"]["interfaces"]
    assert "httpd_can_network_connect" in out["serve_without_connect"]["booleans_joining"]
    server = {c["endpoint"] for c in out["server"]}
    assert "0.0.0.0:80/tcp" in server


def test_demo_without_domain(capsys: Any) -> None:
    from selnet.policy.source import example_policy_path

    assert main(["explain", "--policy", str(example_policy_path())]) == 0
    assert "== web server listens on its own port" in capsys.readouterr().out


def test_text_fits_two_screens(capsys: Any) -> None:
    from selnet.policy.source import example_policy_path

    assert main(["explain", "web_t", "--policy", str(example_policy_path())]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) <= 100 and lines[0].startswith("web_t:")
