"""Build the dbt project on Apache Spark from an ingested DuckDB warehouse (docs/scaling.md).

In one process and one Spark session (the `spark` target of dbt_project/profiles.yml), in the
order the Dagster run follows on DuckDB:

1. raw: the warehouse's raw tables as Parquet, registered as Spark's database `raw`
   (orchestration/lib/spark_raw.py);
2. `dbt build --target spark` of everything but the models downstream of the Python sBG fit;
3. the sBG fit on Spark's int_sbg_survival (orchestration/lib/spark_value.py);
4. `dbt build --target spark --select source:value+` (kpi_clv, customer_risk, their tests).

Every build is a full build (`--full-refresh`): the tables are plain Parquet, which cannot take
the incremental models' merge (macros/incremental.sql). dbt's unit tests are left out on Spark
(`--exclude-resource-type unit_test`): they pin business rules on hand-made rows and run with the
DuckDB build; on Spark they would test dbt-spark's fixture handling rather than the models.

Needs the Spark environment (`make test-spark` creates .venv-spark: dbt-spark[session], pyspark).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from orchestration.lib.settings import DBT_PROJECT_DIR
from orchestration.lib.spark_raw import raw_to_spark
from orchestration.lib.spark_session import start_spark
from orchestration.lib.spark_value import fit_sbg_on_spark

# The models downstream of the tables the Python fit writes (as on DuckDB, dbt_assets.py).
AFTER_PYTHON_SELECTION = "source:value+"
SURVIVAL_MODEL = "model.billing_analytics.int_sbg_survival"
SPARK_BUILD_FLAGS = ["--target", "spark", "--full-refresh", "--exclude-resource-type", "unit_test"]

log = logging.getLogger(__name__)


@dataclass
class SparkBuildResult:
    """Seconds per step, the dbt nodes run, and those that did not succeed (unique_id -> message)."""

    seconds: dict[str, float] = field(default_factory=dict)
    nodes: int = 0
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures


def dbt_on_spark(arguments: list[str], target_path: Path, dbt_vars: dict | None = None):
    """A dbt command against the `spark` target, in this process: dbt-spark's session method then
    reuses the Spark session this process started. Returns dbt's dbtRunnerResult."""
    from dbt.cli.main import dbtRunner

    from orchestration.defs.transform.dbt_assets import dbt_policy_vars

    command = [
        *arguments,
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--target-path",
        str(target_path),
        "--log-path",
        str(target_path / "logs"),
        "--vars",
        json.dumps(dbt_vars if dbt_vars is not None else dbt_policy_vars()),
    ]
    return dbtRunner().invoke(command)


def _build(selection: list[str], target_path: Path, dbt_vars: dict, result: SparkBuildResult) -> None:
    outcome = dbt_on_spark(["build", *SPARK_BUILD_FLAGS, *selection], target_path, dbt_vars)
    if outcome.result is None:
        raise RuntimeError(f"dbt build {' '.join(selection)} on Spark did not run: {outcome.exception}")
    for node_result in outcome.result:
        result.nodes += 1
        if node_result.status not in ("success", "pass"):
            result.failures[node_result.node.unique_id] = f"{node_result.status}: {node_result.message}"


def build_on_spark(
    warehouse_path: Path, spark_warehouse_dir: Path, fitted_at: dt.datetime | None = None
) -> SparkBuildResult:
    """Steps 1-4 of the module docstring; the Spark tables land under spark_warehouse_dir.

    `fitted_at` stamps the sBG tables (default: now); a comparison with a DuckDB run passes
    that run's, so every column of both warehouses can be compared."""
    from orchestration.defs.transform.dbt_assets import dbt_policy_vars

    result = SparkBuildResult()
    dbt_vars = dbt_policy_vars()
    target_path = spark_warehouse_dir / "dbt_target"

    def timed(step: str, action: Callable[[], object]) -> None:
        began = time.perf_counter()
        action()
        result.seconds[step] = time.perf_counter() - began
        log.info("%s: %.1f s", step, result.seconds[step])

    started = time.perf_counter()
    holder = {}
    timed("spark start", lambda: holder.setdefault("spark", start_spark(spark_warehouse_dir)))
    spark = holder["spark"]
    timed("raw to spark", lambda: raw_to_spark(spark, warehouse_path, spark_warehouse_dir / "raw_parquet"))
    timed("dbt build", lambda: _build(["--exclude", AFTER_PYTHON_SELECTION], target_path, dbt_vars, result))
    if SURVIVAL_MODEL in result.failures:
        result.failures["sbg fit"] = f"not run: {SURVIVAL_MODEL} failed"
        return result
    timed("sbg fit", lambda: fit_sbg_on_spark(spark, fitted_at))
    timed(
        "dbt build after the fit",
        lambda: _build(["--select", AFTER_PYTHON_SELECTION], target_path, dbt_vars, result),
    )
    result.seconds["total"] = time.perf_counter() - started
    return result
