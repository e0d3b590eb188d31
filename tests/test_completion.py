"""Shell completion: the script `selnet completion bash|zsh` prints, run in a real bash (and
zsh when installed), completes subcommands, options and names from the policy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from selnet.policy.loader import load_policy
from selnet.policy.source import selinux_enabled
from tests.conftest import CompileCil

BIN = Path(sys.executable).parent  # the venv's bin: selnet is on PATH for the shells
SNIPPET = """
(type httpd_t) (roletype system_r httpd_t)
(type httpd_helper_t) (roletype system_r httpd_helper_t)
(typeattributeset domain (httpd_t httpd_helper_t))
(type http_port_t) (type http_cache_port_t)
(typeattributeset port_type (http_port_t http_cache_port_t))
(portcon tcp 80 (system_u object_r http_port_t ((s0) (s0))))
(portcon tcp 3128 (system_u object_r http_cache_port_t ((s0) (s0))))
(boolean httpd_can_network_connect false)
(booleanif httpd_can_network_connect (true (allow httpd_t port_type (tcp_socket (name_connect)))))
"""


@pytest.fixture(scope="module")
def policy(compile_cil: CompileCil) -> Path:
    return compile_cil(SNIPPET)


def _env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def selnet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "selnet"), *args], capture_output=True, text=True,
                          env=_env(), check=False)


@pytest.fixture(scope="module")
def bash_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    proc = selnet("completion", "bash")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    path = tmp_path_factory.mktemp("completion") / "selnet.bash"
    path.write_text(proc.stdout)
    return path


def bash_complete(script: Path, *words: str) -> list[str]:
    """COMPREPLY for the command line ``words`` (the last one is being completed)."""
    arr = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
    code = (f"source {script}; COMP_WORDS=({arr}); COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 )); "
            "COMP_LINE=\"${COMP_WORDS[*]}\"; _shtab_selnet; printf '%s\\n' \"${COMPREPLY[@]}\"")
    proc = subprocess.run(["bash", "--norc", "--noprofile", "-c", code], capture_output=True,
                          text=True, env=_env(), check=False)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return sorted(w for w in proc.stdout.splitlines() if w)


def test_subcommands_and_options(bash_script: Path) -> None:
    assert bash_complete(bash_script, "selnet", "dom") == ["domain"]
    assert bash_complete(bash_script, "selnet", "con") == ["connect"]
    # the hidden helper is for the script only: never offered
    assert bash_complete(bash_script, "selnet", "comp") == ["completion"]
    assert bash_complete(bash_script, "selnet", "completion", "") == ["bash", "zsh"]
    assert bash_complete(bash_script, "selnet", "connect", "--po") == ["--policy"]
    assert "--fastopen" in bash_complete(bash_script, "selnet", "connect", "--")
    assert "--fastopen" not in bash_complete(bash_script, "selnet", "listen", "--")
    assert bash_complete(bash_script, "selnet", "label", "n") == ["netif", "node"]


def test_names_from_the_policy_on_the_command_line(bash_script: Path, policy: Path) -> None:
    p = str(policy)
    assert bash_complete(bash_script, "selnet", "domain", "--policy", p, "htt") == \
        ["httpd_helper_t", "httpd_t"]
    assert bash_complete(bash_script, "selnet", "connect", "--policy", p, "httpd_t", "127.0.0.1:80",
                         "--bool", "httpd_can") == \
        ["httpd_can_network_connect=off", "httpd_can_network_connect=on"]
    assert bash_complete(bash_script, "selnet", "port", "--policy", p, "--type", "http_c") == \
        ["http_cache_port_t"]
    # names come from that policy, not the default one
    assert bash_complete(bash_script, "selnet", "domain", "--policy", p, "web") == []


@pytest.mark.skipif(selinux_enabled(), reason="the default policy is the running one here")
def test_default_policy_is_the_bundled_example(bash_script: Path) -> None:
    assert bash_complete(bash_script, "selnet", "domain", "we") == ["web_t"]


def test_helper_prints_the_policy_names(policy: Path) -> None:
    loaded = load_policy([str(policy)])
    proc = selnet("complete", "domains", "--policy", str(policy))
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.splitlines() == list(loaded.domains())
    assert {"httpd_t", "httpd_helper_t"} <= set(proc.stdout.split())
    ports = selnet("complete", "port-types", "--policy", str(policy)).stdout.split()
    assert {"http_port_t", "http_cache_port_t"} <= set(ports) and "httpd_t" not in ports
    assert "httpd_can_network_connect" in selnet("complete", "booleans", "--policy",
                                                 str(policy)).stdout.split()
    assert "tcp_socket" in selnet("complete", "classes", "--policy", str(policy)).stdout.split()


def test_without_shtab_one_line_and_exit_4(tmp_path: Path) -> None:
    # an import of shtab that fails, as on a machine without it
    (tmp_path / "shtab.py").write_text("raise ImportError('no shtab here')\n")
    env = {**_env(), "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "selnet", "completion", "bash"], capture_output=True,
                          text=True, env=env, check=False)
    assert proc.returncode == 4 and proc.stdout == ""
    assert proc.stderr == "selnet: shtab is not installed (Debian/Fedora: python3-shtab; " \
        "pip install shtab)\n"


def test_helper_is_silent_on_a_bad_policy(tmp_path: Path) -> None:
    bad = tmp_path / "bad.policy"
    bad.write_text("not a policy")
    proc = selnet("complete", "domains", "--policy", str(bad))
    assert proc.returncode == 2 and proc.stdout == "" and proc.stderr == ""


# -- zsh: a real interactive zsh on a pseudo-terminal (zpty): the line, TAB, Enter.  zle
# reads typed keys in order, so Enter is handled once the completion is done; a
# zle-line-finish hook writes the edited line to a file.
ZSH_DRIVER = r"""
zmodload zsh/zpty
zpty z 'env PS1="> " TERM=dumb zsh -f -i'
zpty -w z 'fpath=(%(dir)s $fpath); autoload -Uz compinit && compinit -u -D'
zpty -w z 'zle-line-finish() { print -r -- "$BUFFER" >> %(out)s }; zle -N zle-line-finish'
zpty -w -n z %(line)s$'\t\r'
integer i
for (( i=0; i<240; i++ )); do [[ -s %(out)s ]] && break; sleep 0.25; done
zpty -d z
"""


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
@pytest.mark.parametrize(("line", "completed"), [
    ("selnet dom", "selnet domain"),
    ("selnet domain --policy {policy} htt", "selnet domain --policy {policy} httpd_"),
    ("selnet port --policy {policy} --type http_c",
     "selnet port --policy {policy} --type http_cache_port_t"),
])
def test_zsh(tmp_path: Path, policy: Path, line: str, completed: str) -> None:
    proc = selnet("completion", "zsh")
    assert proc.returncode == 0
    (tmp_path / "_selnet").write_text(proc.stdout)
    out = tmp_path / "buffer"
    typed = line.format(policy=policy)
    driver = ZSH_DRIVER % {"dir": tmp_path, "out": out, "line": f"'{typed}'"}
    subprocess.run(["zsh", "-f", "-c", driver], capture_output=True, text=True, env=_env(),
                   timeout=60, check=False)
    # (Enter drops the space zsh put after a completed word)
    assert out.read_text().splitlines()[0] == completed.format(policy=policy)
