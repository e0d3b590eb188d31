"""The README's examples run as written and say what the README says they say."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_python_api_example_runs() -> None:
    code = re.search(r"## Python API\n\n```python\n(.*?)```", README, re.S)
    assert code is not None
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code.group(1), "README.md", "exec"), {})
    lines = out.getvalue().splitlines()
    assert lines[0] == "db_port_t"
    assert lines[1].startswith("True [('create', True)")
    assert lines[2] == "boolean"


def test_example_output_is_current(capsys: object) -> None:
    from selnet.cli import main
    from selnet.policy.source import example_policy_path

    block = re.search(r"```\n\$ selnet connect web_t 127.0.0.1:5432\n(.*?)```", README, re.S)
    assert block is not None
    assert main(["connect", "web_t", "127.0.0.1:5432", "--policy", str(example_policy_path())]) == 1
    got = capsys.readouterr().out  # type: ignore[attr-defined]
    # The answer names the policy by the path it was given: the README shows it relative.
    root = str(Path(__file__).resolve().parent.parent) + "/"
    assert got.replace(root, "") == block.group(1)
