"""Without --policy and without a running SELinux policy, selnet says on stderr that it
answers on the bundled example policy; never on stdout, never when a policy is given."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selnet.cli.main import main
from selnet.policy import source
from tests.conftest import EXAMPLE_CIL

NOTE = "selnet: no --policy and no running SELinux policy: using the bundled example policy"


@pytest.fixture
def no_selinux(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # As on a machine without SELinux, even when the test machine runs it.
    monkeypatch.setattr(source, "LIVE_POLICY", tmp_path / "no-policy")
    monkeypatch.setattr(source, "_SELINUXFS_ENFORCE", tmp_path / "no-enforce")


def test_note_on_stderr_for_text(no_selinux: None, capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["label", "port", "80/tcp"]) == 0
    out, err = capfd.readouterr()
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(NOTE), err
    assert f"({source.example_policy_path()})" in lines[0]
    assert lines[0].endswith("pass --policy to choose one")
    assert "http_port_t" in out and NOTE not in out


def test_note_never_on_stdout_under_json(no_selinux: None,
                                         capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["connect", "web_t", "127.0.0.1:5432", "--json"]) == 1
    out, err = capfd.readouterr()
    answer = json.loads(out)  # stdout is exactly one JSON answer
    assert answer["schema_version"] == 1
    assert answer["policy"]["policy"] == str(source.example_policy_path())
    assert err.startswith(NOTE)


def test_no_note_with_a_policy(no_selinux: None, capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["label", "port", "80/tcp", "--policy", str(EXAMPLE_CIL)]) == 0
    assert capfd.readouterr().err == ""
