"""CI slice of the fuzz campaign (bench/fuzz, docs/fuzzing.md): policy mutants and cache
corruption, fixed seeds, a few seconds each.  scripts/fuzz runs the long campaign."""

from __future__ import annotations

import copy
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


# The seed policies and the pristine cache are built once for the module (secilc and a
# clean answer each): the slices then cost only their cases.
@pytest.fixture(scope="module")
def seed_list(ws: harness.Workspace) -> list[policy.Seed]:
    return policy.seeds(ws)


@pytest.fixture(scope="module")
def setup(ws: harness.Workspace) -> cache.Setup:
    return cache.Setup(ws)


@pytest.mark.parametrize("seed", [20261201, 20261202])
def test_policy_mutants_keep_the_contract(ws: harness.Workspace, seed_list: list[policy.Seed],
                                          seed: int) -> None:
    part = policy.run(ws, random.Random(seed), 25, jobs=2, timeout=20, seed_list=seed_list)
    assert part.cases == 25
    _assert_clean(part)


@pytest.mark.parametrize("seed", [7, 9])
def test_cache_corruption_never_changes_the_answer(ws: harness.Workspace, setup: cache.Setup,
                                                   seed: int) -> None:
    part = cache.run(ws, random.Random(seed), 25, jobs=2, setup=setup)
    assert part.cases == 25
    _assert_clean(part)


def test_index_cache_corruption_is_rebuilt(ws: harness.Workspace, setup: cache.Setup) -> None:
    """Only the index files, on the binary policy: never a different answer."""
    s = copy.copy(setup)
    s.targets = [p for p in setup.index if p != setup.other_index]
    part = cache.run(ws, random.Random(8), 15, jobs=2, setup=s)
    assert part.cases == 15
    _assert_clean(part)


def test_workspace_refuses_paths_outside() -> None:
    with harness.Workspace() as w:
        with pytest.raises(AssertionError):
            w.path("..", "x")
        assert not w.inside("/dev/full") and w.inside(w.path("a"))
