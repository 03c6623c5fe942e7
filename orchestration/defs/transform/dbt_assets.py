"""The dbt project as Dagster assets (dagster-dbt).

dbt sources on `raw` map to the ingestion assets' keys, models are grouped by
their layer folder, and dbt tests surface as asset checks.

Two dbt ops, split by graph: models that read a table written by a Python
asset (dbt source `value`, e.g. marts.sbg_parameters from
orchestration/defs/value) and everything downstream of them build in
`billing_dbt_models_after_python`; all other nodes in `billing_dbt_models`.
One op would sit both upstream (int_sbg_survival) and downstream (kpi_clv) of
the Python asset. Dagster 1.13 can run that by splitting a subsettable
multi-asset per run (asset_job._attempt_resolve_node_cycles), but the split
also puts the seed in an op of its own, names the ops by position
(billing_dbt_models_2, _3) and passes every model on the command line;
two named selections are explicit and cheaper. A selection by graph, not by
tag, cannot miss a new model.

Each op plans its build from meta.dbt_builds (orchestration/lib/build_state.py):
a full refresh when nothing is recorded or the project or policy changed, an
incremental build (BILLING_RAW_BATCH_WATERMARK, dbt_project/macros/incremental.sql)
when new batches were loaded, and for the first op no build at all when
nothing changed: it then yields no output, so Dagster skips everything
downstream of the marts (the sBG fit, the second op, the mart checks, the
dashboard). Unit tests run in the test suite (tests/integration/test_dbt_unit_tests.py),
not in production builds: they test the SQL, which a run does not change.
"""

import functools
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliInvocation, DbtCliResource, DbtProject, dbt_assets

from orchestration.defs.publish import last_publication_at
from orchestration.defs.resources import WAREHOUSE_POOL, WarehouseResource
from orchestration.lib.build_state import (
    FULL,
    INCREMENTAL,
    SKIP,
    BuildPlan,
    code_fingerprint,
    last_build,
    loaded_batches,
    missing_tables,
    plan_build,
    record_build,
)
from orchestration.lib.check_runs import CHECK_RUNS_TABLE, record_check_runs
from orchestration.lib.contract import SOURCE_NAMES
from orchestration.lib.dbt_results import dbt_test_check_runs
from orchestration.lib.failpoints import failpoint
from orchestration.lib.policy import load_policy
from orchestration.lib.settings import DBT_PROJECT_DIR
from orchestration.lib.warehouse import open_warehouse

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
# Under `dagster dev` this runs `dbt parse` (with the dbt on PATH: `make ui` puts
# .venv/bin first); elsewhere the Makefile, CI and the test session parse.
dbt_project.prepare_if_dev()

# The most specific folder wins: marts/quality/* (the billing-anomaly mart) is "quality".
LAYER_GROUPS = {"staging": "staging", "intermediate": "intermediate", "marts": "marts", "quality": "quality"}


class BillingDbtTranslator(DagsterDbtTranslator):
    """Groups dbt nodes by their layer folder, the innermost one first (seeds sit with staging)."""

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "seed":
            return "staging"
        fqn = dbt_resource_props.get("fqn", [])
        for part in reversed(fqn[1:-1]):
            if part in LAYER_GROUPS:
                return LAYER_GROUPS[part]
        return super().get_group_name(dbt_resource_props)

    def get_owners(self, dbt_resource_props: Mapping[str, Any]):
        return ["team:analytics-engineering"]


def dbt_policy_vars() -> dict[str, Any]:
    """The billing policy handed to dbt, so models read the same file as the generator."""
    policy = load_policy()
    if policy["reporting"]["currency"] != "USD":
        # metrics.md defines every mart in USD; a silent relabel would be wrong money.
        raise ValueError(
            f"reporting.currency is {policy['reporting']['currency']!r} in config/billing_policy.yml; "
            "the marts report USD only (shared/spec/metrics.md): set it to USD"
        )
    return {
        "gross_margin": policy["reporting"]["gross_margin"],
        "annual_discount_rate": policy["reporting"]["annual_discount_rate"],
        "loyalty_discount_rate": policy["loyalty_discount"]["rate"],
        "loyalty_after_months": policy["loyalty_discount"]["after_months"],
        "payment_terms_days": policy["payment_terms_days"],
        "lapse_days_after_due": policy["dunning"]["lapse_days_after_due"],
        # the churn-risk score's weights, saturations, window and thresholds (int_customer_risk_monthly)
        "risk": policy["risk"],
        # marts.billing_anomalies: severity per anomaly type
        "anomaly_severity": policy["anomalies"]["severity"],
    }


# Tables that Python assets write and dbt reads back, and every node downstream of them.
AFTER_PYTHON_SELECTION = "source:value+"
BUILD_OP = "billing_dbt_models"
AFTER_PYTHON_OP = "billing_dbt_models_after_python"
# Unit tests check the SQL on fixed rows; dbt's advice is to run them in development
# and CI only. tests/integration/test_dbt_unit_tests.py runs every one of them.
PRODUCTION_EXCLUDES = ["--exclude-resource-type", "unit_test"]
# Read by dbt_project/macros/incremental.sql.
WATERMARK_VARIABLE = "BILLING_RAW_BATCH_WATERMARK"
PARTIAL_PARSE_FILE = "partial_parse.msgpack"


class _SkippedBuildChecks(logging.Filter):
    """Drops Dagster's warning that a dbt test of the first op "emitted no result": it
    emits none when its build is skipped, and every step downstream is skipped too."""

    def filter(self, record: logging.LogRecord) -> bool:
        return f"emitted no result in step '{BUILD_OP}'" not in record.getMessage()


# The logger of dagster/_core/execution/plan/active.py, which decides what a run skips.
logging.getLogger("dagster._core.execution.plan.active").addFilter(_SkippedBuildChecks())


def plan_dbt_build(warehouse: WarehouseResource, dbt_op: str, dbt_vars: dict[str, Any], may_skip: bool):
    """The build plan of `dbt_op`, the loaded batches it would reflect and the code fingerprint."""
    published_at = last_publication_at(Path(warehouse.output_dir))
    # The whole policy, not only what dbt reads: a changed gate threshold must re-run the gate,
    # which a skipped build would skip too.
    fingerprint = code_fingerprint(DBT_PROJECT_DIR, {"dbt_vars": dbt_vars, "policy": load_policy()})
    current, previous, later, missing = dict.fromkeys(SOURCE_NAMES), None, [], []
    if Path(warehouse.warehouse_path).exists():  # else nothing was ever loaded or built: a full build
        with warehouse.connect() as conn:
            current = loaded_batches(conn, SOURCE_NAMES)
            previous = last_build(conn, dbt_op)
            later = [last_build(conn, AFTER_PYTHON_OP)] if dbt_op == BUILD_OP else []
            missing = missing_tables(conn, incremental_tables())
    plan = plan_build(previous, current, fingerprint, later, may_skip, published_at, missing)
    return plan, current, fingerprint


@functools.cache
def incremental_tables() -> tuple[tuple[str, str], ...]:
    """(schema, table) of every incremental dbt model, from the parsed manifest."""
    manifest = json.loads(Path(dbt_project.manifest_path).read_text())
    return tuple(
        sorted(
            (node["schema"], node["alias"])
            for node in manifest["nodes"].values()
            if node["resource_type"] == "model" and node["config"].get("materialized") == "incremental"
        )
    )


def dbt_build_args(plan: BuildPlan, dbt_vars: dict[str, Any]) -> list[str]:
    """`dbt build` for the plan (--full-refresh for FULL); the watermark goes in the environment."""
    args = ["build", "--vars", json.dumps(dbt_vars), *PRODUCTION_EXCLUDES]
    return [*args, "--full-refresh"] if plan.action == FULL else args


def dbt_build_environment(plan: BuildPlan) -> dict[str, str]:
    """BILLING_RAW_BATCH_WATERMARK: the previous build's watermark when incremental, else empty
    (set either way, so one op's value never leaks into the next op's build)."""
    return {WATERMARK_VARIABLE: str(plan.watermark) if plan.action == INCREMENTAL else ""}


def _share_partial_parse(context: dg.AssetExecutionContext, invocation: DbtCliInvocation) -> None:
    """Keep this invocation's partial-parse file where dagster-dbt looks for one.

    dagster-dbt hands each invocation a copy of target/partial_parse.msgpack, written by
    `dbt parse` without the policy vars and for another warehouse path; dbt then re-parses
    the whole project every build (about 5 s). After a build, the file matches the vars,
    profile and files of the next build (the second op, the next run), so dbt re-parses
    only what changed; dbt itself checks that, and re-parses everything when anything differs."""
    built = invocation.target_path / PARTIAL_PARSE_FILE
    shared = DBT_PROJECT_DIR / "target" / PARTIAL_PARSE_FILE
    if not built.exists() or not shared.parent.is_dir():
        return
    try:  # replaced atomically: another process may be copying it right now
        with tempfile.NamedTemporaryFile(dir=shared.parent, prefix=".partial_parse.", delete=False) as copy:
            copy.write(built.read_bytes())
        os.replace(copy.name, shared)
    except OSError as error:  # only a speed-up: never fail a build over it
        context.log.warning(f"Could not keep dbt's partial-parse file for the next build: {error!r}")


def _dbt_build(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    warehouse: WarehouseResource,
    dbt_op: str,
    may_skip: bool,
):
    """`dbt build` as planned, streamed as Dagster events; its test results are then kept
    in quality.check_runs, whether the build passed or failed. A successful build of the
    op's whole selection is recorded in meta.dbt_builds."""
    # The dbt profile reads the warehouse path from the same variable as settings.py.
    os.environ["BILLING_WAREHOUSE_PATH"] = warehouse.warehouse_path
    dbt_vars = dbt_policy_vars()
    # A subset chosen by hand is built even when nothing changed: someone asked for it.
    plan, batches, fingerprint = plan_dbt_build(warehouse, dbt_op, dbt_vars, may_skip and not context.is_subset)
    if plan.action == SKIP:
        context.log.info(f"dbt build skipped: {plan.reason}.")
        return
    context.log.info(f"dbt build, {plan.action}: {plan.reason}.")
    os.environ.update(dbt_build_environment(plan))
    invocation = dbt.cli(dbt_build_args(plan, dbt_vars), context=context)
    try:
        for event in invocation.stream():
            failpoint("dbt.event")  # test hook (orchestration/lib/failpoints.py): killed mid-build
            yield event
    except BaseException:
        # A failed test makes the stream raise: keep its result, then re-raise the
        # build's own error (a recording problem is only logged here, never raised).
        _record_dbt_tests(context, invocation, warehouse, build_failed=True)
        raise
    finally:
        if invocation.process.poll() is not None:
            _share_partial_parse(context, invocation)
    _record_dbt_tests(context, invocation, warehouse, build_failed=False)
    if context.is_subset:
        context.log.info("A subset of the dbt models was built: the build state is left as it was.")
        return
    with warehouse.connect() as conn:
        record_build(conn, context.run.run_id, dbt_op, plan.action, batches, fingerprint)


def _record_dbt_tests(
    context: dg.AssetExecutionContext,
    invocation: DbtCliInvocation,
    warehouse: WarehouseResource,
    build_failed: bool,
) -> None:
    """Append one quality.check_runs row per dbt test of this invocation.

    After a failed build a recording error is logged, not raised, so the build's
    error stays the one the run reports; after a successful build it is raised,
    because a run whose test results were silently lost would look clean."""
    if invocation.process.poll() is None:
        # Interrupted while dbt still runs (and holds the warehouse): nothing final to record.
        context.log.warning("dbt is still running; its test results are not recorded in quality.check_runs")
        return
    run_results_path = invocation.target_path / "run_results.json"
    try:
        if not run_results_path.exists():
            context.log.warning(
                f"dbt wrote no {run_results_path} (it stopped before running any node); "
                "no dbt test results recorded in quality.check_runs"
            )
            return
        results = dbt_test_check_runs(
            invocation.get_artifact("run_results.json"), invocation.manifest, invocation.dagster_dbt_translator
        )
        with warehouse.connect() as conn:
            record_check_runs(conn, context.run.run_id, results.runs)
        failed = [f"{run.asset}: {run.check_name}" for run in results.runs if not run.passed]
        context.log.info(f"Recorded {len(results.runs)} dbt test results in {CHECK_RUNS_TABLE}, {len(failed)} failed.")
        if failed:
            context.log.warning("Failed dbt tests: " + "; ".join(failed))
        if results.skipped:
            context.log.warning(
                f"{len(results.skipped)} dbt tests did not run (an upstream node failed) and are not recorded, "
                f"e.g. {', '.join(results.skipped[:5])}"
            )
    except Exception as error:
        if not build_failed:
            raise
        context.log.error(f"Could not record the dbt test results from {run_results_path}: {error!r}")


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=BillingDbtTranslator(),
    exclude=AFTER_PYTHON_SELECTION,
    pool=WAREHOUSE_POOL,
)
def billing_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
    """Builds (runs and tests) the dbt models: staging, intermediate and marts; only what
    new landing batches change, and nothing when no batch was loaded since the last build."""
    yield from _dbt_build(context, dbt, warehouse, BUILD_OP, may_skip=True)


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=BillingDbtTranslator(),
    select=AFTER_PYTHON_SELECTION,
    name=AFTER_PYTHON_OP,
    pool=WAREHOUSE_POOL,
)
def billing_dbt_models_after_python(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
):
    """Builds the dbt models that read tables written by Python assets (source `value`)."""
    yield from _dbt_build(context, dbt, warehouse, AFTER_PYTHON_OP, may_skip=False)


def marts_current_note(result: dg.ExecuteInProcessResult, warehouse_path: str, dashboard: Path) -> str | None:
    """When the run's dbt build was skipped (no new landing batches since a build whose dashboard
    was published), the line that says so; None when the run built, failed or never reached dbt."""
    built = {event.asset_key for event in result.get_asset_materialization_events()}
    succeeded = {event.step_key for event in result.get_step_success_events()}
    if BUILD_OP not in succeeded or built & set(billing_dbt_models.keys):
        return None
    with open_warehouse(Path(warehouse_path)) as conn:
        previous = last_build(conn, AFTER_PYTHON_OP)
    when = f" of {previous.built_at:%Y-%m-%d %H:%M:%S} UTC" if previous else ""
    return f"No new landing batches since the dbt build{when}: the marts and the dashboard are current: {dashboard}"
