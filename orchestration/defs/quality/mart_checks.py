"""The published marts' expectation suites (expectations/marts_<model>.json) as Dagster asset checks.

One check, `mart_expectations`, per mart the dashboards and exports read. It
is blocking when the suite has a `block` expectation (all of them today):
while it fails, nothing downstream of the mart (dashboards, exports) runs, so
the last good publication stays in place, and the check's metadata says
which expectation failed, on how many rows, with examples.

What is validated, so that a run never re-reads more than it must:
- the month x segment KPI marts: every month, in chunks of whole months of at
  most MART_CHUNK_ROWS rows (a 100k-customer, 36-month world is ~1,500 rows
  per mart: one chunk); table-level expectations (at least one row, latest
  month = the data's as-of month) run on the latest chunk only;
- customer_risk: its one month (the as-of month), ~one row per active customer;
- billing_anomalies: only the as-of month, the period the anomaly gate and the
  dashboard's latest view are about; earlier months were validated when they
  were the latest, and the table grows with history.

The mart is read through a read-only connection; every expectation's result
is then appended to quality.check_runs (layer `mart`, target = table and months).
"""

import dagster as dg

from orchestration.defs.resources import WAREHOUSE_POOL, WarehouseResource
from orchestration.lib.check_runs import EXAMPLES_KEPT, CheckRun, record_check_runs
from orchestration.lib.expectations import MartValidation, mart_models, mart_suite, validate_mart

# The marts the dashboards and retention exports read: each has a suite
# (expectations/generate_suites.py lists them).
PUBLISHED_MARTS = mart_models()
CHECK_NAME = "mart_expectations"


def mart_key(model: str) -> dg.AssetKey:
    """marts.<model> -> marts/<model>, the key dagster-dbt gives the model."""
    return dg.AssetKey(["marts", model])


def _failure(run: CheckRun) -> dict:
    return {
        "expectation": run.check_name,
        "severity": run.severity,
        "failing_rows": run.failing_rows,
        "rows_checked": run.rows_checked,
        "examples": run.examples[:EXAMPLES_KEPT],
        "message": run.message,
    }


def check_result(validation: MartValidation) -> dg.AssetCheckResult:
    """ERROR when a block expectation failed (blocks publication), WARN when only warn ones did."""
    failed = validation.failed
    blocking = [run for run in failed if run.blocks]
    months = [f"{first:%Y-%m}..{last:%Y-%m}" for first, last, _rows in validation.months if first is not None]
    if failed:
        description = f"{len(failed)} of {len(validation.runs)} expectations failed: " + "; ".join(
            f"{run.check_name} ({run.failing_rows if run.failing_rows is not None else 'table'})" for run in failed
        )
    else:
        description = f"all {len(validation.runs)} expectations passed on {validation.rows_checked:,} rows"
    return dg.AssetCheckResult(
        passed=not failed,
        severity=dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN,
        description=description,
        metadata={
            "failed_expectations": dg.MetadataValue.json([_failure(run) for run in failed]),
            "expectations": len(validation.runs),
            "rows_checked": validation.rows_checked,
            "chunks": dg.MetadataValue.json(months),
            "as_of_month": str(validation.as_of_month),
            "seconds": round(validation.seconds, 3),
            "suite": f"expectations/marts_{validation.model}.json",
        },
    )


def build_mart_check(model: str) -> dg.AssetChecksDefinition:
    suite = mart_suite(model)

    @dg.asset_check(
        asset=mart_key(model),
        name=CHECK_NAME,
        blocking=suite.has_block,
        pool=WAREHOUSE_POOL,
        description=(
            f"Great Expectations suite expectations/marts_{model}.json on {suite.meta['table']} "
            f"({len(suite.expectations)} expectations: grain, required columns, ranges, freshness). "
            "Recorded in quality.check_runs (layer mart)."
        ),
    )
    def mart_expectations(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource):
        with warehouse.connect(read_only=True) as conn:
            validation = validate_mart(conn, model)
        with warehouse.connect() as conn:
            record_check_runs(conn, context.run.run_id, validation.runs)
        for run in validation.failed:
            (context.log.error if run.blocks else context.log.warning)(f"{suite.meta['table']}: {run.message}")
        return check_result(validation)

    return mart_expectations


mart_checks = [build_mart_check(model) for model in PUBLISHED_MARTS]
