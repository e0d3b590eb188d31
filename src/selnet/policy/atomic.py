"""Writing one of selnet's own cache files: whole or not at all.

The caches' one writer (the snapshot index, the blob store, compiled modules, the
interface index, verify's guest files). The temporary file is made beside the target
with ``mkstemp`` (unique per process and thread, never an existing name) and renamed
over it, so a reader never sees half a file and a name is replaced only by a rename, in
a directory that is the user's own (``source.private_cache_dir``). Files the user asked
for go through ``cli/output`` instead, which also refuses a target that is not a regular
file; ``verify/archive.write_atomic`` is the standard-library twin of this one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


def write_atomic(out: Path, data: bytes | Iterable[bytes]) -> None:
    """``out`` holds ``data`` (bytes, or pieces written in order) or is left as it was;
    an OSError is the caller's to ignore (a read-only cache only costs speed) or raise."""
    import tempfile  # only when a cache is written: not on a warm run

    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".tmp-", suffix=out.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            for piece in (data,) if isinstance(data, bytes) else data:
                f.write(piece)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
