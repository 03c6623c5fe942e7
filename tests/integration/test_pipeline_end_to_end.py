"""End to end: a generated world through ingestion and dbt into a temporary warehouse.

One world is generated and run once per module (plus a second run); every
expectation is derived from the generator's ground truth or the clean
simulated tables, never from the pipeline's own output.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
from pathlib import Path

import duckdb
import polars as pl
import pytest

from billing_world.deliver import DeliveryConfig
from billing_world.generate import generate_world
from billing_world.simulate import WorldConfig, simulate_world
from orchestration.lib.contract import SOURCES
from orchestration.lib.settings import Settings
from orchestration.lib.warehouse import fetch_scalar
from tests.integration.conftest import run_pipeline

pytestmark = pytest.mark.integration

WORLD = WorldConfig(customers=300, months=12, start=dt.date(2024, 1, 1), seed=11, anomaly_rate=0.01)
DELIVERY = DeliveryConfig(batches_per_source=4, bad_row_rate=0.01, seed=11)
# source -> (staging model, contract column -> staging column where renamed)
STAGING = {
    "customers": ("stg_billing__customers", {"name": "customer_name"}),
    "products": ("stg_billing__products", {"name": "product_name"}),
    "subscription_events": ("stg_billing__subscription_events", {}),
    "invoices": ("stg_billing__invoices", {"subtotal": "subtotal_amount", "total": "total_amount"}),
    "invoice_lines": ("stg_billing__invoice_lines", {"proration": "is_proration"}),
    "payments": ("stg_billing__payments", {}),
    "credit_notes": ("stg_billing__credit_notes", {}),
    "support_tickets": ("stg_support__tickets", {}),
    "survey_responses": ("stg_surveys__responses", {}),
    "fx_rates": ("stg_finance__fx_rates", {}),
}
TRUNCATED = "payments/zz_truncated.csv.gz"
GARBAGE = "invoices/zz_garbage.parquet"


def _add_corrupt_files(landing: Path) -> None:
    whole = gzip.compress(b"payment_id,invoice_id\n" + b"py_x,in_x\n" * 5000)
    (landing / TRUNCATED).write_bytes(whole[: len(whole) // 2])
    (landing / GARBAGE).write_bytes(b"PAR1 this is not parquet at all")


def _snapshot(conn: duckdb.DuckDBPyConnection) -> dict[str, int]:
    counts = {name: fetch_scalar(conn, f"select count(*) from raw.{name}") for name in SOURCES}
    counts["_quarantine"] = fetch_scalar(conn, "select count(*) from raw._quarantine")
    counts["_manifest_done"] = fetch_scalar(
        conn, "select count(*) from raw._load_manifest where status != 'unreadable'"
    )
    return counts


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Generate, run twice; keep what each run saw."""
    root = tmp_path_factory.mktemp("world")
    settings = Settings(root / "landing", root / "warehouse.duckdb", root / "output")
    generate_world(settings.landing_dir, WORLD, DELIVERY)
    _add_corrupt_files(settings.landing_dir)
    first_ok = run_pipeline(settings)
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as conn:
        after_first = _snapshot(conn)
    second_ok = run_pipeline(settings)
    conn = duckdb.connect(str(settings.warehouse_path), read_only=True)
    yield {
        "settings": settings,
        "conn": conn,
        "first_ok": first_ok,
        "second_ok": second_ok,
        "after_first": after_first,
        "truth": settings.landing_dir / "_truth",
        "clean": simulate_world(WORLD).tables,
    }
    conn.close()


def _frame(conn, sql: str) -> pl.DataFrame:
    return conn.sql(sql).pl()


def test_both_runs_succeed_despite_two_unreadable_files(world):
    assert world["first_ok"] is True
    assert world["second_ok"] is True


def test_every_batch_conserves_rows_and_matches_what_the_generator_delivered(world):
    conn = world["conn"]
    delivered = pl.read_csv(world["truth"] / "batches.csv").filter(pl.col("kind") != "duplicate")
    manifest = _frame(
        conn,
        """
        select m.batch_file, m.rows_in_file, m.rows_loaded, m.rows_quarantined,
               (select count(*) from raw._quarantine q where q.batch_id = m.batch_id) as in_quarantine
        from raw._load_manifest m where m.status = 'loaded'
        """,
    )
    assert sorted(manifest["batch_file"].to_list()) == sorted(delivered["batch_file"].to_list())
    joined = manifest.join(delivered.select("batch_file", "rows"), on="batch_file")
    assert (joined["rows_in_file"] == joined["rows"]).all()
    assert (joined["rows_loaded"] + joined["rows_quarantined"] == joined["rows"]).all()
    assert (joined["in_quarantine"] == joined["rows_quarantined"]).all()
    for source in SOURCES:
        per_batch = _frame(
            conn,
            f"""
            select m.batch_file, m.rows_loaded, count(r._batch_id) as in_raw
            from raw._load_manifest m left join raw.{source} r on r._batch_id = m.batch_id
            where m.source = '{source}' and m.status = 'loaded' group by all
            """,
        )
        assert (per_batch["rows_loaded"] == per_batch["in_raw"]).all(), source


def test_each_recorded_bad_row_lands_in_quarantine_with_file_row_column_and_reason(world):
    truth = pl.read_csv(world["truth"] / "bad_rows.csv")
    assert set(truth["defect"]) >= {"wrong_type", "unknown_enum", "missing_key", "missing_required", "negative_amount"}
    quarantined = _frame(world["conn"], "select batch_file, row_number, column_name, reason from raw._quarantine")
    expected = set(zip(truth["batch_file"], truth["row_number"], truth["column"], strict=True))
    actual = set(zip(quarantined["batch_file"], quarantined["row_number"], quarantined["column_name"], strict=True))
    assert actual == expected
    for column, reason in zip(quarantined["column_name"], quarantined["reason"], strict=True):
        assert column in reason


def test_a_redelivered_batch_under_a_new_name_loads_once(world):
    batches = pl.read_csv(world["truth"] / "batches.csv")
    duplicate = batches.filter(pl.col("kind") == "duplicate").row(0, named=True)
    ((status, duplicate_of),) = (
        world["conn"]
        .execute("select status, duplicate_of from raw._load_manifest where batch_file = ?", [duplicate["batch_file"]])
        .fetchall()
    )
    assert (status, duplicate_of) == ("duplicate_content", duplicate["duplicate_of"])
    rows_from_copy = fetch_scalar(
        world["conn"],
        f"select count(*) from raw.{duplicate['source']} where _batch_file = ?",
        [duplicate["batch_file"]],
    )
    assert rows_from_copy == 0


def _comparable(frame: pl.DataFrame, key: tuple[str, ...]) -> pl.DataFrame:
    money = [name for name, dtype in frame.schema.items() if isinstance(dtype, pl.Decimal)]
    return frame.with_columns(pl.col(money).cast(pl.Float64)).sort(key)


def test_staging_holds_exactly_the_clean_world_value_for_value(world):
    """Across CSV/Parquet/JSONL batches, Z / +00:00 / no-offset timestamps, JPY
    amounts, quarantined extras and update batches, every staged row equals
    the row the simulator made."""
    for source, (model, renamed) in STAGING.items():
        contract = SOURCES[source]
        selected = ", ".join(f"{renamed.get(c, c)} as {c}" for c in contract.column_names)
        staged = _comparable(world["conn"].sql(f"select {selected} from staging.{model}").pl(), contract.primary_key)
        clean = _comparable(world["clean"][source], contract.primary_key)
        assert staged.height == clean.height, source
        assert staged.equals(clean), source


def test_an_update_batch_changes_the_staged_row(world):
    updates = pl.read_csv(world["truth"] / "updates.csv")
    assert set(updates["source"]) == {"customers", "invoices"}
    clean_invoices = world["clean"]["invoices"].select("invoice_id", "status")
    updated_invoices = updates.filter(pl.col("source") == "invoices")["key"].to_list()
    staged = _frame(
        world["conn"],
        f"select invoice_id, status from staging.stg_billing__invoices "
        f"where invoice_id in ({', '.join(repr(k) for k in updated_invoices)})",
    )
    raw_open = fetch_scalar(
        world["conn"],
        f"select count(distinct invoice_id) from raw.invoices where status = 'open' "
        f"and invoice_id in ({', '.join(repr(k) for k in updated_invoices)})",
    )
    assert raw_open == len(updated_invoices)  # raw keeps the earlier `open` version
    expected = clean_invoices.filter(pl.col("invoice_id").is_in(updated_invoices)).sort("invoice_id")
    assert staged.sort("invoice_id").equals(expected)
    assert set(expected["status"]) - {"open"}, "the update batch should settle some invoices"
    updated_customers = updates.filter(pl.col("source") == "customers")["key"].to_list()
    versions = fetch_scalar(
        world["conn"],
        f"select count(*) from raw.customers where customer_id in ({', '.join(repr(k) for k in updated_customers)})",
    )
    assert versions == 2 * len(updated_customers)  # raw keeps both versions


def test_unreadable_files_are_named_with_a_reason_and_other_files_of_the_source_still_load(world):
    rows = (
        world["conn"]
        .execute("select distinct batch_file, error from raw._load_manifest where status = 'unreadable' order by 1")
        .fetchall()
    )
    assert [file for file, _ in rows] == [GARBAGE, TRUNCATED]
    assert all(error for _, error in rows)
    assert world["after_first"]["payments"] > 0 and world["after_first"]["invoices"] > 0


def test_a_second_run_loads_nothing_new(world):
    with duckdb.connect(str(world["settings"].warehouse_path), read_only=True) as conn:
        assert _snapshot(conn) == world["after_first"]


def test_the_load_report_names_quarantined_rows_and_unreadable_files(world):
    reports = world["settings"].output_dir / "reports"
    markdown = (reports / "load_report.md").read_text()
    assert TRUNCATED in markdown and GARBAGE in markdown
    summary = json.loads((reports / "load_report.json").read_text())
    truth = pl.read_csv(world["truth"] / "bad_rows.csv")
    for source in SOURCES:
        expected = truth.filter(pl.col("source") == source).height
        assert summary["sources"][source]["rows_quarantined"] == expected, source
    assert {u["file"] for u in summary["unreadable_files"]} == {TRUNCATED, GARBAGE}


def test_dbt_docs_generate_works_and_every_model_and_column_is_described(world, tmp_path):
    """The catalog (what the warehouse really holds) against the yml docs."""
    import subprocess

    from orchestration.defs.transform.dbt_assets import dbt_policy_vars
    from orchestration.lib.settings import DBT_EXECUTABLE, DBT_PROJECT_DIR

    environment = dict(os.environ, BILLING_WAREHOUSE_PATH=str(world["settings"].warehouse_path))
    world["conn"].close()  # dbt needs the file; read-only readers may share, but keep it simple
    command = [str(DBT_EXECUTABLE), "docs", "generate", "--profiles-dir", ".", "--quiet"]
    command += ["--target-path", str(tmp_path / "target"), "--vars", json.dumps(dbt_policy_vars())]
    subprocess.run(command, cwd=DBT_PROJECT_DIR, env=environment, check=True)
    world["conn"] = duckdb.connect(str(world["settings"].warehouse_path), read_only=True)
    manifest = json.loads((tmp_path / "target" / "manifest.json").read_text())
    catalog = json.loads((tmp_path / "target" / "catalog.json").read_text())
    undocumented = []
    models = [(uid, node) for uid, node in manifest["nodes"].items() if node["resource_type"] == "model"]
    assert any(node["name"] == "kpi_dso" for _, node in models)
    for uid, node in models:
        if not node["description"].strip():
            undocumented.append(node["name"])
        documented = {name.lower(): column for name, column in node["columns"].items()}
        for column in catalog["nodes"][uid]["columns"]:
            if not documented.get(column.lower(), {}).get("description", "").strip():
                undocumented.append(f"{node['name']}.{column}")
    assert undocumented == []
