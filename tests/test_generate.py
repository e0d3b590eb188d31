"""`selnet generate`: a module for declared needs, verified on its base by the model."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from selnet.cli import main
from selnet.decide.chain import evaluate
from selnet.generate.module import generate
from selnet.generate.spec import parse_ops
from selnet.model.env import NetEnv
from selnet.model.plan import Scenario, parse_endpoint
from selnet.policy.cilmodule import read_cil
from selnet.policy.index import Policy
from selnet.policy.loader import load_policy
from selnet.policy.source import example_policy_path


def _decide(policy: Policy, op: str, endpoint: str) -> bool:
    dom = policy.context_for_domain("myapp_t")
    return evaluate(policy, Scenario(op, dom, parse_endpoint(endpoint), NetEnv()),
                    policy.bool_values()).allowed


def _layered(base: Policy, cil: str, labels: tuple[Any, ...]) -> Policy:
    overlay, unapplied = read_cil(cil, base)
    assert not [u for u in unapplied if u.matters], unapplied
    changed = overlay.apply(base)
    return changed.with_changes(*labels) if labels else changed


@pytest.mark.refpolicy
def test_reference_policy_listen_connect(refpolicy_standard: Path) -> None:
    base = load_policy([str(refpolicy_standard)])
    g, cil = generate(base, "myapp", parse_ops(["8443/tcp"], ["5432/tcp"], []))
    assert g.all_allowed
    p = _layered(base, cil, g.labels)
    assert _decide(p, "listen", "0.0.0.0:8443")
    assert _decide(p, "connect", "127.0.0.1:5432")
    assert not _decide(p, "connect", "127.0.0.1:3306")  # only what was asked
    # 8443 is http_port_t here: the module warns that 80, 443, ... come with it
    [shared] = [s for s in g.shared if s.type == "http_port_t"]
    assert (80, 80) in shared.other_ports and g.beyond_spec
    # never a permission no kernel checks
    assert "send_msg" not in cil and "tcp_send" not in cil and "recv_msg" not in cil


@pytest.mark.refpolicy
@pytest.mark.parametrize("flavour", ["refpolicy_mcs", "debian_local"])
def test_mcs_and_debian_policies(flavour: str, request: pytest.FixtureRequest) -> None:
    base = load_policy([str(request.getfixturevalue(flavour))])
    g, cil = generate(base, "myapp", parse_ops(["8443/tcp"], ["5432/tcp"], []))
    assert g.all_allowed
    p = _layered(base, cil, g.labels)
    assert _decide(p, "listen", "0.0.0.0:8443") and _decide(p, "connect", "127.0.0.1:5432")
    assert not _decide(p, "connect", "127.0.0.1:3306")


def test_layered_cli_on_generated_module(tmp_path: Path, capsys: Any) -> None:
    """The generated CIL, layered with --policy BASE --policy MODULE, as every command takes it."""
    base = example_policy_path()
    assert main(["generate", "myapp", "--connect", "5432/tcp", "--policy", str(base),
                 "-o", str(tmp_path)]) == 0
    capsys.readouterr()
    mod = str(tmp_path / "myapp.cil")
    assert main(["connect", "myapp_t", "127.0.0.1:5432", "--policy", str(base),
                 "--policy", mod]) == 0
    assert main(["connect", "myapp_t", "127.0.0.1:80", "--policy", str(base),
                 "--policy", mod]) == 1


def test_cil_base_module_compiles_with_secilc(tmp_path: Path, capsys: Any) -> None:
    base = example_policy_path()
    rc = main(["generate", "myapp", "--bind", "8443/tcp", "--connect", "5432/tcp",
               "--policy", str(base), "-o", str(tmp_path), "--json"])
    out = json.loads(capsys.readouterr().out)
    # 8443 is generic in the example: a port type of its own, nothing opened beyond the spec
    assert rc == 0 and out["all_allowed"] and not out["beyond_spec"]
    assert out["semanage"] == ["semanage port -a -t myapp_port_t -p tcp 8443"]
    compiled = tmp_path / "with-module.policy"
    subprocess.run(["secilc", "-o", str(compiled), "-f", "/dev/null", str(base),
                    str(tmp_path / "myapp.cil")], check=True, capture_output=True)
    # exact: the recompiled policy (plus the semanage label) decides like the verification
    from selnet.policy.overlay import AddPortcon

    p = load_policy([str(compiled)], use_cache=False).with_changes(
        AddPortcon("tcp", 8443, 8443, "myapp_port_t"))
    assert _decide(p, "listen", "0.0.0.0:8443") and _decide(p, "connect", "127.0.0.1:5432")
    assert not _decide(p, "connect", "127.0.0.1:80")


@pytest.mark.refpolicy
def test_te_compiles_with_the_devel_makefile(refpolicy_standard: Path, tmp_path: Path,
                                             capsys: Any) -> None:
    makefile = Path("/usr/share/selinux/devel/Makefile")
    if not makefile.is_file() or shutil.which("make") is None:
        pytest.skip("selinux-policy-dev's Makefile is not installed")
    rc = main(["generate", "myapp", "--bind", "8443/tcp", "--connect", "dns",
               "--policy", str(refpolicy_standard), "-o", str(tmp_path), "--format", "te"])
    capsys.readouterr()
    assert rc in (0, 1)
    proc = subprocess.run(["make", "-f", str(makefile), "myapp.pp"], cwd=tmp_path,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "myapp.pp").stat().st_size > 0
    te = (tmp_path / "myapp.te").read_text()
    assert "corenet_tcp_bind_http_port(myapp_t)" in te


def test_spec_errors(tmp_path: Path, capsys: Any) -> None:
    assert main(["generate", "myapp", "--bind", "99999/tcp", "-o", str(tmp_path)]) == 2
    assert main(["generate", "myapp", "-o", str(tmp_path)]) == 2
    spec = tmp_path / "spec.toml"
    spec.write_text('bind = ["8443/tcp"]\nlisten = 1\n')
    assert main(["generate", "myapp", "--spec", str(spec), "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown keys listen" in err and err.count("\n") == 3
