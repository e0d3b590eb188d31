"""CI slice of the fuzz campaign (bench/fuzz, docs/fuzzing.md): mutated arguments for every
command, in-process, fixed seed.  scripts/fuzz runs the long campaign."""

from __future__ import annotations

import random

import pytest
from bench.fuzz import cli, harness


@pytest.fixture(scope="module")
def ws():  # type: ignore[no-untyped-def]
    with harness.Workspace() as w:
        yield w


def _assert_clean(part: harness.Part) -> None:
    assert part.cases and not part.failures, part.line() + "\n" + "\n".join(
        f"{k}: {v}" for k, v in part.examples.items())


@pytest.mark.parametrize("seed", [20261201, 20261202])
def test_mutated_arguments_keep_the_contract(ws: harness.Workspace, seed: int) -> None:
    """FIFOs only as outputs here; a FIFO as an input is test_fifo_policy_is_refused."""
    part = cli.run(ws, random.Random(seed), 40, jobs=2, fifo_inputs=False)  # cli.CASE_TIMEOUT
    assert part.cases == 40
    _assert_clean(part)


def test_fifo_policy_is_refused(ws: harness.Workspace) -> None:
    sh = cli.setup(ws) if not hasattr(ws, "_cli") else ws._cli  # type: ignore[attr-defined]
    ws._cli = sh  # type: ignore[attr-defined]
    p = cli.case_paths(ws, sh)
    (child,) = harness.run_map(ws, [lambda: harness.cli(["info", "--policy", str(p.fifo)])],
                               timeout=3)
    assert harness.judge_child(child) is None, child.detail
    assert child.value.rc == 2 and harness.judge_call(child.value) is None, child.value
    assert not cli.destroyed(p)


@pytest.mark.parametrize("argv", [
    ["label", "port", "9" * 5000],
    ["connect", "web_t", "127.0.0.1:" + "9" * 5000],
    ["port", "1" + "0" * 4000 + "/tcp"],
    ["connect", "web_t", "127.0.0.1:5432", "--json", "--sysctl",
     "net.ipv4.ip_unprivileged_port_start=" + "9" * 5000],
    ["connect", "system_u:system_r:web_t:s15-s0", "127.0.0.1:5432"],
    ["connect", "", "127.0.0.1:5432", "--json"],
])
def test_bad_input_is_one_line_and_exit_2(ws: harness.Workspace, argv: list[str]) -> None:
    sh = cli.setup(ws) if not hasattr(ws, "_cli") else ws._cli  # type: ignore[attr-defined]
    ws._cli = sh  # type: ignore[attr-defined]
    extra = ["--no-interfaces"] if argv[0] == "connect" else []
    full = [*argv, "--policy", str(sh.policy), *extra]
    (child,) = harness.run_map(ws, [lambda: harness.cli(full)], timeout=5)
    assert harness.judge_child(child) is None, child.detail
    assert harness.judge_call(child.value) is None, child.value
    assert child.value.rc == 2, child.value


@pytest.mark.parametrize("target", ["fifo", "fifo_link", "dir", "missing"])
def test_output_never_replaces_a_non_regular_file(ws: harness.Workspace, target: str) -> None:
    sh = cli.setup(ws) if not hasattr(ws, "_cli") else ws._cli  # type: ignore[attr-defined]
    ws._cli = sh  # type: ignore[attr-defined]
    p = cli.case_paths(ws, sh)
    out = str(getattr(p, target))
    argv = ["matrix", "--format", "csv", "-o", out, "--policy", str(sh.policy)]
    (child,) = harness.run_map(ws, [lambda: harness.cli(argv)], timeout=5)
    assert harness.judge_child(child) is None, child.detail
    assert harness.judge_call(child.value) is None, child.value
    assert child.value.rc == 2, child.value
    assert not cli.destroyed(p)
