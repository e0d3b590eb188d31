"""One call from ``--policy`` arguments to a ready :class:`Policy`."""

from __future__ import annotations

from selnet.policy.cache import get_or_build
from selnet.policy.extract import extract
from selnet.policy.index import Policy
from selnet.policy.snapshot import PolicySnapshot
from selnet.policy.source import PolicySource, resolve


def load_policy(paths: list[str] | None = None, *, use_cache: bool = True) -> Policy:
    source = resolve(paths)
    return load_source(source, use_cache=use_cache)


def load_source(source: PolicySource, *, use_cache: bool = True) -> Policy:
    def build() -> PolicySnapshot:
        return extract(str(source.binary), source.sha256)

    if use_cache:
        snap, cached = get_or_build(source.sha256, build)
    else:
        snap, cached = build(), False
    return Policy(snap, source, from_cache=cached)
