"""The dbt project as Dagster assets (dagster-dbt).

dbt sources on `raw` map to the ingestion assets' keys, models are grouped by
their layer folder, and dbt tests surface as asset checks.
"""

import json
import os
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from orchestration.defs.resources import WAREHOUSE_POOL, WarehouseResource
from orchestration.lib.policy import load_policy
from orchestration.lib.settings import DBT_PROJECT_DIR

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
# Under `dagster dev` this runs `dbt parse` (with the dbt on PATH: `make ui` puts
# .venv/bin first); elsewhere the Makefile, CI and the test session parse.
dbt_project.prepare_if_dev()

LAYER_GROUPS = {"staging": "staging", "intermediate": "intermediate", "marts": "marts"}


class BillingDbtTranslator(DagsterDbtTranslator):
    """Groups dbt nodes by their layer folder (seeds sit with staging)."""

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "seed":
            return "staging"
        fqn = dbt_resource_props.get("fqn", [])
        for part in fqn[1:-1]:
            if part in LAYER_GROUPS:
                return LAYER_GROUPS[part]
        return super().get_group_name(dbt_resource_props)

    def get_owners(self, dbt_resource_props: Mapping[str, Any]):
        return ["team:analytics-engineering"]


def dbt_policy_vars() -> dict[str, Any]:
    """The billing policy handed to dbt, so models read the same file as the generator."""
    policy = load_policy()
    return {
        "reporting_currency": policy["reporting"]["currency"],
        "gross_margin": policy["reporting"]["gross_margin"],
        "annual_discount_rate": policy["reporting"]["annual_discount_rate"],
        "loyalty_discount_rate": policy["loyalty_discount"]["rate"],
        "loyalty_after_months": policy["loyalty_discount"]["after_months"],
        "payment_terms_days": policy["payment_terms_days"],
        "lapse_days_after_due": policy["dunning"]["lapse_days_after_due"],
    }


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=BillingDbtTranslator(),
    pool=WAREHOUSE_POOL,
)
def billing_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
    """Builds (runs and tests) the dbt models: staging, intermediate and marts."""
    # The dbt profile reads the warehouse path from the same variable as settings.py.
    os.environ["BILLING_WAREHOUSE_PATH"] = warehouse.warehouse_path
    yield from dbt.cli(["build", "--vars", json.dumps(dbt_policy_vars())], context=context).stream()
