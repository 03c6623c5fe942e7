"""A daily run builds only what the new day changes, and yields exactly the marts of a full rebuild.

One world, delivered with its last days held back as their own batch files
(DeliveryConfig.held_back_days): invoices issued, lines, payments, credit
notes, tickets, surveys, FX rates and subscription events of those days, plus
newer versions of earlier invoices (settled during those days) and customers
(edited during them). Warehouse A runs on everything else, then on the
held-back files added to its landing folder, then once more with nothing new.
Warehouse B runs once on the whole landing folder. Every table of staging,
intermediate and marts must then be the same in A and B, row for row.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import shutil
from pathlib import Path

import duckdb
import pytest

from billing_world.deliver import DeliveryConfig, held_back_files, move_batch_files
from billing_world.generate import generate_world
from billing_world.simulate import WorldConfig
from orchestration.lib.contract import SOURCES
from orchestration.lib.policy import OPEN_GATE, write_policy_variant
from orchestration.lib.settings import Settings
from tests.integration.conftest import policy_without_gate, run_pipeline
from tests.integration.warehouse_comparison import table_differences

pytestmark = pytest.mark.integration

WORLD = WorldConfig(customers=300, months=12, start=dt.date(2024, 1, 1), seed=31, anomaly_rate=0.02)
HELD_BACK_DAYS = 4  # the world's last days: 28..31 December, the 28th a billing day
DELIVERY = DeliveryConfig(batches_per_source=3, bad_row_rate=0.005, seed=31, held_back_days=HELD_BACK_DAYS)
SCHEMAS = ("staging", "intermediate", "marts")
# Columns that say when or in which load something happened, not what it is:
# the sBG fit time, the load-manifest id of a staged version (A loads the
# held-back files after the rest, B in one run, so their batch ids differ) and
# the watermark of the incremental build that wrote a staged row (B has none).
RESTAGED_MODELS = (
    "stg_billing__credit_notes",
    "stg_billing__customers",
    "stg_billing__invoice_lines",
    "stg_billing__invoices",
    "stg_billing__payments",
    "stg_billing__subscription_events",
    "stg_support__tickets",
    "stg_surveys__responses",
)
EXCLUDED_COLUMNS = {
    ("marts", "sbg_parameters", "fitted_at"),
    ("marts", "sbg_parameters_checked", "fitted_at"),
    ("marts", "sbg_residual_lifetimes", "fitted_at"),
    ("staging", "stg_billing__customers", "batch_id"),
    ("staging", "stg_finance__fx_rates", "batch_id"),
    *(("staging", model, "restaged_after_batch_id") for model in RESTAGED_MODELS),
}


def _run(settings: Settings, policy: Path | None = None) -> tuple[bool, str]:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        ok = run_pipeline(settings, policy)
    return ok, printed.getvalue()


def _manifest(settings: Settings) -> dict[str, tuple[int, str]]:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as conn:
        rows = conn.execute("select batch_file, batch_id, status from raw._load_manifest").fetchall()
    return {batch_file: (batch_id, status) for batch_file, batch_id, status in rows}


def _builds(settings: Settings) -> list[tuple[str, str, str]]:
    """(run_id, dbt op, mode) of every recorded dbt build, oldest first."""
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as conn:
        return conn.execute(
            "select run_id, dbt_op, mode from meta.dbt_builds group by all order by min(built_at)"
        ).fetchall()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("incremental")
    full = Settings(root / "full" / "landing", root / "full" / "warehouse.duckdb", root / "full" / "output")
    daily = Settings(root / "daily" / "landing", root / "daily" / "warehouse.duckdb", root / "daily" / "output")
    # anomalies are injected at twice a real rate: the gate would (rightly) stop publication
    policy = policy_without_gate(root)
    generate_world(full.landing_dir, WORLD, DELIVERY)
    shutil.copytree(full.landing_dir, daily.landing_dir)  # copy2: same bytes, sizes and mtimes
    held_back = held_back_files(daily.landing_dir)
    move_batch_files(held_back, daily.landing_dir, root / "held_back")

    base_ok, _ = _run(daily, policy)
    after_base = _manifest(daily)
    builds_after_base = _builds(daily)
    move_batch_files(held_back, root / "held_back", daily.landing_dir)
    day_ok, _ = _run(daily, policy)
    after_day = _manifest(daily)
    builds_after_day = _builds(daily)
    idle_ok, idle_output = _run(daily, policy)
    full_ok, _ = _run(full, policy)
    return {
        "full": full,
        "daily": daily,
        "held_back": held_back,
        "ok": {"base": base_ok, "day": day_ok, "idle": idle_ok, "full": full_ok},
        "after_base": after_base,
        "after_day": after_day,
        "builds": {"base": builds_after_base, "day": builds_after_day, "idle": _builds(daily)},
        "idle_output": idle_output,
    }


def test_every_run_succeeds(runs):
    assert runs["ok"] == {"base": True, "day": True, "idle": True, "full": True}


def test_the_held_back_days_hold_new_rows_and_newer_versions_of_loaded_ones(runs):
    sources = {name.split("/")[0] for name in runs["held_back"]}
    # the world's last four days: a billing day (the 28th) with its lines and payments
    assert {"invoices", "invoice_lines", "payments", "fx_rates", "subscription_events"} <= sources
    with duckdb.connect(str(runs["daily"].warehouse_path), read_only=True) as conn:
        newer_invoice_versions = conn.execute(
            """
            select count(*) from raw.invoices as new
            where new._batch_file in (select unnest(?))
              and exists (select 1 from raw.invoices as old
                          where old.invoice_id = new.invoice_id and old._batch_id < new._batch_id)
            """,
            [runs["held_back"]],
        ).fetchall()[0][0]
    assert newer_invoice_versions > 0, "an invoice settled during the held-back days arrives again"


def test_the_daily_run_loads_exactly_the_held_back_files(runs):
    new = {name: entry for name, entry in runs["after_day"].items() if name not in runs["after_base"]}
    assert set(new) == set(runs["held_back"])
    assert {status for _, status in new.values()} == {"loaded"}
    assert min(batch_id for batch_id, _ in new.values()) > max(batch_id for batch_id, _ in runs["after_base"].values())
    # nothing loaded before was loaded again
    assert {name: runs["after_day"][name] for name in runs["after_base"]} == runs["after_base"]


def test_the_base_run_builds_in_full_and_the_daily_run_incrementally(runs):
    base, day = runs["builds"]["base"], runs["builds"]["day"]
    assert [(op, mode) for _, op, mode in base] == [
        ("billing_dbt_models", "full"),
        ("billing_dbt_models_after_python", "full"),
    ]
    assert [(op, mode) for _, op, mode in day[len(base) :]] == [
        ("billing_dbt_models", "incremental"),
        ("billing_dbt_models_after_python", "incremental"),
    ]


def test_a_run_with_no_new_files_skips_dbt_and_says_the_marts_are_current(runs):
    assert runs["builds"]["idle"] == runs["builds"]["day"], "no dbt build may be recorded"
    assert "the marts and the dashboard are current" in runs["idle_output"]
    assert "Dashboard NOT updated" not in runs["idle_output"]
    assert runs["after_day"] == _manifest(runs["daily"])


def test_raw_holds_the_same_rows_either_way(runs):
    with (
        duckdb.connect(str(runs["daily"].warehouse_path), read_only=True) as daily,
        duckdb.connect(str(runs["full"].warehouse_path), read_only=True) as full,
    ):
        for table in [*SOURCES, "_quarantine"]:
            counts = [conn.execute(f"select count(*) from raw.{table}").fetchall()[0][0] for conn in (daily, full)]
            assert counts[0] == counts[1], table


def test_every_staging_intermediate_and_mart_table_equals_the_full_rebuild_row_for_row(runs, tmp_path):
    daily, full = runs["daily"].warehouse_path, runs["full"].warehouse_path
    full_tables, differences = table_differences(daily, full, SCHEMAS, EXCLUDED_COLUMNS, tmp_path / "compare.duckdb")
    assert {schema for schema, _ in full_tables} == set(SCHEMAS)
    assert any(table == "kpi_churn" for _, table in full_tables)
    assert differences == {}


def test_the_excluded_columns_exist(runs):
    """A renamed column must not silently widen the comparison's blind spot."""
    with duckdb.connect(str(runs["full"].warehouse_path), read_only=True) as conn:
        found = set(
            conn.execute("select table_schema, table_name, column_name from information_schema.columns").fetchall()
        )
    assert found >= EXCLUDED_COLUMNS


def test_after_a_blocked_publication_an_idle_run_checks_again_and_a_policy_change_rebuilds(runs, tmp_path):
    """WORLD's anomalies, at twice a real rate, put more revenue at stake than the shipped gate allows."""
    settings = Settings(tmp_path / "landing", tmp_path / "warehouse.duckdb", tmp_path / "output")
    shutil.copytree(runs["full"].landing_dir, settings.landing_dir)
    page = settings.output_dir / "dashboard" / "index.html"

    blocked_ok, _ = _run(settings)
    assert not blocked_ok and not page.exists(), "precondition: the anomaly gate blocks this world"
    # no new files, but the last build was never published: the checks run (and block) again
    again_ok, again_output = _run(settings)
    assert not again_ok and not page.exists()
    assert "are current" not in again_output
    modes = [(op, mode) for _, op, mode in _builds(settings)]
    assert modes[2:] == [("billing_dbt_models", "incremental"), ("billing_dbt_models_after_python", "incremental")]
    # a changed policy (the gate opened) rebuilds everything and publishes
    opened = write_policy_variant(tmp_path / "open_gate.yml", {"anomalies": {"gate": OPEN_GATE}})
    opened_ok, _ = _run(settings, opened)
    assert opened_ok and page.exists()
    assert [mode for _, _, mode in _builds(settings)][4:] == ["full", "full"]
    idle_ok, idle_output = _run(settings, opened)
    assert idle_ok and "the marts and the dashboard are current" in idle_output
    assert len(_builds(settings)) == 6
