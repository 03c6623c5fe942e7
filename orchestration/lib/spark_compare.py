"""Table-by-table comparison of the warehouse dbt built on DuckDB with the one it built on Spark.

Both sides are read into polars through Arrow and brought to one shape before comparing:
timestamps as naive UTC (DuckDB's are naive UTC by the contract; Spark's arrive as UTC instants),
decimals as exact Python Decimals compared by value (the two engines give sums and products
different precisions and scales: DuckDB sum(decimal(18,4)) is decimal(38,4), Spark's
decimal(28,4); 1.50 and 1.5000 are the same amount), doubles within DOUBLE_RELATIVE_TOLERANCE.

Rows are sorted by every column that is not a double, then by the doubles, so both sides line up
row for row without knowing each table's grain: the grain is among those columns, and a double
never decides the order of two rows that dbt's unique-key tests keep apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    import duckdb
    from pyspark.sql import SparkSession

# Doubles: both engines evaluate the same IEEE-754 operations, but not always in the same order
# (Spark sums each shuffle partition first, then the partials; DuckDB sums in its own chunks) and
# exp/ln/pow come from different libraries (Java's StrictMath vs the C library). Each reordering
# or library call moves a value by a few units in the last place (~1e-16 relative); the deepest
# chain here (sBG likelihoods, discounted sums over 36+ periods, risk scores) is a few hundred
# operations, so 1e-9 relative is far above what reordering can do and far below any business
# difference (a cent on a billion, a 1e-9 change in a rate).
DOUBLE_RELATIVE_TOLERANCE = 1e-9
# Doubles that should be 0 may come out as +-1e-17 after reordered sums of opposite signs.
DOUBLE_ABSOLUTE_TOLERANCE = 1e-12


@dataclass
class TableComparison:
    """One table on both engines: rows per side and every difference found (empty when equal)."""

    table: str
    duckdb_rows: int = 0
    spark_rows: int = 0
    differences: list[str] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return not self.differences


def _normalised(frame: pl.DataFrame) -> pl.DataFrame:
    """Timestamps naive UTC; decimals and integers as the text of their exact value, trailing
    zeros dropped (DuckDB's sum of integers is a 128-bit hugeint, read as decimal(38,0); Spark's
    is a bigint)."""
    columns = []
    for name, dtype in frame.schema.items():
        column = pl.col(name)
        if isinstance(dtype, pl.Datetime):
            if dtype.time_zone is not None:
                column = column.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
            column = column.dt.cast_time_unit("us")
        elif isinstance(dtype, pl.Decimal) or dtype.is_integer():
            column = column.map_elements(_exact_text, return_dtype=pl.String)
        elif dtype in (pl.Float32, pl.Float64):
            column = column.cast(pl.Float64)
        columns.append(column.alias(name))
    return frame.select(columns)


def _exact_text(value: Decimal | int | None) -> str | None:
    if value is None:
        return None
    text = format(Decimal(value).normalize(), "f")
    return "0" if text in ("-0", "0") else text


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    doubles = [name for name, dtype in frame.schema.items() if dtype == pl.Float64]
    keys = [name for name in frame.columns if name not in doubles] + doubles
    return frame.sort(keys, nulls_last=True)


def _doubles_close(left: float | None, right: float | None) -> bool:
    if left is None or right is None:
        return left is None and right is None
    if math.isnan(left) or math.isnan(right):
        return math.isnan(left) and math.isnan(right)
    return math.isclose(left, right, rel_tol=DOUBLE_RELATIVE_TOLERANCE, abs_tol=DOUBLE_ABSOLUTE_TOLERANCE)


def compare_frames(table: str, duckdb_frame: pl.DataFrame, spark_frame: pl.DataFrame) -> TableComparison:
    """Same columns in the same order, same row count, and the same rows once both are sorted."""
    result = TableComparison(table, duckdb_frame.height, spark_frame.height)
    if duckdb_frame.columns != spark_frame.columns:
        result.differences.append(f"columns differ: DuckDB {duckdb_frame.columns}, Spark {spark_frame.columns}")
        return result
    if duckdb_frame.height != spark_frame.height:
        result.differences.append(f"{duckdb_frame.height} rows on DuckDB, {spark_frame.height} on Spark")
        return result
    left, right = _normalised(duckdb_frame), _normalised(spark_frame)
    for name in left.columns:
        if left.schema[name] != right.schema[name]:
            result.differences.append(f"column {name}: {left.schema[name]} on DuckDB, {right.schema[name]} on Spark")
    if result.differences:
        return result
    left, right = _sorted(left), _sorted(right)
    for name, dtype in left.schema.items():
        if dtype == pl.Float64:
            unequal = [
                index
                for index, (a, b) in enumerate(zip(left[name].to_list(), right[name].to_list(), strict=True))
                if not _doubles_close(a, b)
            ]
        else:
            same = left[name].eq_missing(right[name])
            unequal = [index for index, is_same in enumerate(same.to_list()) if not is_same]
        if unequal:
            first = unequal[0]
            result.differences.append(
                f"column {name}: {len(unequal)} of {left.height} rows differ, first at sorted row {first}: "
                f"DuckDB {left.row(first, named=True)} vs Spark {right.row(first, named=True)}"
            )
    return result


def compare_table(conn: duckdb.DuckDBPyConnection, spark: SparkSession, table: str) -> TableComparison:
    """`schema.table` read from the DuckDB connection and from Spark's catalog, compared."""
    duckdb_frame = conn.sql(f"select * from {table}").pl()
    spark_frame = pl.from_arrow(spark.table(table).toArrow())
    return compare_frames(table, duckdb_frame, spark_frame)
