"""One call from ``--policy`` arguments to a ready :class:`Policy`."""

from __future__ import annotations

from collections.abc import Callable

from selnet.policy.cache import get_or_build
from selnet.policy.extract import extract
from selnet.policy.index import Policy
from selnet.policy.snapshot import PolicySnapshot
from selnet.policy.source import PolicySource, resolve


def load_policy(
    paths: list[str] | None = None,
    *,
    use_cache: bool = True,
    on_build: Callable[[], None] | None = None,
) -> Policy:
    source = resolve(paths)
    return load_source(source, use_cache=use_cache, on_build=on_build)


def load_source(
    source: PolicySource, *, use_cache: bool = True, on_build: Callable[[], None] | None = None
) -> Policy:
    def build() -> PolicySnapshot:
        if on_build is not None:
            on_build()
        return extract(str(source.binary), source.sha256)

    if use_cache:
        snap, cached = get_or_build(source.sha256, build)
    else:
        snap, cached = build(), False
    return Policy(snap, source, from_cache=cached)
