"""Build the dbt project on Apache Spark from an ingested DuckDB warehouse.

    python scripts/spark_build.py --warehouse data/warehouse.duckdb --spark-warehouse /tmp/spark-wh

needs the Spark environment (`make test-spark` creates it: dbt-spark[session] and pyspark)
and a warehouse that `billing-analytics run` has ingested. In one process and one Spark session
(the `spark` target of dbt_project/profiles.yml), as the Dagster run does on DuckDB:

1. raw: the warehouse's raw tables as Parquet, registered as Spark's database `raw`
   (orchestration/lib/spark_raw.py);
2. `dbt build --target spark` of everything but the models downstream of the Python sBG fit;
3. the sBG fit on Spark's int_sbg_survival (orchestration/lib/spark_value.py);
4. `dbt build --target spark --select source:value+` (kpi_clv, customer_risk, their tests).

dbt's unit tests are left out on Spark (`--exclude-resource-type unit_test`): they pin business
rules on hand-made rows and run with the DuckDB build; on Spark they would test dbt-spark's
fixture handling rather than the models. Prints the time of each step and exits 1 when any dbt
node fails.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from orchestration.lib.settings import DBT_PROJECT_DIR
from orchestration.lib.spark_raw import raw_to_spark
from orchestration.lib.spark_session import start_spark
from orchestration.lib.spark_value import fit_sbg_on_spark

# Models downstream of the tables the Python fit writes (as AFTER_PYTHON_SELECTION on DuckDB).
AFTER_PYTHON_SELECTION = "source:value+"
EXCLUDED_ON_SPARK = ["--exclude-resource-type", "unit_test"]

log = logging.getLogger("spark_build")


@dataclass
class SparkBuildResult:
    """Seconds per step, and the dbt nodes that did not succeed (unique_id -> message)."""

    seconds: dict[str, float] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    nodes: int = 0

    @property
    def ok(self) -> bool:
        return not self.failures


def _dbt_build(arguments: list[str], target_path: Path, dbt_vars: dict, result: SparkBuildResult) -> None:
    """`dbt build --target spark` in this process (dbt-spark's session method reuses our session)."""
    from dbt.cli.main import dbtRunner

    command = [
        "build",
        "--target",
        "spark",
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--target-path",
        str(target_path),
        "--log-path",
        str(target_path / "logs"),
        "--vars",
        json.dumps(dbt_vars),
        *EXCLUDED_ON_SPARK,
        *arguments,
    ]
    outcome = dbtRunner().invoke(command)
    if outcome.result is None:
        raise RuntimeError(f"dbt {' '.join(command[:3])} did not run: {outcome.exception}")
    for node_result in outcome.result:
        result.nodes += 1
        if node_result.status not in ("success", "pass"):
            result.failures[node_result.node.unique_id] = f"{node_result.status}: {node_result.message}"


def build_on_spark(warehouse_path: Path, spark_warehouse_dir: Path) -> SparkBuildResult:
    """Steps 1-4 of the module docstring; the Spark tables land under spark_warehouse_dir."""
    # The policy vars come from the module Dagster builds with (it reads the dbt manifest at import).
    from orchestration.defs.transform.dbt_assets import dbt_policy_vars

    result = SparkBuildResult()
    dbt_vars = dbt_policy_vars()
    target_path = spark_warehouse_dir / "dbt_target"

    started = time.perf_counter()
    spark = start_spark(spark_warehouse_dir)
    result.seconds["spark start"] = time.perf_counter() - started

    def timed(step: str, action) -> None:
        began = time.perf_counter()
        action()
        result.seconds[step] = time.perf_counter() - began
        log.info("%s: %.1f s", step, result.seconds[step])

    timed("raw to spark", lambda: raw_to_spark(spark, warehouse_path, spark_warehouse_dir / "raw_parquet"))
    timed("dbt build", lambda: _dbt_build(["--exclude", AFTER_PYTHON_SELECTION], target_path, dbt_vars, result))
    if "model.billing_analytics.int_sbg_survival" in result.failures:
        return result
    timed("sbg fit", lambda: fit_sbg_on_spark(spark))
    timed(
        "dbt build after the fit",
        lambda: _dbt_build(["--select", AFTER_PYTHON_SELECTION], target_path, dbt_vars, result),
    )
    result.seconds["total"] = time.perf_counter() - started
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warehouse", type=Path, required=True, help="DuckDB warehouse with the ingested raw layer")
    parser.add_argument("--spark-warehouse", type=Path, required=True, help="folder for Spark's tables and metastore")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    result = build_on_spark(args.warehouse.resolve(), args.spark_warehouse.resolve())
    for step, seconds in result.seconds.items():
        print(f"{step:>26}: {seconds:7.1f} s")
    print(f"{result.nodes} dbt nodes, {len(result.failures)} not successful")
    for node, message in result.failures.items():
        print(f"  {node}: {message.splitlines()[0] if message else ''}")
    sys.exit(0 if result.ok else 1)


if __name__ == "__main__":
    main()
