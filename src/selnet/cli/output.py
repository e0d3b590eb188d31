"""Files selnet writes: atomically, beside the target, and never over a non-regular file."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from selnet.errors import InputError


def check_target(path: Path) -> None:
    """A target that exists must be a regular file (never a device, FIFO or directory)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        if not path.parent.is_dir():
            raise InputError(f"cannot write {path}: {path.parent} is not a directory") from None
        return
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"refusing to replace {path}: it is not a regular file")


@contextlib.contextmanager
def atomic_file(path: Path, mode: str = "w") -> Iterator[IO[str]]:
    """Write to a temporary file beside ``path``, then rename it into place."""
    check_target(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, mode, encoding="utf-8", newline="") as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_text(path: Path, text: str) -> None:
    with atomic_file(path) as fh:
        fh.write(text)


def write_bytes(path: Path, data: bytes) -> None:
    check_target(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
