"""What --policy refuses, in one line and exit 2: special files, unreadable files, and
corrupt compiled policies (libsepol's and setools' own output captured)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from selnet.cli import main
from tests.conftest import CompileCil

SNIPPET = "(handleunknown deny) (type pi_t) (roletype system_r pi_t)"


def run_main(capfd: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    code = main(["info", "--no-cache", *args])
    err = capfd.readouterr().err
    return code, err.strip().splitlines()


def assert_one_line(code: int, lines: list[str], fragment: str) -> None:
    assert code == 2, lines
    assert len(lines) == 1, lines
    assert lines[0].startswith("selnet: ") and fragment in lines[0], lines


def test_fifo_is_refused_before_opening(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "policy.fifo"
    os.mkfifo(fifo)
    assert_one_line(*run_main(capfd, "--policy", str(fifo)), "is a FIFO, not a policy file")


def test_fifo_as_a_module_is_refused(tmp_path: Path, compile_cil: CompileCil,
                                     capfd: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "mod.cil.fifo"
    os.mkfifo(fifo)
    base = compile_cil(SNIPPET)
    assert_one_line(*run_main(capfd, "--policy", str(base), "--policy", str(fifo)), "is a FIFO")


def test_device_and_directory_are_refused(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    assert_one_line(*run_main(capfd, "--policy", os.devnull), "is a character device")
    assert_one_line(*run_main(capfd, "--policy", str(tmp_path)), "is a directory")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a mode-000 file")
def test_unreadable_policy(tmp_path: Path, compile_cil: CompileCil,
                           capfd: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "secret.policy"
    f.write_bytes(compile_cil(SNIPPET).read_bytes())
    f.chmod(0)
    assert_one_line(*run_main(capfd, "--policy", str(f)), "cannot read (Permission denied)")


def test_truncated_policy_is_one_accurate_line(tmp_path: Path, compile_cil: CompileCil,
                                               capfd: pytest.CaptureFixture[str]) -> None:
    good = compile_cil(SNIPPET).read_bytes()
    for cut in (8, 100, len(good) // 2, len(good) - 1):
        bad = tmp_path / f"cut{cut}.policy"
        bad.write_bytes(good[:cut])
        code, lines = run_main(capfd, "--policy", str(bad))
        assert_one_line(code, lines, f"{bad}: not a valid compiled policy (libsepol")
        assert "Source policies are not supported" not in lines[0]


def test_bit_flipped_policies_print_one_line(tmp_path: Path, compile_cil: CompileCil,
                                             capfd: pytest.CaptureFixture[str]) -> None:
    good = compile_cil(SNIPPET).read_bytes()
    reasons = []
    positions = range(len(good) // 2, len(good), 23)
    # Interleaved, so that the first few loads already sample the whole second half.
    for pos in (p for start in range(8) for p in positions[start::8]):
        for bit in (0x40,):
            flipped = bytearray(good)
            flipped[pos] ^= bit
            bad = tmp_path / "flipped.policy"
            bad.write_bytes(bytes(flipped))
            code, lines = run_main(capfd, "--policy", str(bad))
            if code == 0:  # a flip in a name or an unused field: still a valid policy
                continue
            assert_one_line(code, lines, "not a valid compiled policy (")
            assert "Traceback" not in lines[0] and "Source policies" not in lines[0]
            reasons.append(lines[0])
        # Each load runs in a time-limited child (~0.2 s): stop once both kinds of refusal
        # (setools' and libsepol's own reason) have been seen often enough.
        if len(reasons) >= 8 and any("(libsepol: " in r for r in reasons):
            break
    assert reasons, "no flip made the policy invalid"
    # libsepol's own reason is passed on, once, in selnet's line.
    assert any("(libsepol: " in r for r in reasons), reasons


def test_a_hanging_read_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch,
                                               compile_cil: Any, capfd: Any) -> None:
    """libsepol can spin forever on some corrupt binaries: the first read runs in a child
    process with a time limit, so selnet still answers with one line and exit 2."""
    import time

    from selnet.cli import main
    from selnet.policy import extract

    policy = compile_cil("")

    def hang(path: str, sha256: str) -> object:
        time.sleep(60)
        raise AssertionError("not reached")

    # the loader imports the extractor when it first reads a policy
    monkeypatch.setattr(extract, "extract", hang)
    # Read at each load, as the fuzz campaign sets it after importing selnet.
    monkeypatch.setenv("SELNET_LOAD_TIMEOUT", "1")
    start = time.monotonic()
    assert main(["info", "--policy", str(policy), "--no-cache"]) == 2
    assert time.monotonic() - start < 20
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "did not finish reading it" in err[0]


@pytest.mark.parametrize(("value", "limit"), [("2.5", 2.5), ("", 300.0), ("soon", 300.0),
                                               ("-1", 300.0), ("nan", 300.0), ("inf", 300.0)])
def test_load_timeout_setting(monkeypatch: pytest.MonkeyPatch, value: str, limit: float) -> None:
    from selnet.policy import loader

    monkeypatch.setenv("SELNET_LOAD_TIMEOUT", value)
    assert loader.load_timeout() == limit
