"""JSON on stdout: indented for a person at a terminal, compact (and fast) otherwise."""

from __future__ import annotations

import json
import sys
from typing import TextIO

# The version of every JSON answer's shape (docs/schemas/): raised when a key changes
# meaning or goes away, not when one is added.
SCHEMA_VERSION = 1


def emit_json(obj: object, out: TextIO | None = None) -> None:
    stream = out or sys.stdout
    # json.dump streams through the pure-Python encoder; dumps without indent
    # uses the C encoder, ~10x faster on large reports (audit, matrix summaries).
    indent = 2 if stream.isatty() else None
    stream.write(json.dumps(obj, indent=indent) + "\n")


def error_json(message: str, exit_code: int, out: TextIO | None = None) -> None:
    """An error under --json: the same one line, as JSON, with the exit status."""
    emit_json({"schema_version": SCHEMA_VERSION, "error": message, "exit": exit_code}, out)
