"""The sBG retention fit on Spark: the Python step between the two dbt builds, as the Dagster asset
`sbg_fit` (orchestration/defs/value/assets.py) is on DuckDB.

Same functions, same inputs: Spark's intermediate.int_sbg_survival in, marts.sbg_parameters and
marts.sbg_residual_lifetimes out (the dbt source `value`, read by kpi_clv and customer_risk). Only
the reading and writing differ: Arrow from and to Spark instead of a DuckDB connection.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import polars as pl

from orchestration.defs.value.assets import (
    RESIDUAL_TABLE,
    RESIDUAL_TABLE_COLUMNS,
    SURVIVAL_COLUMNS,
    TABLE,
    TABLE_COLUMNS,
    fit_with_policy,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

SURVIVAL_TABLE = "intermediate.int_sbg_survival"
# The DuckDB column types of the value tables, as Spark types.
SPARK_TYPES = {"varchar": "string", "double": "double", "integer": "int", "timestamp": "timestamp"}


def spark_schema(columns: dict[str, str]) -> str:
    """A Spark DDL schema ('a string, b double') from the value tables' DuckDB column types
    ('varchar not null'): Spark tables written from Python carry no not-null constraint."""
    fields = []
    for name, duckdb_type in columns.items():
        base_type = duckdb_type.removesuffix(" not null")
        if base_type not in SPARK_TYPES:
            raise ValueError(f"No Spark type for column {name} ({duckdb_type}): add it to SPARK_TYPES")
        fields.append(f"{name} {SPARK_TYPES[base_type]}")
    return ", ".join(fields)


def _write_table(spark: SparkSession, table: str, columns: dict[str, str], frame: pl.DataFrame) -> None:
    schema = spark_schema(columns)
    rows = frame.select(list(columns)).rows()
    spark.createDataFrame(rows, schema=schema).write.mode("overwrite").format("parquet").saveAsTable(table)


def fit_sbg_on_spark(spark: SparkSession, fitted_at: dt.datetime | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Fit the sBG per segment and billing period on Spark's survival table and write both value
    tables; returns (parameters, residual lifetimes) as written."""
    fitted_at = fitted_at or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    # SURVIVAL_COLUMNS names billing_period twice (a fit key and a segment dimension).
    columns = ", ".join(dict.fromkeys(SURVIVAL_COLUMNS))
    lives = pl.from_arrow(spark.sql(f"select {columns} from {SURVIVAL_TABLE}").toArrow())
    parameters, residuals = fit_with_policy(lives, fitted_at)
    spark.sql("create database if not exists marts")
    _write_table(spark, TABLE, TABLE_COLUMNS, parameters)
    _write_table(spark, RESIDUAL_TABLE, RESIDUAL_TABLE_COLUMNS, residuals)
    return parameters, residuals
