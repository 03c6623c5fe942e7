"""Opening the DuckDB warehouse the same way everywhere.

DuckDB allows one writer per file: every writer goes through `connect`, and
the Dagster definitions put every asset that writes into one pool (limit 1).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from orchestration.lib.settings import duckdb_memory_limit


def connect(path: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    conn = duckdb.connect(str(path), read_only=read_only, config={"memory_limit": duckdb_memory_limit()})
    conn.execute("set TimeZone = 'UTC'")  # needs ICU, which loads on first use, not in connect's config
    return conn


@contextmanager
def open_warehouse(path: Path, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    conn = connect(path, read_only=read_only)
    try:
        yield conn
    finally:
        conn.close()


def fetch_scalar(conn: duckdb.DuckDBPyConnection, sql: str, params: list | None = None):
    """First column of the first row. Fetches everything: DuckDB 2 refuses
    other work on a connection while a result is left unfinished."""
    rows = conn.execute(sql, params or []).fetchall()
    return rows[0][0] if rows else None
