"""The integrity digest of selnet's own cache files (entry headers, blob names and keys).

BLAKE2b-256 from CPython's built-in ``_blake2``: importing ``hashlib`` loads OpenSSL's
``_hashlib`` (~3 ms of every warm run, more than hashing the entry) only to reach
sha256. A policy's identity stays its sha256 (what sesearch users and the reports
quote); that is computed with ``hashlib`` only when the stat-keyed memo misses.
"""

from __future__ import annotations

try:
    from _blake2 import blake2b as _blake2b
except ImportError:  # an interpreter built without the built-in hashes
    from hashlib import blake2b as _blake2b


def cache_digest(data: bytes) -> str:
    """64 hex digits: equal only for equal data (as sha256 would be)."""
    return _blake2b(data, digest_size=32).hexdigest()


def cache_digest_bytes(data: bytes) -> bytes:
    """The same digest as 32 raw bytes (for binary headers)."""
    return _blake2b(data, digest_size=32).digest()
