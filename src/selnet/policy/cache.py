"""On-disk cache of policy snapshots, one file per policy sha256.

A cache entry is trusted only if it unpickles into a snapshot of the current
format whose recorded sha256 matches the policy; anything else (stale format,
truncated or corrupt file, wrong policy) is rebuilt silently.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path

from selnet.policy.snapshot import SNAPSHOT_FORMAT, PolicySnapshot
from selnet.policy.source import cache_dir

_MAGIC = b"selnet-snapshot\n"


def snapshot_path(sha256: str) -> Path:
    return cache_dir() / "index" / f"{sha256}.v{SNAPSHOT_FORMAT}.pickle"


def load_cached(sha256: str) -> PolicySnapshot | None:
    path = snapshot_path(sha256)
    try:
        with open(path, "rb") as f:
            if f.read(len(_MAGIC)) != _MAGIC:
                return None
            snap = pickle.load(f)
    except FileNotFoundError:
        return None
    except Exception:  # corrupt or from an incompatible selnet: rebuild
        return None
    if not isinstance(snap, PolicySnapshot) or snap.sha256 != sha256:
        return None
    return snap


def store(snap: PolicySnapshot) -> None:
    path = snapshot_path(snap.sha256)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(_MAGIC)
            pickle.dump(snap, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError:
        # A read-only or full cache directory only costs speed.
        pass


def get_or_build(sha256: str, build: Callable[[], PolicySnapshot]) -> tuple[PolicySnapshot, bool]:
    """The cached snapshot, or a freshly built (and stored) one; second item: was cached."""
    snap = load_cached(sha256)
    if snap is not None:
        return snap, True
    snap = build()
    store(snap)
    return snap, False
