"""The scale benchmark's harness and its plain-SQL baseline (benchmarks/scale.py, baseline_kpis.sql).

Benchmarks are not tests: nothing here looks at how long anything took. The
harness runs once on a tiny world to show that it measures every stage and
counts the landed rows right; the baseline is held to the marts' numbers on
the shared KPI world, so the pipeline / baseline ratio compares like with like.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from benchmarks.scale import (
    DBT_ANOMALY_MODELS,
    DBT_MODELS,
    DBT_TESTS,
    KPI_COLUMNS,
    OTHER_STEPS,
    PIPELINE_STAGES,
    dbt_node_category,
    kpi_differences,
    main,
    marts_all_kpis,
    run_baseline,
    shared_seconds,
)
from orchestration.lib.settings import DEFAULT_DUCKDB_MEMORY_LIMIT, PROJECT_ROOT
from orchestration.lib.warehouse import open_warehouse
from tests.integration.conftest import KPI_WORLD

ISSUE_STAGES = (
    "generate",
    "ingest",
    "dbt build",
    "quality checks",
    "anomaly detection",
    "sBG fit",
    "dashboard",
    "exports",
)
SMOKE_CUSTOMERS, SMOKE_MONTHS = 60, 6
SMOKE_MEMORY_LIMIT = "1GB"


# --- attribution of overlapping dbt nodes ---------------------------------------------


def test_overlapping_windows_share_each_instant_equally():
    # a runs 0-4, b 2-6: alone 2 s each, together 2 s split 1 / 1
    assert shared_seconds([("a", 0.0, 4.0), ("b", 2.0, 6.0)]) == {"a": 3.0, "b": 3.0}


def test_shares_add_up_to_the_time_any_window_is_open():
    # tests 0-3 and 1-2 (same label), models 2-5, a gap 5-7, models 7-8
    seconds = shared_seconds([("tests", 0.0, 3.0), ("tests", 1.0, 2.0), ("models", 2.0, 5.0), ("models", 7.0, 8.0)])
    # 0-1 tests alone 1; 1-2 two tests 1; 2-3 one test + models: 0.5 each; 3-5 models 2; 7-8 models 1
    assert seconds == {"tests": 2.5, "models": 3.5}
    assert sum(seconds.values()) == 6.0  # 0-5 and 7-8


def test_dbt_nodes_are_sorted_into_tests_anomaly_models_and_the_rest():
    assert dbt_node_category("test.billing_analytics.not_null_fct_invoices_invoice_id.1a2b") == DBT_TESTS
    assert dbt_node_category("unit_test.billing_analytics.kpi_churn.zero_cases_first") == DBT_TESTS
    assert dbt_node_category("model.billing_analytics.int_anomaly_billing_periods") == DBT_ANOMALY_MODELS
    assert dbt_node_category("model.billing_analytics.billing_anomalies") == DBT_ANOMALY_MODELS
    assert dbt_node_category("model.billing_analytics.kpi_dso") == DBT_MODELS
    assert dbt_node_category("seed.billing_analytics.ref_countries") == DBT_MODELS


def test_kpi_differences_name_the_month_and_the_kpi():
    row = ("2024-01-01", 10, 1, 10.0, 5, 6, 7.0, 100, 3, 0.03)
    changed = (*row[:3], 20.0, *row[4:])
    assert kpi_differences([row], [row]) == []
    assert kpi_differences([row], [changed]) == [
        {"month": "2024-01-01", "kpi": "error_rate_per_100", "baseline": "10.0", "marts": "20.0"}
    ]
    assert kpi_differences([], [row]) == [
        {"month": "2024-01-01", "kpi": "(month)", "baseline": "missing", "marts": "present"}
    ]


# --- the harness on a tiny world ------------------------------------------------------


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """`scale.py` on one tiny size, with a DuckDB memory limit of its own to find in the report."""
    root = tmp_path_factory.mktemp("scale")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BILLING_DUCKDB_MEMORY_LIMIT", SMOKE_MEMORY_LIMIT)
        code = main(
            [
                "--sizes",
                str(SMOKE_CUSTOMERS),
                "--months",
                str(SMOKE_MONTHS),
                "--root",
                str(root / "worlds"),
                "--report-dir",
                str(root / "report"),
                "--note",
                "smoke test",
            ]
        )
    report = json.loads((root / "report" / "scale.json").read_text())
    (size,) = report["sizes"]
    return {
        "code": code,
        "report": report,
        "size": size,
        "markdown": (root / "report" / "scale.md").read_text(),
        "landing": Path(size["world"]["root"]) / "landing",
    }


def test_the_harness_runs_the_pipeline_and_a_baseline_that_agrees(smoke):
    size = smoke["size"]
    assert smoke["code"] == 0
    assert (size["customers"], size["months"]) == (SMOKE_CUSTOMERS, SMOKE_MONTHS)
    assert size["pipeline"]["succeeded"]
    assert all(step["status"] == "success" for step in size["steps"]), size["steps"]
    assert size["baseline"]["equal"], size["baseline"]["differences"]


def test_every_stage_is_reported_with_non_negative_figures(smoke):
    stages = smoke["size"]["stages"]
    assert set(ISSUE_STAGES) <= set(stages)
    steps = [step["key"] for step in smoke["size"]["steps"]]
    exports_step = any(key.startswith("publish__at_risk_exports") for key in steps)
    for name in ISSUE_STAGES:
        stage = stages[name]
        if name == "exports" and not exports_step:
            assert not stage["present"]  # reported as "not present" until the exports asset exists
            continue
        assert stage["present"], name
        assert stage["seconds"] >= 0, name
        assert stage["peak_rss_mib"] > 0, name
        assert all(value >= 0 for value in stage["detail"].values() if isinstance(value, int | float)), name


def test_every_step_of_the_job_belongs_to_a_named_stage(smoke):
    size = smoke["size"]
    assert OTHER_STEPS not in size["stages"]
    assert {step["stage"] for step in size["steps"]} <= set(PIPELINE_STAGES)
    assert {"ingest", "dbt build", "quality checks", "sBG fit", "dashboard"} <= {s["stage"] for s in size["steps"]}


def test_the_stages_add_up_to_the_pipeline_total(smoke):
    size = smoke["size"]
    stages = [size["stages"][name]["seconds"] for name in PIPELINE_STAGES if size["stages"][name]["present"]]
    # each stage is rounded to 0.01 s
    assert sum(stages) == pytest.approx(size["pipeline"]["seconds"], abs=0.01 * len(stages))


def test_rows_per_source_are_the_generated_files_rows(smoke):
    """Landed rows, quarantined rows and files per source, from the generator's own truth."""
    truth = smoke["landing"] / "_truth"
    with (truth / "batches.csv").open() as handle:
        batches = list(csv.DictReader(handle))
    with (truth / "bad_rows.csv").open() as handle:
        bad_rows = Counter(row["source"] for row in csv.DictReader(handle))
    clean_rows = json.loads((truth / "generation.json").read_text())["rows_per_source"]
    rows = smoke["size"]["rows"]
    assert set(rows) == set(clean_rows)
    for source, counts in rows.items():
        delivered = [b for b in batches if b["source"] == source and b["kind"] != "duplicate"]
        assert counts["files"] == len(delivered), source
        assert counts["duplicate_files"] == sum(b["source"] == source and b["kind"] == "duplicate" for b in batches)
        assert counts["rows_in_files"] == sum(int(b["rows"]) for b in delivered), source
        assert counts["rows_quarantined"] == bad_rows[source], source
        assert counts["rows_loaded"] == counts["rows_in_files"] - bad_rows[source], source
        assert counts["clean_rows_generated"] == clean_rows[source], source
    assert smoke["size"]["rows_in_files"] == sum(int(b["rows"]) for b in batches if b["kind"] != "duplicate")


def test_both_duckdb_connections_run_under_the_configured_memory_limit(smoke):
    """The loader's connections and dbt's profile read the same BILLING_DUCKDB_MEMORY_LIMIT."""
    expected = (
        duckdb.connect(config={"memory_limit": SMOKE_MEMORY_LIMIT})
        .execute("select current_setting('memory_limit')")
        .fetchone()[0]
    )
    settings = smoke["report"]["duckdb"]
    assert len(settings) == 2
    for who, found in settings.items():
        assert found["memory_limit"] == expected, who
        assert found["temp_directory"].endswith("warehouse.duckdb.tmp"), who  # spills beside the warehouse


def test_the_dbt_profile_defaults_to_the_loaders_memory_limit():
    profile = (PROJECT_ROOT / "dbt_project" / "profiles.yml").read_text()
    assert f"env_var('BILLING_DUCKDB_MEMORY_LIMIT', '') or '{DEFAULT_DUCKDB_MEMORY_LIMIT}'" in profile


def test_the_markdown_report_has_a_table_per_size_and_the_targets(smoke):
    markdown = smoke["markdown"]
    assert f"## {SMOKE_CUSTOMERS:,} customers x {SMOKE_MONTHS} months" in markdown
    assert "## Targets" in markdown
    assert "**Conditions:** smoke test" in markdown
    for name in ISSUE_STAGES:
        assert f"| {name} |" in markdown


def test_the_daily_runs_load_the_held_back_day_and_then_nothing(smoke):
    daily = smoke["report"]["daily"]
    runs = daily["runs"]
    assert list(runs) == ["without the last day", "one new day", "no new files"]
    assert all(run["succeeded"] for run in runs.values())
    # one held-back day: one `day` batch per source that had rows on it, loaded by the second run only
    assert daily["held_back_files"] >= 1
    assert runs["one new day"]["files_loaded"] == daily["held_back_files"]
    assert runs["no new files"]["files_loaded"] == 0
    # nothing new: the dbt op skips, so everything after it is skipped too
    assert runs["no new files"]["steps_skipped"] > 0
    assert runs["one new day"]["steps_skipped"] == 0
    assert daily["full_run_seconds"] == smoke["size"]["pipeline"]["seconds"]
    assert f"## Daily runs, {SMOKE_CUSTOMERS:,} x {SMOKE_MONTHS}" in smoke["markdown"]


# --- the baseline against the marts ---------------------------------------------------

# The columns the baseline keeps of each source, and the staging model that must hold the same rows.
BASELINE_SOURCES = {
    "invoices": (
        "stg_billing__invoices",
        "invoice_id, status, currency, issued_at, total_amount, voided_at, uncollectible_at, updated_at, usd_per_unit",
    ),
    "payments": ("stg_billing__payments", "payment_id, invoice_id, attempted_at, amount, status"),
    "credit_notes": ("stg_billing__credit_notes", "credit_note_id, invoice_id, issued_at, amount, reason"),
    "support_tickets": ("stg_support__tickets", "ticket_id, invoice_id, subcategory"),
    "subscription_events": (
        "stg_billing__subscription_events",
        "event_id, subscription_id, customer_id, event_type, effective_at",
    ),
    "fx_rates": ("stg_finance__fx_rates", "valid_from, currency, usd_per_unit, valid_to"),
}


@pytest.fixture(scope="module")
def baseline_on_kpi_world(kpi_world):
    assert kpi_world["ok"], "the KPI world's pipeline run failed"
    settings = kpi_world["settings"]
    conn = duckdb.connect()
    columns, rows = run_baseline(conn, settings.landing_dir)
    yield {"conn": conn, "columns": columns, "rows": rows, "settings": settings}
    conn.close()


def test_baseline_kpis_equal_the_marts_all_rows_month_by_month(baseline_on_kpi_world):
    baseline = baseline_on_kpi_world["rows"]
    with open_warehouse(baseline_on_kpi_world["settings"].warehouse_path, read_only=True) as conn:
        mart_columns, marts = marts_all_kpis(conn)
    assert baseline_on_kpi_world["columns"] == mart_columns == list(KPI_COLUMNS)
    # every month of the world, each KPI exactly (the same rounding at the same steps)
    assert len(baseline) == len(marts) == KPI_WORLD.months
    assert kpi_differences(baseline, marts) == []
    assert baseline == marts
    # and the world gives the comparison something to compare
    by_column = {name: [row[i] for row in baseline] for i, name in enumerate(KPI_COLUMNS)}
    assert sum(by_column["invoices_with_error"]) > 0
    assert sum(by_column["churned"]) > 0
    assert max(by_column["ar_end_usd"]) > 0


def test_baseline_keeps_the_rows_staging_keeps(baseline_on_kpi_world):
    """Same row rules and newest-version rules as ingestion and staging: after dropping bad
    rows, earlier versions and the re-delivered batch, the baseline's sources hold exactly
    the staging models' rows (on the columns it uses)."""
    conn = baseline_on_kpi_world["conn"]
    warehouse = baseline_on_kpi_world["settings"].warehouse_path
    conn.execute(f"attach '{warehouse}' as warehouse (read_only)")
    try:
        quarantined = dict(conn.execute("select source, count(*) from warehouse.raw._quarantine group by 1").fetchall())
        for source, (model, columns) in BASELINE_SOURCES.items():
            only_baseline, only_staging, rows = conn.execute(
                f"""
                select
                    (select count(*) from (select {columns} from {source}
                        except all select {columns} from warehouse.staging.{model})),
                    (select count(*) from (select {columns} from warehouse.staging.{model}
                        except all select {columns} from {source})),
                    (select count(*) from {source})
                """
            ).fetchone()
            assert (only_baseline, only_staging) == (0, 0), source
            assert rows > 0, source
    finally:
        conn.execute("detach warehouse")
    # the world put bad rows into the sources the baseline reads, so the row rules were exercised
    assert all(quarantined.get(source, 0) > 0 for source in BASELINE_SOURCES if source != "credit_notes")
