"""On-disk cache of policy snapshots, one file per policy sha256.

An entry is one header line and a payload::

    selnet-snapshot <format> <policy sha256> <payload BLAKE2b-256> <payload length>\\n
    <payload: marshal of a tuple of sections, each the marshal of its fields' values,
     plain tuples, lists, dicts, frozensets, strs and ints>

The payload is never decoded before its sha256 matches the header's, so a
flipped bit, a truncated write or an entry from another policy or format is
rebuilt silently.  marshal only builds data (unlike pickle, loading runs no
code); the NamedTuple records of :mod:`selnet.policy.snapshot` are rebuilt from
the tuples.  Each section (:data:`SECTIONS`) is decoded when one of its fields is
first read, so a label lookup never builds the rules.  The cache directory is used
only while it is the user's and writable by nobody else (:func:`selnet.policy.source.private_cache_dir`), and
an entry only while it is too.
"""

from __future__ import annotations

import contextlib
import gc
import marshal
import os
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from selnet.policy.atomic import write_atomic
from selnet.policy.digest import cache_digest
from selnet.policy.snapshot import (
    SNAPSHOT_FIELDS,
    SNAPSHOT_FORMAT,
    AVRule,
    Constraint,
    Context,
    Netifcon,
    Nodecon,
    PolicySnapshot,
    Portcon,
    TypeTransition,
    UserInfo,
)
from selnet.policy.source import cache_dir, caches_allowed, private_cache_dir

_MAGIC = b"selnet-snapshot"
# The layout of the payload below; with SNAPSHOT_FORMAT it makes the header's format.
_ENCODING = 3  # 2: the payload in sections, decoded as read; 3: its digest BLAKE2b (digest.py)
_FORMAT = f"{SNAPSHOT_FORMAT}.{_ENCODING}"
_MARSHAL_VERSION = 4
_MAX_HEADER = 256


def snapshot_path(sha256: str) -> Path:
    return cache_dir() / "index" / f"{sha256}.v{_FORMAT}.snap"


# -- encoding: the snapshot as plain data, field by field -------------------------------

# The payload's sections, by what reads them: the first is decoded with the entry (the
# policy's identity and what every command looks at), the others when one of their fields
# is first read (a warm ``label port`` decodes the labels and nothing else).
SECTIONS: tuple[tuple[str, ...], ...] = (
    ("sha256", "path", "version", "mls", "handle_unknown", "polcaps", "booleans",
     "permissive", "bounds", "sensitivities", "categories", "sens_aliases", "cat_aliases"),
    ("initial_sids", "portcons", "nodecons", "netifcons"),
    ("type_attrs",),  # a label's attributes
    ("attr_types",),
    ("classes", "aliases", "users", "role_types"),
    ("rules", "transitions", "constraints"),
)
_SECTION_OF = {name: i for i, names in enumerate(SECTIONS) for name in names}
if sorted(_SECTION_OF) != sorted(SNAPSHOT_FIELDS):  # a field added to the snapshot needs a section
    raise RuntimeError("policy/cache.SECTIONS does not list every snapshot field")


# The large fields (rules, transitions, the name maps) are encoded by _Sharer (encode).
_ENCODE: dict[str, Callable[[Any], Any]] = {
    "initial_sids": lambda d: {k: tuple(v) for k, v in d.items()},
    "portcons": lambda xs: [(p.protocol, p.low, p.high, tuple(p.context), p.position)
                            for p in xs],
    "nodecons": lambda xs: [(*n[:6], tuple(n.context), n.position) for n in xs],
    "netifcons": lambda xs: [(n.name, tuple(n.context), tuple(n.packet_context), n.position)
                             for n in xs],
    "constraints": lambda xs: [tuple(c) for c in xs],
    "users": lambda d: {k: tuple(v) for k, v in d.items()},
}


def _records(cls: Any) -> Callable[[Any], list[Any]]:
    make = cls._make
    return lambda xs: list(map(make, xs))


_C = Context._make
_DECODE: dict[str, Callable[[Any], Any]] = {
    "initial_sids": lambda d: {k: _C(v) for k, v in d.items()},
    "portcons": lambda xs: [Portcon(p, lo, hi, _C(c), i) for p, lo, hi, c, i in xs],
    "nodecons": lambda xs: [Nodecon(f, a, m, pl, ai, mi, _C(c), i)
                            for f, a, m, pl, ai, mi, c, i in xs],
    "netifcons": lambda xs: [Netifcon(n, _C(c), _C(pc), i) for n, c, pc, i in xs],
    "rules": _records(AVRule),
    "transitions": _records(TypeTransition),
    "constraints": _records(Constraint),
    "users": lambda d: {k: UserInfo._make(v) for k, v in d.items()},
}


def _shared(value: Any, memo: dict[Any, Any]) -> Any:
    """``value`` with equal strings, string tuples and frozensets made one object each.

    marshal writes an object seen before as a back-reference, so the payload
    holds (and a load builds) each distinct permission set, attribute set and
    context once: a third smaller and about twice as fast to load on the
    reference policy.  Only all-string tuples and frozensets are shared, so
    values equal across types (``1 == True``) never stand in for each other.
    """
    if isinstance(value, str):
        return memo.setdefault(value, value)
    if isinstance(value, list):
        return [_shared(v, memo) for v in value]
    if isinstance(value, dict):
        return {_shared(k, memo): _shared(v, memo) for k, v in value.items()}
    if isinstance(value, (tuple, frozenset)):
        items = [_shared(v, memo) for v in value]
        new = tuple(items) if isinstance(value, tuple) else frozenset(items)
        if all(type(v) is str for v in items):
            return memo.setdefault((type(new), new), new)
        return new
    return value


class _Sharer:
    """:func:`_shared` for the large fields, without a Python call per string: strings
    interned (one object per text), string sets and tuples kept once each."""

    def __init__(self) -> None:
        self.sets: dict[frozenset[str], frozenset[str]] = {}
        self.tuples: dict[tuple[str, ...], tuple[str, ...]] = {}

    def names(self, value: frozenset[str]) -> frozenset[str]:
        new = frozenset(map(sys.intern, value))
        return self.sets.setdefault(new, new)

    def name_map(self, d: dict[str, frozenset[str]]) -> dict[str, frozenset[str]]:
        names = self.names
        return {sys.intern(k): names(v) for k, v in d.items()}

    def cond(self, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        new = tuple(map(sys.intern, value))
        return self.tuples.setdefault(new, new)

    def rules(self, rules: list[AVRule]) -> list[tuple[Any, ...]]:
        i, names, cond = sys.intern, self.names, self.cond
        return [(i(rt), i(s), i(t), i(c), names(p), cond(e), b)
                for rt, s, t, c, p, e, b in rules]

    def transitions(self, tts: list[TypeTransition]) -> list[tuple[Any, ...]]:
        i, cond = sys.intern, self.cond
        return [(i(s), i(t), i(c), i(d), cond(e), b) for s, t, c, d, e, b in tts]


def encode(snap: PolicySnapshot) -> bytes:
    """The snapshot's payload (raises ValueError if a field holds an unencodable value)."""
    sharer = _Sharer()
    big: dict[str, Callable[[Any], Any]] = {
        "rules": sharer.rules, "transitions": sharer.transitions,
        "type_attrs": sharer.name_map, "attr_types": sharer.name_map,
        "role_types": sharer.name_map, "classes": sharer.name_map,
    }
    sections = []
    for names in SECTIONS:
        values = []
        memo: dict[Any, Any] = {}
        for name in names:
            value = getattr(snap, name)
            fast = big.get(name)
            if fast is not None:
                values.append(fast(value))
                continue
            enc = _ENCODE.get(name)
            values.append(_shared(enc(value) if enc is not None else value, memo))
        sections.append(marshal.dumps(tuple(values), _MARSHAL_VERSION))
    return marshal.dumps(tuple(sections), _MARSHAL_VERSION)


def _section_values(index: int, blob: bytes) -> dict[str, Any]:
    """One section's fields, decoded."""
    names = SECTIONS[index]
    values = marshal.loads(blob)
    if not isinstance(values, tuple) or len(values) != len(names):
        raise ValueError("snapshot section of another layout")
    out = {}
    for name, value in zip(names, values, strict=True):
        dec = _DECODE.get(name)
        out[name] = dec(value) if dec is not None else value
    return out


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic collector off while a payload is decoded: building some 100,000
    containers triggers it over and over for nothing (none of them can form a cycle),
    and the load takes half as long without."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class _LazySnapshot(PolicySnapshot):
    """A cached snapshot whose sections are decoded when one of their fields is first
    read (an unset slot raises AttributeError, which brings ``__getattr__`` in).  The
    whole payload was verified before this was made."""

    def __getattr__(self, name: str) -> Any:
        pending: dict[int, bytes] = self.__dict__.get("_pending", {})
        index = _SECTION_OF.get(name)
        if index is None or index not in pending:
            raise AttributeError(name)
        with _collector_paused():
            values = _section_values(index, pending.pop(index))
        for key, value in values.items():
            setattr(self, key, value)
        return values[name]


def decode(payload: bytes) -> PolicySnapshot:
    """The snapshot: its first section decoded now, the others when first read."""
    sections = marshal.loads(payload)
    if (not isinstance(sections, tuple) or len(sections) != len(SECTIONS)
            or not all(type(b) is bytes for b in sections)):
        raise ValueError("snapshot payload of another layout")
    snap = _LazySnapshot.__new__(_LazySnapshot)
    for key, value in _section_values(0, sections[0]).items():
        setattr(snap, key, value)
    snap.__dict__["_pending"] = dict(enumerate(sections[1:], 1))
    return snap


def _header(sha256: str, payload: bytes) -> bytes:
    digest = cache_digest(payload)
    return b"%s %s %s %s %d\n" % (_MAGIC, _FORMAT.encode(), sha256.encode(), digest.encode(),
                                  len(payload))


# -- the files ---------------------------------------------------------------------------
def _read_entry(path: Path) -> bytes | None:
    """The entry's bytes, if it is a regular file of the user's that nobody else can write."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if (not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid()
                or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)):
            return None
        return f.read()


def _split_entry(data: bytes) -> tuple[bytes, bytes] | None:
    """(header line with its newline, payload) of a cache entry, or None when no header
    line ends within _MAX_HEADER bytes; the caller compares the header it expects."""
    end = data.find(b"\n", 0, _MAX_HEADER)
    return None if end < 0 else (data[:end + 1], data[end + 1:])


def load_cached(sha256: str) -> PolicySnapshot | None:
    if private_cache_dir("index") is None:
        return None
    data = _read_entry(snapshot_path(sha256))
    if data is None:
        return None
    entry = _split_entry(data)
    if entry is None or entry[0] != _header(sha256, entry[1]):  # format, policy, integrity, length
        return None
    payload = entry[1]
    try:
        snap = decode_paused(payload)
    except Exception:  # written by a selnet of the same format but another layout: rebuild
        return None
    return snap if snap.sha256 == sha256 else None


def decode_paused(payload: bytes) -> PolicySnapshot:
    """:func:`decode` with the cyclic collector paused (:func:`_collector_paused`)."""
    with _collector_paused():
        return decode(payload)


def store(snap: PolicySnapshot, payload: bytes | None = None) -> None:
    """Cache ``snap``; ``payload`` is its :func:`encode`, when the caller has it already
    (the loader's child process encodes what it extracted)."""
    if private_cache_dir("index") is None:
        return
    path = snapshot_path(snap.sha256)
    if payload is None:
        try:
            payload = encode(snap)
        except ValueError:  # a value marshal cannot hold: no cache, only slower
            return
    _write_entry(path, _header(snap.sha256, payload), payload)


def _write_entry(path: Path, header: bytes, payload: bytes) -> None:
    """Header and payload, written atomically: a reader never sees half an entry.  A
    read-only or full cache directory only costs speed."""
    with contextlib.suppress(OSError):
        write_atomic(path, (header, payload))


def get_or_build(
    sha256: str, build: Callable[[], tuple[PolicySnapshot, bytes | None]]
) -> tuple[PolicySnapshot, bool]:
    """The cached snapshot, or a freshly built (and stored) one; second item: was cached.
    ``build`` gives the snapshot and its payload (None: encoded here)."""
    snap = load_cached(sha256)
    if snap is not None:
        return snap, True
    snap, payload = build()
    store(snap, payload)
    return snap, False


# -- small derived data (boolean descriptions, ...) ------------------------------------------
_BLOB_MAGIC = b"selnet-blob2"  # 2: digests BLAKE2b (digest.py)


def _blob_header(key: str, payload: bytes) -> bytes:
    digest = cache_digest(payload)
    return b"%s %s %s %d\n" % (_BLOB_MAGIC, cache_digest(key.encode()).encode(),
                               digest.encode(), len(payload))


def read_blob(name: str, key: str) -> bytes | None:
    """The payload stored under ``name`` for ``key`` (the inputs it was derived from), or
    None: verified like the index (the user's file, nobody else may write it; the key,
    the payload's digest and length in the header)."""
    if not caches_allowed():
        return None
    cdir = private_cache_dir("derived")
    if cdir is None:
        return None
    data = _read_entry(cdir / name)
    if data is None:
        return None
    entry = _split_entry(data)
    return entry[1] if entry is not None and entry[0] == _blob_header(key, entry[1]) else None


def write_blob(name: str, key: str, payload: bytes) -> None:
    """Store ``payload`` atomically; a cache that cannot be written only costs speed."""
    if not caches_allowed():
        return
    cdir = private_cache_dir("derived")
    if cdir is None:
        return
    _write_entry(cdir / name, _blob_header(key, payload), payload)
