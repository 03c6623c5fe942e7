"""The demo world's warehouse built on Apache Spark equals the one built on DuckDB, table by table.

`make test-spark` runs this in its own environment (.venv-spark: dbt-spark[session], pyspark);
`make test` deselects it (marker `spark`). The world is the one `make demo` builds (the CLI's
defaults: 2,000 customers x 24 months, seed 7): the DuckDB pipeline runs on it as
`billing-analytics run` does, then the same dbt project is built on Spark from the same raw
rows (orchestration/lib/spark_build.py), and every table dbt builds, with the two tables the
Python sBG fit writes, is compared row for row (orchestration/lib/spark_compare.py: exact for
text, dates, integers and decimals; doubles within 1e-9 relative, why in that module).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from orchestration.cli import main as cli_main
from orchestration.lib.settings import Settings
from orchestration.lib.warehouse import open_warehouse
from tests.integration.conftest import run_pipeline
from tests.spark.conftest import SPARK_STEP_SECONDS

pytestmark = pytest.mark.spark

# Every mart (docs: /work/shared/spec/metrics.md and the marts' yml): the KPI marts, the core
# facts and dimension, billing_anomalies, customer_risk and the sBG tables.
MART_TABLES = (
    "billing_anomalies",
    "customer_risk",
    "dim_customers",
    "fct_credit_notes",
    "fct_invoice_lines",
    "fct_invoices",
    "fct_payments",
    "kpi_churn",
    "kpi_clv",
    "kpi_collections",
    "kpi_customer_voice",
    "kpi_dso",
    "kpi_invoice_error_rate",
    "sbg_parameters",
    "sbg_parameters_checked",
    "sbg_residual_lifetimes",
)
# Built on both engines before the marts: compared too, so a divergence is found where it starts.
UPSTREAM_SCHEMAS = ("staging", "intermediate")


@pytest.fixture(scope="module")
def engines(tmp_path_factory, pytestconfig):
    """The demo world run on DuckDB, then built on Spark from the same raw rows (the time of each
    Spark step goes to the terminal summary, tests/spark/conftest.py)."""
    from orchestration.lib.spark_build import build_on_spark

    root = tmp_path_factory.mktemp("spark_world")
    settings = Settings(root / "landing", root / "warehouse.duckdb", root / "output")
    assert cli_main(["generate", "--out", str(settings.landing_dir)]) == 0
    assert run_pipeline(settings), "the DuckDB pipeline failed on the demo world"
    with open_warehouse(settings.warehouse_path, read_only=True) as conn:
        fitted_at: dt.datetime = conn.sql("select max(fitted_at) from marts.sbg_parameters").fetchall()[0][0]
    build = build_on_spark(settings.warehouse_path, root / "spark", fitted_at=fitted_at)
    pytestconfig.stash[SPARK_STEP_SECONDS] = build.seconds

    from pyspark.sql import SparkSession

    return {"settings": settings, "build": build, "spark": SparkSession.getActiveSession(), "root": root}


def _compare(engines, table: str):
    from orchestration.lib.spark_compare import compare_table

    with open_warehouse(engines["settings"].warehouse_path, read_only=True) as conn:
        return compare_table(conn, engines["spark"], table)


def test_the_dbt_build_on_spark_has_no_failing_model_or_test(engines):
    build = engines["build"]
    assert build.failures == {}
    # 38 models + 1 seed + the data tests: far more than a build that silently selected nothing
    assert build.nodes > 250


def test_every_mart_of_the_duckdb_warehouse_is_compared(engines):
    with open_warehouse(engines["settings"].warehouse_path, read_only=True) as conn:
        marts = {
            row[0]
            for row in conn.sql(
                "select table_name from information_schema.tables where table_schema = 'marts'"
            ).fetchall()
        }
    assert marts == set(MART_TABLES)


@pytest.mark.parametrize("table", MART_TABLES)
def test_the_mart_on_spark_equals_the_mart_on_duckdb(engines, table):
    comparison = _compare(engines, f"marts.{table}")
    assert comparison.duckdb_rows > 0, f"marts.{table} is empty on DuckDB: the comparison would prove nothing"
    assert comparison.differences == []


def test_every_staging_and_intermediate_table_on_spark_equals_duckdb(engines):
    with open_warehouse(engines["settings"].warehouse_path, read_only=True) as conn:
        tables = [
            f"{schema}.{name}"
            for schema, name in conn.sql(
                "select table_schema, table_name from information_schema.tables "
                f"where table_schema in {UPSTREAM_SCHEMAS} order by 1, 2"
            ).fetchall()
        ]
    assert len(tables) > 20
    differing = {
        table: comparison.differences for table in tables if not (comparison := _compare(engines, table)).equal
    }
    assert differing == {}


def test_an_incremental_run_on_parquet_stops_with_a_clear_error(engines):
    """Plain Parquet cannot replace rows by key: a build without --full-refresh on existing tables
    must fail at compile time, naming the ways out, and leave the table as it was."""
    from orchestration.lib.spark_build import dbt_on_spark

    spark = engines["spark"]
    rows_before = spark.table("staging.stg_billing__customers").count()
    outcome = dbt_on_spark(
        ["run", "--target", "spark", "--select", "stg_billing__customers"], Path(engines["root"]) / "incremental_target"
    )
    assert not outcome.success
    [node_result] = outcome.result
    assert node_result.status == "error"
    assert "plain Parquet tables cannot replace rows by key" in node_result.message
    assert "--full-refresh" in node_result.message
    assert "Delta or Iceberg" in node_result.message
    assert spark.table("staging.stg_billing__customers").count() == rows_before
