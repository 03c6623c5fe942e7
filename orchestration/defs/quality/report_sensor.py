"""The data-quality report after every pipeline run, passed or failed, under Dagster.

A report asset downstream of the checks would be skipped exactly when it
matters (a blocking check failed), and one upstream would run before the
checks. So a run-status sensor, on success and on failure of any run of this
code location, launches the small `quality_report` job; its one op renders
`<output>/reports/data_quality.html` from quality.check_runs.

The op runs in the warehouse pool like every other step that opens the file,
so the report never collides with a writer for DuckDB's lock; the sensor
itself never opens the warehouse. `billing-analytics run` executes in-process
without the daemon, so the CLI writes the report itself after the run.
"""

from pathlib import Path

import dagster as dg

from orchestration.defs.resources import WAREHOUSE_POOL, WarehouseResource
from orchestration.lib.quality_report import write_quality_report_for_warehouse

QUALITY_REPORT_JOB = "quality_report"


@dg.op(
    pool=WAREHOUSE_POOL,
    description="Renders <output>/reports/data_quality.html (and .md) from quality.check_runs, read-only.",
)
def write_quality_report_op(context: dg.OpExecutionContext, warehouse: WarehouseResource) -> None:
    path, report = write_quality_report_for_warehouse(Path(warehouse.warehouse_path), Path(warehouse.output_dir))
    context.log.info(f"Data-quality report written to {path}")
    if report.blocking_failures:
        context.log.warning(
            "Latest run had blocking check failures: "
            + "; ".join(f"{f.asset}: {f.check_name}" for f in report.blocking_failures)
        )


@dg.job(
    name=QUALITY_REPORT_JOB,
    description="Writes the data-quality report; started by the quality-report sensors after every pipeline run.",
)
def quality_report_job():
    write_quality_report_op()


def _report_request(context: dg.RunStatusSensorContext) -> dg.RunRequest | dg.SkipReason:
    monitored = context.dagster_run
    if monitored.job_name == QUALITY_REPORT_JOB:
        return dg.SkipReason("A quality-report run does not trigger another one.")
    return dg.RunRequest(
        run_key=f"quality_report_after_{monitored.run_id}",
        tags={"quality_report_for_run": monitored.run_id, "quality_report_for_job": monitored.job_name},
    )


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    request_job=quality_report_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="After a run succeeds, write the data-quality report.",
)
def quality_report_after_success(context: dg.RunStatusSensorContext):
    return _report_request(context)


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.FAILURE,
    request_job=quality_report_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="After a run fails (e.g. a blocking check stopped publication), write the data-quality report.",
)
def quality_report_after_failure(context: dg.RunStatusSensorContext):
    return _report_request(context)


quality_report_sensors = [quality_report_after_success, quality_report_after_failure]
