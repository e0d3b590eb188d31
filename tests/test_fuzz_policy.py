"""CI slice of the fuzz campaign (bench/fuzz, docs/fuzzing.md): policy mutants and cache
corruption, fixed seeds, a few seconds each.  scripts/fuzz runs the long campaign."""

from __future__ import annotations

import random

import pytest
from bench.fuzz import cache, harness, policy


@pytest.fixture(scope="module")
def ws():  # type: ignore[no-untyped-def]
    with harness.Workspace() as w:
        yield w


def _assert_clean(part: harness.Part) -> None:
    assert part.cases and not part.failures, part.line() + "\n" + "\n".join(
        f"{k}: {v}" for k, v in part.examples.items())


@pytest.mark.parametrize("seed", [20261201, 20261202])
def test_policy_mutants_keep_the_contract(ws: harness.Workspace, seed: int) -> None:
    part = policy.run(ws, random.Random(seed), 30, jobs=2, timeout=20)
    assert part.cases == 30
    _assert_clean(part)


@pytest.mark.parametrize("seed", [7, 9])
def test_cache_corruption_never_changes_the_answer(ws: harness.Workspace, seed: int) -> None:
    part = cache.run(ws, random.Random(seed), 25, jobs=2)
    assert part.cases == 25
    _assert_clean(part)


def test_index_cache_corruption_is_rebuilt(ws: harness.Workspace) -> None:
    """Only the index pickles, on the binary policy: never a different answer."""
    s = cache.Setup(ws)
    s.targets = [p for p in s.index if p != s.other_index]
    part = cache.run(ws, random.Random(8), 15, jobs=2, setup=s)
    _assert_clean(part)


def test_workspace_refuses_paths_outside() -> None:
    with harness.Workspace() as w:
        with pytest.raises(AssertionError):
            w.path("..", "x")
        assert not w.inside("/dev/full") and w.inside(w.path("a"))
