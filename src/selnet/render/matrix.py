"""Writers for ``selnet matrix``: CSV, JSON Lines, SQLite (one row per grant and port range)."""

from __future__ import annotations

import csv
import json
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO

from selnet.analyses.profiles import MatrixRow
from selnet.errors import InputError


def write_csv(rows: Iterable[MatrixRow], out: TextIO) -> int:
    w = csv.writer(out, lineterminator="\n")
    w.writerow(MatrixRow.FIELDS)
    n = 0

    def cells() -> Iterator[tuple[object, ...]]:
        nonlocal n
        for r in rows:
            n += 1
            yield (r.domain, r.protocol, r.operation, r.low, r.high, r.port_type, r.condition,
                   "1" if r.allowed_now else "0", r.socket_type)

    w.writerows(cells())  # one C loop over the rows (a writerow call each was a third)
    return n


def write_jsonl(rows: Iterable[MatrixRow], out: TextIO) -> int:
    n = 0
    for row in rows:
        out.write(json.dumps(dict(zip(MatrixRow.FIELDS, row.as_tuple(), strict=True))) + "\n")
        n += 1
    return n


_SCHEMA = """
CREATE TABLE matrix (
    domain TEXT NOT NULL, protocol TEXT NOT NULL, operation TEXT NOT NULL,
    low INTEGER NOT NULL, high INTEGER NOT NULL, port_type TEXT NOT NULL,
    condition TEXT NOT NULL, allowed_now INTEGER NOT NULL, socket_type TEXT NOT NULL
);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
"""


def write_sqlite(rows: Iterable[MatrixRow], path: Path, meta: dict[str, str]) -> int:
    """Write the database at ``path``, which must be a new or empty file: the caller gives
    a temporary file and renames it into place (cli/output.atomic_path)."""
    con = sqlite3.connect(path)
    try:
        con.executescript(_SCHEMA)
        con.executemany("INSERT INTO meta VALUES (?, ?)", sorted(meta.items()))
        n = 0
        batch: list[tuple[object, ...]] = []
        for row in rows:
            batch.append(row.as_tuple())
            n += 1
            if len(batch) >= 5000:
                con.executemany("INSERT INTO matrix VALUES (?,?,?,?,?,?,?,?,?)", batch)
                batch.clear()
        con.executemany("INSERT INTO matrix VALUES (?,?,?,?,?,?,?,?,?)", batch)
        con.execute("CREATE INDEX matrix_domain ON matrix (domain, protocol, operation)")
        con.execute("CREATE INDEX matrix_port ON matrix (protocol, low, high)")
        con.commit()
    except sqlite3.Error as exc:
        raise InputError(f"cannot write SQLite database {path}: {exc}") from exc
    finally:
        con.close()
    return n
