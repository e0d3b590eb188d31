"""The on-disk index cache: reused when valid, rebuilt silently when not."""

from __future__ import annotations

from pathlib import Path

from selnet.policy import cache
from selnet.policy.loader import load_policy
from selnet.policy.source import resolve


def test_second_load_comes_from_cache(compile_cil) -> None:  # type: ignore[no-untyped-def]
    path = compile_cil("(handleunknown deny) (type c1_t) (roletype system_r c1_t)")
    first = load_policy([str(path)])
    second = load_policy([str(path)])
    assert not first.from_cache and second.from_cache
    assert second.snap.sha256 == first.snap.sha256
    assert cache.snapshot_path(first.snap.sha256).exists()


def test_corrupt_cache_is_rebuilt(compile_cil) -> None:  # type: ignore[no-untyped-def]
    path = compile_cil("(handleunknown deny) (type c2_t) (roletype system_r c2_t)")
    pol = load_policy([str(path)])
    entry = cache.snapshot_path(pol.snap.sha256)
    entry.write_bytes(entry.read_bytes()[:100])  # truncated
    again = load_policy([str(path)])
    assert not again.from_cache and "c2_t" in again.snap.type_attrs
    entry.write_bytes(b"garbage")
    assert not load_policy([str(path)]).from_cache
    assert load_policy([str(path)]).from_cache  # rebuilt and stored


def test_cache_for_another_policy_is_not_trusted(compile_cil) -> None:  # type: ignore[no-untyped-def]
    a = compile_cil("(handleunknown deny) (type c3_t) (roletype system_r c3_t)")
    b = compile_cil("(handleunknown deny) (type c4_t) (roletype system_r c4_t)")
    pa, pb = load_policy([str(a)]), load_policy([str(b)])
    # Plant a's snapshot under b's name: its recorded sha256 does not match.
    cache.snapshot_path(pb.snap.sha256).write_bytes(cache.snapshot_path(pa.snap.sha256).read_bytes())
    again = load_policy([str(b)])
    assert not again.from_cache and "c4_t" in again.snap.type_attrs


def test_source_policies_compile_once(tmp_path: Path) -> None:
    from tests.conftest import BASE_CIL

    snippet = tmp_path / "s.cil"
    snippet.write_text("(handleunknown deny) (type s_t) (roletype system_r s_t)\n")
    one = resolve([str(BASE_CIL), str(snippet)])
    mtime = one.binary.stat().st_mtime_ns
    two = resolve([str(BASE_CIL), str(snippet)])
    assert two.binary == one.binary and two.binary.stat().st_mtime_ns == mtime
    assert one.origin == "cil" and one.from_source
