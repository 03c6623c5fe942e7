"""When the pipeline runs: a daily schedule, and a sensor on new landing files."""

import hashlib
from pathlib import Path

import dagster as dg

from orchestration.lib.contract import SOURCE_NAMES
from orchestration.lib.loader import discover_batch_files
from orchestration.lib.settings import Settings

billing_pipeline_job = dg.define_asset_job(
    "billing_pipeline",
    selection=dg.AssetSelection.all(),
    description="Ingest new landing files, then build and test every dbt model.",
)

daily_schedule = dg.ScheduleDefinition(
    name="daily_billing_pipeline",
    job=billing_pipeline_job,
    cron_schedule="0 6 * * *",
    execution_timezone="UTC",
    description="Every day at 06:00 UTC, after the nightly exports have landed.",
)


def landing_fingerprint(landing_dir: Path) -> tuple[str, int]:
    """A digest of the batch files' names, sizes and mtimes: cheap, and it
    never opens the warehouse (which a running pipeline may hold)."""
    digest = hashlib.sha256()
    count = 0
    for source in SOURCE_NAMES:
        for path in discover_batch_files(landing_dir, source, log=lambda _message: None):
            try:
                stat = path.stat()
            except FileNotFoundError:  # removed since listing; the next tick sees it gone
                continue
            digest.update(f"{path.relative_to(landing_dir)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
            count += 1
    return digest.hexdigest()[:16], count


@dg.sensor(
    job=billing_pipeline_job,
    minimum_interval_seconds=60,
    description="Starts the pipeline when batch files appear or change in the landing folder.",
)
def new_landing_files_sensor(context: dg.SensorEvaluationContext):
    landing_dir = Settings.from_env().landing_dir
    fingerprint, count = landing_fingerprint(landing_dir)
    if count == 0:
        return dg.SkipReason(f"No batch files in {landing_dir}.")
    if fingerprint == context.cursor:
        return dg.SkipReason(f"No new files among {count} in {landing_dir}.")
    context.update_cursor(fingerprint)
    return dg.RunRequest(run_key=fingerprint, tags={"trigger": "new_landing_files", "files": str(count)})
