"""The KPI dashboard end to end: published after the anomaly gate, offline, fed by the marts;
and not published (the previous one kept byte for byte) when the gate fails."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from billing_world.deliver import DeliveryConfig
from billing_world.simulate import WorldConfig
from orchestration.lib.policy import POLICY_PATH_VARIABLE, load_policy, write_policy_variant
from tests.integration.conftest import generate_and_run

pytestmark = pytest.mark.integration

GATE_CHECK = ("marts/billing_anomalies", "block_anomalies_within_revenue_share")
DASHBOARD_KEY = dg.AssetKey(["publish", "kpi_dashboard"])

# Small, and seeded so that its as-of month has block anomalies (asserted below).
GATE_WORLD = WorldConfig(customers=150, months=8, start=dt.date(2024, 1, 1), seed=5, anomaly_rate=0.03)
GATE_DELIVERY = DeliveryConfig(batches_per_source=2, bad_row_rate=0.0, seed=5)


def _read_only(settings):
    return duckdb.connect(str(settings.warehouse_path), read_only=True)


def _dashboard_files(settings) -> tuple[Path, Path]:
    folder = settings.output_dir / "dashboard"
    return folder / "index.html", folder / "dashboard_data.json"


def test_the_dashboard_is_published_offline_after_the_gate_passes(kpi_world):
    assert kpi_world["ok"], "the KPI world's pipeline run failed"
    page, data_file = _dashboard_files(kpi_world["settings"])
    html = page.read_text(encoding="utf-8")
    # offline: plotly.js inline, nothing loaded from anywhere
    assert not re.search(r"<script[^>]*\bsrc\s*=", html, flags=re.IGNORECASE)
    assert not re.search(r"<link[^>]*\bhref\s*=", html, flags=re.IGNORECASE)
    assert not re.search(r"@import|url\(\s*['\"]?https?:", html)
    assert "Plotly.newPlot" in html
    data = json.loads(data_file.read_text())
    with _read_only(kpi_world["settings"]) as conn:
        latest = conn.execute("select max(month) from marts.kpi_churn").fetchall()[0][0]
        mrr = conn.execute(
            "select mrr_end_usd from marts.kpi_churn where month = ? and segment_dimension = 'all'", [latest]
        ).fetchall()[0][0]
        gate_rows = conn.execute(
            "select passed, target from quality.check_runs where layer = 'anomaly_gate' order by checked_at"
        ).fetchall()
    assert data["as_of_month"] == latest.isoformat()
    assert next(t for t in data["tiles"] if t["key"] == "mrr")["value"] == pytest.approx(float(mrr))
    # the gate ran on that month and passed (the last row: the run that published)
    assert gate_rows[-1] == (True, f"month {latest:%Y-%m}")


def test_the_anomalies_of_the_mart_flow_into_the_dashboard_data(kpi_world):
    assert kpi_world["ok"]
    _, data_file = _dashboard_files(kpi_world["settings"])
    data = json.loads(data_file.read_text())
    with _read_only(kpi_world["settings"]) as conn:
        expected = {
            (anomaly_type, severity): (count, float(usd))
            for anomaly_type, severity, count, usd in conn.execute(
                """
                select anomaly_type, severity, count(*), sum(amount_at_stake_usd)
                from marts.billing_anomalies
                where date_trunc('month', detected_at) = (select max(month) from marts.kpi_churn)
                group by all
                """
            ).fetchall()
        }
        invoice_ids = {
            row[0]
            for row in conn.execute(
                """
                select invoice_id from marts.billing_anomalies
                where date_trunc('month', detected_at) = (select max(month) from marts.kpi_churn)
                """
            ).fetchall()
        }
    assert expected, "the KPI world should have anomalies in its latest month"
    shown = {
        (row["anomaly_type"], row["severity"]): (row["anomalies"], row["amount_at_stake_usd"])
        for row in data["anomalies"]["by_type"]
    }
    assert shown.keys() == expected.keys()
    for key, (count, usd) in expected.items():
        assert shown[key][0] == count, key
        assert shown[key][1] == pytest.approx(usd, abs=1e-6), key
    top = data["anomalies"]["top_invoices"]
    assert top and {row["invoice_id"] for row in top} <= invoice_ids
    assert [row["amount_at_stake_usd"] for row in top] == sorted(
        (row["amount_at_stake_usd"] for row in top), reverse=True
    )


def test_a_failing_gate_stops_the_dashboard_and_keeps_the_previous_one(tmp_path, monkeypatch):
    from orchestration.definitions import build_definitions

    # run 1: the shipped policy; the gate passes and the dashboard is published
    settings, ok = generate_and_run(tmp_path / "world", GATE_WORLD, GATE_DELIVERY)
    assert ok
    page, data_file = _dashboard_files(settings)
    before = {page: page.read_bytes(), data_file: data_file.read_bytes()}
    with _read_only(settings) as conn:
        (share_message,) = conn.execute(
            "select message from quality.check_runs where layer = 'anomaly_gate' and passed"
        ).fetchall()[0]
        month = conn.execute("select max(month) from marts.kpi_churn").fetchall()[0][0]
        block_usd = conn.execute(
            """
            select coalesce(sum(amount_at_stake_usd), 0) from marts.billing_anomalies
            where severity = 'block' and date_trunc('month', detected_at) = ?
            """,
            [month],
        ).fetchall()[0][0]
        revenue = conn.execute(
            "select credit_sales_usd from marts.kpi_dso where month = ? and segment_dimension = 'all'", [month]
        ).fetchall()[0][0]
    assert block_usd > 0, f"the gate world needs block anomalies in {month} for this test; pick another seed"
    share = float(block_usd) / float(revenue)
    assert share <= load_policy()["anomalies"]["gate"]["max_block_share_of_revenue"], share_message

    # run 2: the same warehouse under a policy whose limit is half the measured share
    monkeypatch.setenv(
        POLICY_PATH_VARIABLE,
        str(
            write_policy_variant(
                tmp_path / "strict.yml", {"anomalies": {"gate": {"max_block_share_of_revenue": share / 2}}}
            )
        ),
    )
    monkeypatch.setenv("BILLING_WAREHOUSE_PATH", str(settings.warehouse_path))  # the dbt step exports it
    job = build_definitions(settings).resolve_job_def("billing_pipeline")
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)

    assert not result.success
    evaluations = {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}
    gate = evaluations[GATE_CHECK]
    assert not gate.passed
    assert gate.metadata["share_of_revenue"].value == pytest.approx(share)
    assert gate.metadata["max_block_share_of_revenue"].value == pytest.approx(share / 2)
    assert gate.metadata["revenue_usd"].value == pytest.approx(float(revenue))
    materialized = {event.asset_key for event in result.get_asset_materialization_events()}
    assert dg.AssetKey(["marts", "billing_anomalies"]) in materialized  # the models were rebuilt
    assert DASHBOARD_KEY not in materialized
    started = {event.step_key for event in result.all_events if event.event_type_value == "STEP_START"}
    assert "publish__kpi_dashboard" not in started
    # the previous dashboard is untouched, byte for byte
    assert {path: path.read_bytes() for path in before} == before
    # and the failure is on record, for that run, with the anomalies behind it
    with _read_only(settings) as conn:
        recorded = conn.execute(
            "select passed, severity, failing_rows, examples, message from quality.check_runs"
            " where layer = 'anomaly_gate' and run_id = ?",
            [result.run_id],
        ).fetchall()
    assert len(recorded) == 1
    passed, severity, failing_rows, examples, message = recorded[0]
    assert (passed, severity) == (False, "block")
    assert failing_rows > 0
    assert json.loads(examples)[0]["amount_at_stake_usd"] > 0
    assert "ABOVE the limit" in message
