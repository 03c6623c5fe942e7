"""A structural defect in a new batch stops publication and keeps the last good dashboard.

Run 1 publishes the dashboard. Then an invoice-lines batch lands whose lines
point at an invoice nobody delivered (referential integrity, a blocking
expectation of expectations/raw_invoice_lines.json). Run 2 must reject that
batch before writing it, fail the blocking `batch_expectations` check, skip
everything downstream (dbt, the gate, the dashboard, the exports), leave the previous
dashboard and at-risk exports byte for byte, and say on record which check failed, how many rows
and with which examples.
"""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import duckdb
import pytest

from billing_world.deliver import DeliveryConfig
from billing_world.simulate import WorldConfig
from tests.integration.conftest import generate_and_run

pytestmark = pytest.mark.integration

WORLD = WorldConfig(customers=120, months=6, start=dt.date(2024, 1, 1), seed=11, anomaly_rate=0.0)
DELIVERY = DeliveryConfig(batches_per_source=2, bad_row_rate=0.0, seed=11)
DEFECT_FILE = "invoice_lines/zz_orphan_lines.csv"
ORPHAN_INVOICE = "in_never_delivered"
DASHBOARD_KEY = dg.AssetKey(["publish", "kpi_dashboard"])


def test_a_structural_defect_stops_publication_and_keeps_the_last_good_dashboard(tmp_path, monkeypatch):
    from orchestration.definitions import build_definitions

    settings, ok = generate_and_run(tmp_path / "world", WORLD, DELIVERY)
    assert ok, "the clean world's first run must publish"
    folder = settings.output_dir / "dashboard"
    exports = settings.output_dir / "exports" / "at_risk"
    published = {path: path.read_bytes() for path in (folder / "index.html", folder / "dashboard_data.json")}
    published |= {path: path.read_bytes() for path in exports.iterdir()}
    assert exports / "manifest.json" in published

    # Two well-formed lines (every contract check passes row by row) on an unknown invoice.
    (settings.landing_dir / DEFECT_FILE).write_text(
        "line_id,invoice_id,description,quantity,unit_amount,amount,proration,period_start,period_end\n"
        f"li_orphan_1,{ORPHAN_INVOICE},Pro plan,1,10.00,10.00,false,2024-06-01,2024-07-01\n"
        f"li_orphan_2,{ORPHAN_INVOICE},Seats,3,5.00,15.00,false,2024-06-01,2024-07-01\n"
    )
    monkeypatch.setenv("BILLING_WAREHOUSE_PATH", str(settings.warehouse_path))  # the dbt step exports it
    job = build_definitions(settings).resolve_job_def("billing_pipeline")
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)

    assert not result.success
    evaluations = {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}
    blocked = evaluations[("raw/invoice_lines", "batch_expectations")]
    assert not blocked.passed and blocked.blocking
    assert DEFECT_FILE in json.dumps(blocked.metadata["rejected_files"].value)
    # nothing downstream ran: no model, no gate, no dashboard
    materialized = {event.asset_key for event in result.get_asset_materialization_events()}
    assert DASHBOARD_KEY not in materialized
    assert not {key for key in materialized if key.path[0] in {"staging", "intermediate", "marts"}}
    started = {event.step_key for event in result.all_events if event.event_type_value == "STEP_START"}
    assert "publish__kpi_dashboard" not in started
    assert {path: path.read_bytes() for path in published} == published
    assert set(exports.iterdir()) == {path for path in published if path.parent == exports}

    with duckdb.connect(str(settings.warehouse_path), read_only=True) as conn:
        # the batch was not written, and the manifest says why
        assert conn.execute(
            "select count(*) from raw.invoice_lines where invoice_id = ?", [ORPHAN_INVOICE]
        ).fetchall() == [(0,)]
        status, error = conn.execute(
            "select status, error from raw._load_manifest where batch_file = ?", [DEFECT_FILE]
        ).fetchall()[0]
        failures = conn.execute(
            "select check_name, failing_rows, examples from quality.check_runs"
            " where run_id = ? and layer = 'ingest' and target = ? and not passed and severity = 'block'",
            [result.run_id, DEFECT_FILE],
        ).fetchall()
    assert status == "rejected"
    assert DEFECT_FILE in error and "invoice_id" in error
    assert len(failures) == 1
    check_name, failing_rows, examples = failures[0]
    assert "invoice_id" in check_name
    assert failing_rows == 2
    assert ORPHAN_INVOICE in examples
