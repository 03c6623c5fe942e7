"""What the next dbt build must do, from what the last successful one reflected."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from orchestration.lib.build_state import (
    FULL,
    INCREMENTAL,
    SKIP,
    RecordedBuild,
    code_fingerprint,
    last_build,
    loaded_batches,
    missing_tables,
    plan_build,
    record_build,
)
from orchestration.lib.loader import ensure_warehouse_schema

BUILT_AT = dt.datetime(2026, 11, 20, 6, 0, 12)
SOURCES = ("fx_rates", "customers", "invoices")


def _build(batches: dict[str, int | None], fingerprint: str = "f1") -> RecordedBuild:
    return RecordedBuild("run-1", FULL, batches, fingerprint, BUILT_AT)


def test_the_first_build_of_a_warehouse_is_a_full_refresh():
    plan = plan_build(None, {"invoices": 3}, "f1")
    assert plan.action == FULL
    assert "no successful dbt build" in plan.reason


def test_a_changed_project_or_policy_rebuilds_everything():
    plan = plan_build(_build({"invoices": 3}, "f1"), {"invoices": 3}, "f2")
    assert plan.action == FULL
    assert "2026-11-20 06:00:12 UTC" in plan.reason


def test_new_batches_build_incrementally_from_the_highest_batch_the_last_build_saw():
    previous = _build({"fx_rates": 1, "customers": 4, "invoices": 7})
    plan = plan_build(previous, {"fx_rates": 9, "customers": 4, "invoices": 8}, "f1")
    assert plan.action == INCREMENTAL
    # batch ids rise across sources: every raw row above 7 is new, whatever its source
    assert plan.watermark == 7
    assert "fx_rates, invoices" in plan.reason


def test_a_source_that_had_no_batch_and_gets_one_is_new():
    plan = plan_build(_build({"customers": 2, "invoices": None}), {"customers": 2, "invoices": 5}, "f1")
    assert (plan.action, plan.watermark) == (INCREMENTAL, 2)


PUBLISHED_AT = BUILT_AT + dt.timedelta(minutes=1)


def test_nothing_new_skips_when_the_later_dbt_step_is_current_and_the_dashboard_published_after_it():
    batches = {"customers": 2, "invoices": 5}
    plan = plan_build(_build(batches), batches, "f1", later_ops=[_build(batches)], published_at=PUBLISHED_AT)
    assert plan.action == SKIP
    assert plan.reason == "no new landing batches since the build of 2026-11-20 06:00:12 UTC; marts are current"


@pytest.mark.parametrize("published_at", [None, BUILT_AT - dt.timedelta(days=1)], ids=["never", "before the build"])
def test_nothing_new_still_builds_when_a_blocking_check_kept_the_dashboard_back(published_at):
    """The run evaluates the checks again (and fails again) rather than report success."""
    batches = {"customers": 2, "invoices": 5}
    plan = plan_build(_build(batches), batches, "f1", later_ops=[_build(batches)], published_at=published_at)
    assert (plan.action, plan.watermark) == (INCREMENTAL, 5)
    assert "dashboard was not published" in plan.reason


@pytest.mark.parametrize(
    "later",
    [None, _build({"customers": 2, "invoices": 4}), _build({"customers": 2, "invoices": 5}, "f0")],
    ids=["never built", "built before the last batch", "built by other code"],
)
def test_nothing_new_still_builds_when_the_later_dbt_step_is_behind(later):
    batches = {"customers": 2, "invoices": 5}
    plan = plan_build(_build(batches), batches, "f1", later_ops=[later])
    assert (plan.action, plan.watermark) == (INCREMENTAL, 5)


def test_a_step_that_may_not_skip_builds_incrementally_when_nothing_is_new():
    batches = {"customers": 2, "invoices": 5}
    plan = plan_build(_build(batches), batches, "f1", may_skip=False)
    assert (plan.action, plan.watermark) == (INCREMENTAL, 5)


def test_raw_with_fewer_batches_than_the_last_build_rebuilds_everything():
    plan = plan_build(_build({"customers": 2, "invoices": 5}), {"customers": 2, "invoices": 3}, "f1")
    assert plan.action == FULL
    assert "invoices" in plan.reason


def test_the_fingerprint_follows_model_files_and_vars_but_not_dbt_output(tmp_path: Path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "a.sql").write_text("select 1")
    (tmp_path / "dbt_project.yml").write_text("name: x")
    first = code_fingerprint(tmp_path, {"rate": 0.1})
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "manifest.json").write_text("{}")
    assert code_fingerprint(tmp_path, {"rate": 0.1}) == first
    assert code_fingerprint(tmp_path, {"rate": 0.2}) != first
    (tmp_path / "models" / "a.sql").write_text("select 2")
    assert code_fingerprint(tmp_path, {"rate": 0.1}) != first


def test_recorded_builds_are_read_back_per_op_latest_first():
    conn = duckdb.connect()
    assert last_build(conn, "billing_dbt_models") is None  # before the table exists
    record_build(conn, "run-1", "billing_dbt_models", FULL, {"customers": 1, "invoices": None}, "f1", BUILT_AT)
    later = BUILT_AT + dt.timedelta(days=1)
    record_build(conn, "run-2", "billing_dbt_models", INCREMENTAL, {"customers": 1, "invoices": 6}, "f1", later)
    record_build(conn, "run-2", "billing_dbt_models_after_python", INCREMENTAL, {"customers": 1}, "f1", later)
    latest = last_build(conn, "billing_dbt_models")
    assert latest == RecordedBuild("run-2", INCREMENTAL, {"customers": 1, "invoices": 6}, "f1", later)
    assert latest.watermark == 6


def test_loaded_batches_count_only_loaded_files_per_source():
    conn = duckdb.connect()
    assert loaded_batches(conn, SOURCES) == dict.fromkeys(SOURCES)  # no manifest yet
    ensure_warehouse_schema(conn)
    for batch_id, source, status in [(1, "fx_rates", "loaded"), (2, "invoices", "loaded"), (3, "invoices", "rejected")]:
        conn.execute(
            "insert into raw._load_manifest (batch_id, source, batch_file, file_size, file_mtime, file_format, "
            "status, rows_loaded, rows_quarantined, loaded_at) values (?, ?, ?, 1, now(), 'csv', ?, 0, 0, now())",
            [batch_id, source, f"{source}/{batch_id}.csv", status],
        )
    assert loaded_batches(conn, SOURCES) == {"fx_rates": 1, "customers": None, "invoices": 2}


def test_a_dropped_incremental_table_rebuilds_everything():
    """Rebuilt alone, it would mark none of its rows as changed, and the incremental models
    downstream of it would miss what the new batches changed."""
    batches = {"customers": 2, "invoices": 5}
    plan = plan_build(
        _build(batches), {"customers": 2, "invoices": 6}, "f1", missing_incremental=["staging.stg_billing__invoices"]
    )
    assert plan.action == FULL
    assert "staging.stg_billing__invoices" in plan.reason


def test_missing_tables_are_named_by_schema_and_table():
    conn = duckdb.connect()
    conn.execute("create schema staging")
    conn.execute("create table staging.stg_a (x int)")
    assert missing_tables(conn, [("staging", "stg_a"), ("staging", "stg_b"), ("marts", "stg_a")]) == [
        "staging.stg_b",
        "marts.stg_a",
    ]
