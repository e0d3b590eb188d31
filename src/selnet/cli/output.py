"""Files selnet writes: atomically, beside the target, and never over a non-regular file."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

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
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"cannot write {path}: it is a directory")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"refusing to replace {path}: it is not a regular file")


def _mode_for(path: Path) -> int:
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        umask = os.umask(0o022)
        os.umask(umask)
        return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A new temporary file beside ``path`` for a writer that takes a path (SQLite); renamed
    over ``path`` when the block succeeds, removed when it fails.  The target is checked
    first, and again just before the rename: what replaces it is always a regular file."""
    check_target(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror}") from exc
    try:  # mkstemp makes 0600: keep a replaced file's mode, else what open() would give
        os.fchmod(fd, _mode_for(path))
    except OSError:
        pass
    finally:
        os.close(fd)
    try:
        yield Path(tmp)
        check_target(path)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[TextIO]:
    """Write to a temporary file beside ``path``, then rename it into place."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        yield fh


def write_text(path: Path, text: str) -> None:
    with atomic_file(path) as fh:
        fh.write(text)


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
