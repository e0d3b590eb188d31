"""man/selnet.1: generated from the parser, equal to it, rendered by man, installed by pip."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from selnet import __version__
from selnet.cli.main import build_parser
from selnet.cli.options import policy_parent
from selnet.render.manpage import manpage
from tests.conftest import ROOT

PAGE = ROOT / "man" / "selnet.1"


def test_page_is_the_parsers() -> None:
    assert PAGE.read_text() == manpage(build_parser(), __version__, policy_parent()), \
        "man/selnet.1 is stale: run scripts/gen-docs"


def _sections(text: str) -> dict[str, str]:
    """Each command's .SS section."""
    parts = re.split(r"^\.SS (\S+)\n", text.split(".SH COMMON OPTIONS")[0], flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_every_command_and_option_is_described() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    listed = [a.dest for a in sub._choices_actions]
    sections = _sections(PAGE.read_text())
    assert list(sections) == listed
    assert "complete" not in sections  # the completion script's hidden helper
    shared = {o for a in policy_parent()._actions for o in a.option_strings}
    for name in listed:
        for action in sub.choices[name]._actions:
            for opt in action.option_strings:
                if opt not in ("-h", "--help") and opt not in shared:
                    # described under its own command, not only in the synopsis
                    assert f".TP\n\\fB{opt.replace('-', chr(92) + '-')}\\fR" in sections[name] or \
                        f", \\fB{opt.replace('-', chr(92) + '-')}\\fR" in sections[name], (name, opt)
    # an option of one command is not put under another
    assert "fastopen" in sections["connect"] and "fastopen" not in sections["listen"]
    assert "\\-\\-remote" in sections["listen"] and "\\-\\-remote" not in sections["connect"]


def test_page_renders_without_warnings() -> None:
    if shutil.which("man") is None or shutil.which("groff") is None:
        pytest.skip("man/groff not installed")
    proc = subprocess.run(["man", "--warnings", "-l", str(PAGE)], capture_output=True, text=True,
                          env={**os.environ, "MANWIDTH": "80", "MAN_KEEP_FORMATTING": "0",
                               "LC_ALL": "C"}, check=False)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    text = re.sub(r".\x08", "", proc.stdout)  # overstrike bold/underline
    assert "selnet - what SELinux does to a program's network access" in text
    for heading in ("SYNOPSIS", "COMMANDS", "COMMON OPTIONS", "EXIT STATUS", "ENVIRONMENT", "FILES"):
        assert re.search(rf"^{heading}$", text, flags=re.MULTILINE), heading
    assert "--policy PATH" in text
    assert re.search(r"selnet\s+connect\s+DOMAIN\s+ADDR:PORT\[/PROTO\]", text)


def test_pyproject_installs_the_page() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["tool"]["setuptools"]["data-files"]["share/man/man1"] == ["man/selnet.1"]


@pytest.mark.heavy
def test_pip_install_puts_it_where_man_finds_it(tmp_path: Path) -> None:
    """A wheel built from (a copy of) the tree, installed into a new venv: the page is at
    VENV/share/man/man1/selnet.1, and man finds it from VENV/bin on PATH.  (Never pip
    --prefix: pip would uninstall the selnet of the venv the tests run in.)"""
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tree / name)
    shutil.copytree(ROOT / "man", tree / "man")
    shutil.copytree(ROOT / "src", tree / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", str(tree), "-w",
                    str(tmp_path / "dist")], check=True, cwd=tree, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("selnet-*.whl")
    prefix = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True)
    subprocess.run([*pip, "--python", str(prefix / "bin" / "python"), "install", "--no-deps",
                    str(wheel)], check=True, capture_output=True)
    installed = prefix / "share" / "man" / "man1" / "selnet.1"
    assert installed.read_text() == PAGE.read_text()
    # selnet verify builds its guest from package data: an installed selnet must carry it
    (site,) = prefix.glob("lib/python3*/site-packages")
    guest = ROOT / "src" / "selnet" / "verify" / "guest"
    for f in ("init", "lib.sh", "sockop.c"):
        assert (site / "selnet" / "verify" / "guest" / f).read_bytes() == (guest / f).read_bytes()
    if shutil.which("man") is not None:
        env = {**os.environ, "PATH": f"{prefix / 'bin'}{os.pathsep}/usr/bin:/bin"}
        env.pop("MANPATH", None)
        found = subprocess.run(["man", "-w", "selnet"], capture_output=True, text=True, env=env,
                               check=False)
        assert found.stdout.strip() == str(installed), found.stderr
