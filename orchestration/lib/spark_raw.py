"""The raw layer of a DuckDB warehouse, handed to Spark: one Parquet folder per source table,
registered as an external table of the Spark database `raw`.

Ingestion (contract validation, quarantine, batch expectations, the load manifest) stays where it
runs today; what Spark receives is exactly what dbt reads on DuckDB: the contract-valid rows of
every loaded batch with their lineage columns (_batch_id, _row_number, ...). This is also the shape
a team outgrowing one machine would give its lake: ingestion writes Parquet to object storage and
the engine registers it (docs/scaling.md).

Types: DuckDB writes DECIMAL, BIGINT, DATE and VARCHAR as Parquet types that Spark reads back as
decimal(p,s), bigint, date and string. Naive TIMESTAMPs (UTC by the contract) are written as UTC
instants (Parquet isAdjustedToUTC), which Spark reads as TIMESTAMP, the type every Spark timestamp
function takes, not TIMESTAMP_NTZ; the Spark session's time zone is UTC, so the values are
unchanged.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from orchestration.lib.contract import SOURCE_NAMES
from orchestration.lib.warehouse import open_warehouse

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

RAW_SCHEMA = "raw"


@dataclass(frozen=True)
class ExportedTable:
    """One raw table written as Parquet: where, and how many rows DuckDB had."""

    name: str
    folder: Path
    rows: int


def _export_select(conn, table: str) -> str:
    """SELECT of a raw table with naive timestamps turned into UTC instants (see module docstring)."""
    columns = conn.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = ? and table_name = ? order by ordinal_position",
        [RAW_SCHEMA, table],
    ).fetchall()
    if not columns:
        raise LookupError(f"The warehouse has no table {RAW_SCHEMA}.{table}: run `billing-analytics run` first")
    expressions = [
        f'cast("{name}" as timestamptz) as "{name}"' if data_type == "TIMESTAMP" else f'"{name}"'
        for name, data_type in columns
    ]
    return f"select {', '.join(expressions)} from {RAW_SCHEMA}.{table}"


def export_raw_tables(warehouse_path: Path, export_dir: Path) -> list[ExportedTable]:
    """Write every raw source table of the DuckDB warehouse to <export_dir>/<table>/ as Parquet,
    replacing an earlier export. Opens the warehouse read-only (no run may be writing it)."""
    if not warehouse_path.exists():
        raise FileNotFoundError(f"No DuckDB warehouse at {warehouse_path}: run `billing-analytics run` first")
    exported = []
    with open_warehouse(warehouse_path, read_only=True) as conn:
        for table in SOURCE_NAMES:
            folder = export_dir / table
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            select = _export_select(conn, table)
            conn.execute(f"copy ({select}) to '{folder / 'part-0.parquet'}' (format parquet)")
            rows = conn.execute(f"select count(*) from {RAW_SCHEMA}.{table}").fetchall()[0][0]
            exported.append(ExportedTable(table, folder, rows))
    log.info("Exported %d raw tables (%d rows) to %s", len(exported), sum(t.rows for t in exported), export_dir)
    return exported


def register_raw_tables(spark: SparkSession, exported: list[ExportedTable]) -> None:
    """(Re)create `raw.<table>` in Spark's catalog over each exported folder, and check that Spark
    reads as many rows as DuckDB wrote."""
    spark.sql(f"create database if not exists {RAW_SCHEMA}")
    for table in exported:
        qualified = f"{RAW_SCHEMA}.{table.name}"
        spark.sql(f"drop table if exists {qualified}")
        spark.sql(f"create table {qualified} using parquet location '{table.folder.resolve().as_uri()}'")
        rows = spark.table(qualified).count()
        if rows != table.rows:
            raise RuntimeError(f"Spark reads {rows} rows from {qualified} ({table.folder}); DuckDB wrote {table.rows}")
    log.info("Registered %s in Spark database %s", ", ".join(t.name for t in exported), RAW_SCHEMA)


def raw_to_spark(spark: SparkSession, warehouse_path: Path, export_dir: Path) -> list[ExportedTable]:
    """The DuckDB warehouse's raw layer as the Spark database `raw`."""
    exported = export_raw_tables(warehouse_path, export_dir)
    register_raw_tables(spark, exported)
    return exported
