"""Comparing two warehouses table by table, row for row (the daily-run and crash tests).

Both files are attached read-only to a scratch DuckDB database; for every table of
the given schemas, the rows of one `except all` the rows of the other must be
empty both ways, leaving out columns that record when or in which load a row was
written rather than what it says.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from pathlib import Path

import duckdb

from orchestration.lib.contract import SOURCES

# Lineage columns: when and in which load a row was written, not what it says.
RAW_LINEAGE = {"_batch_id", "_loaded_at"}
RAW_EXCLUDED = {
    *(("raw", source, column) for source in SOURCES for column in RAW_LINEAGE),
    ("raw", "_quarantine", "batch_id"),
    ("raw", "_quarantine", "quarantined_at"),
    ("raw", "_load_manifest", "batch_id"),
    ("raw", "_load_manifest", "loaded_at"),
}
CONSISTENT = {"manifest_vs_tables": {}, "loaded_twice": [], "files_twice": []}


def table_columns(
    conn: duckdb.DuckDBPyConnection, catalog: str, schemas: Iterable[str]
) -> dict[tuple[str, str], list[str]]:
    """(schema, table) -> column names in table order, for the tables of `schemas` in `catalog`."""
    rows = conn.execute(
        "select table_schema, table_name, column_name from information_schema.columns "
        "where table_catalog = ? and table_schema in (select unnest(?)) order by table_schema, table_name, "
        "ordinal_position",
        [catalog, list(schemas)],
    ).fetchall()
    tables: dict[tuple[str, str], list[str]] = {}
    for schema, table, column in rows:
        tables.setdefault((schema, table), []).append(column)
    return tables


def table_differences(
    left: Path,
    right: Path,
    schemas: Iterable[str],
    excluded: Collection[tuple[str, str, str]],
    scratch: Path,
) -> tuple[dict[tuple[str, str], list[str]], dict[str, dict[str, int]]]:
    """The tables of `right` (with their columns), and per table whose rows differ, how many
    rows only each side has (and the table's rows); `excluded` (schema, table, column) are
    left out of the comparison. Raises AssertionError when the two hold different tables."""
    schemas = list(schemas)
    conn = duckdb.connect(str(scratch))
    try:
        conn.execute(f"attach '{left}' as left_warehouse (read_only)")
        conn.execute(f"attach '{right}' as right_warehouse (read_only)")
        left_tables = table_columns(conn, "left_warehouse", schemas)
        right_tables = table_columns(conn, "right_warehouse", schemas)
        assert left_tables == right_tables, "the same tables with the same columns"
        differences = {}
        for (schema, table), columns in right_tables.items():
            compared = ", ".join(f'"{c}"' for c in columns if (schema, table, c) not in excluded)
            counts = []
            for one, other in (("left_warehouse", "right_warehouse"), ("right_warehouse", "left_warehouse")):
                counts.append(
                    conn.execute(
                        f'select count(*) from (select {compared} from {one}.{schema}."{table}" '
                        f'except all select {compared} from {other}.{schema}."{table}")'
                    ).fetchall()[0][0]
                )
            rows = conn.execute(f'select count(*) from right_warehouse.{schema}."{table}"').fetchall()[0][0]
            if counts != [0, 0]:
                differences[f"{schema}.{table}"] = {"only_left": counts[0], "only_right": counts[1], "rows": rows}
        return right_tables, differences
    finally:
        conn.close()


def load_consistency(warehouse: Path) -> dict:
    """What must hold after any run, finished or killed: every loaded batch whole in raw and
    quarantine (and nothing of any other batch), no content or file loaded twice. CONSISTENT when it holds."""
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        manifest_vs_tables = {}
        for source in SOURCES:
            rows = conn.execute(
                f"""
                with raw_rows as (select _batch_id as batch_id, count(*) as n from raw.{source} group by 1),
                quarantined as (select batch_id, count(*) as n from raw._quarantine where source = ? group by 1),
                loaded as (select * from raw._load_manifest where source = ? and status = 'loaded')
                select coalesce(m.batch_file, '(no manifest row) batch ' || coalesce(r.batch_id, q.batch_id)),
                       m.rows_loaded, m.rows_quarantined, coalesce(r.n, 0), coalesce(q.n, 0)
                from loaded as m
                full join raw_rows as r on r.batch_id = m.batch_id
                full join quarantined as q on q.batch_id = coalesce(m.batch_id, r.batch_id)
                where m.batch_id is null
                   or m.rows_loaded != coalesce(r.n, 0)
                   or m.rows_quarantined != coalesce(q.n, 0)
                   or m.rows_in_file != coalesce(r.n, 0) + coalesce(q.n, 0)
                """,
                [source, source],
            ).fetchall()
            if rows:
                manifest_vs_tables[source] = rows
        loaded_twice = conn.execute(
            """
            select source, content_hash, count(*) from raw._load_manifest where status = 'loaded'
            group by all having count(*) > 1
            """
        ).fetchall()
        files_twice = conn.execute(
            "select source, batch_file, count(*) from raw._load_manifest group by all having count(*) > 1"
        ).fetchall()
    return {"manifest_vs_tables": manifest_vs_tables, "loaded_twice": loaded_twice, "files_twice": files_twice}
