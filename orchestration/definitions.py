"""The Dagster code location: one Definitions object; nothing runs at import."""

from __future__ import annotations

import dagster as dg
from dagster_dbt import DbtCliResource

from orchestration.defs.ingest.assets import ingest_assets
from orchestration.defs.publish import publish_assets
from orchestration.defs.quality.anomaly_gate import billing_anomaly_gate
from orchestration.defs.quality.mart_checks import mart_checks
from orchestration.defs.quality.report_sensor import quality_report_sensors
from orchestration.defs.resources import WarehouseResource
from orchestration.defs.transform.automation import (
    billing_pipeline_job,
    daily_schedule,
    new_landing_files_sensor,
)
from orchestration.defs.transform.dbt_assets import billing_dbt_models, billing_dbt_models_after_python, dbt_project
from orchestration.defs.value.assets import sbg_parameters
from orchestration.lib.personal_data import install_log_redaction
from orchestration.lib.settings import DBT_EXECUTABLE, Settings

# Every log record of the code location (ours, Dagster's, dbt's relayed events)
# with emails redacted: a log is read and kept more widely than the warehouse.
install_log_redaction()


def build_definitions(settings: Settings) -> dg.Definitions:
    return dg.Definitions(
        assets=[*ingest_assets, billing_dbt_models, sbg_parameters, billing_dbt_models_after_python, *publish_assets],
        asset_checks=[*mart_checks, billing_anomaly_gate],
        jobs=[billing_pipeline_job],
        schedules=[daily_schedule],
        sensors=[new_landing_files_sensor, *quality_report_sensors],
        resources={
            "warehouse": WarehouseResource.from_settings(settings),
            "dbt": DbtCliResource(
                project_dir=dbt_project,
                profiles_dir=str(dbt_project.profiles_dir),
                dbt_executable=str(DBT_EXECUTABLE),
            ),
        },
    )


defs = build_definitions(Settings.from_env())
