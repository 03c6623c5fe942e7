"""The dashboard's numbers, page and publication on a tiny hand-built warehouse.

Months: January to March 2024 (March is the as-of month). Segments: `all`, and
company_size smb / enterprise. Every expected number below is worked out from
the rows inserted here.
"""

import datetime as dt
import json
import re

import duckdb
import pytest

from dashboards import publish as publish_module
from dashboards.data import DashboardDataError, as_of_month, build_dashboard_data
from dashboards.publish import DATA_NAME, PAGE_NAME, publish_dashboard
from dashboards.render import format_change, format_value, render_dashboard
from orchestration.lib import atomic_files
from orchestration.lib.check_runs import ensure_check_runs_table

GENERATED_AT = dt.datetime(2024, 4, 2, 7, 0, 0)


def _create(conn, table: str, columns: str, rows: str) -> None:
    conn.execute(f"create table {table} as select * from (values {rows}) as t({columns})")


@pytest.fixture()
def warehouse():
    conn = duckdb.connect()
    conn.execute("create schema marts")
    conn.execute("create schema raw")
    keys = "month, segment_dimension, segment_value"
    _create(
        conn,
        "marts.kpi_invoice_error_rate",
        f"{keys}, error_rate_per_100",
        """
        (date '2024-01-01', 'all', 'all', 5.00), (date '2024-02-01', 'all', 'all', 4.00),
        (date '2024-03-01', 'all', 'all', 2.50),
        (date '2024-02-01', 'company_size', 'smb', 6.00), (date '2024-03-01', 'company_size', 'smb', 3.00),
        (date '2024-03-01', 'company_size', 'enterprise', 1.00)
        """,
    )
    _create(
        conn,
        "marts.kpi_dso",
        f"{keys}, credit_sales_usd, dso_days, ar_end_usd, ar_current_usd, ar_1_30_usd, ar_31_60_usd, ar_61_90_usd, "
        "ar_90_plus_usd",
        """
        (date '2024-01-01', 'all', 'all', 900.0, 28.0, 800.0, 800.0, 0.0, 0.0, 0.0, 0.0),
        (date '2024-02-01', 'all', 'all', 1000.0, 30.0, 900.0, 700.0, 200.0, 0.0, 0.0, 0.0),
        (date '2024-03-01', 'all', 'all', 1100.0, 33.0, 1000.0, 600.0, 200.0, 100.0, 50.0, 50.0),
        (date '2024-03-01', 'company_size', 'smb', 400.0, 20.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
        (date '2024-03-01', 'company_size', 'enterprise', 700.0, 40.0, 1000.0, 600.0, 200.0, 100.0, 50.0, 50.0)
        """,
    )
    _create(
        conn,
        "marts.kpi_churn",
        f"{keys}, logo_churn_rate, net_revenue_retention, mrr_end_usd",
        """
        (date '2024-01-01', 'all', 'all', 0.06, 0.99, 9800.0),
        (date '2024-02-01', 'all', 'all', 0.05, 1.00, 10000.0),
        (date '2024-03-01', 'all', 'all', 0.04, 1.02, 10500.0),
        (date '2024-03-01', 'company_size', 'smb', 0.08, 0.97, 2500.0),
        (date '2024-03-01', 'company_size', 'enterprise', 0.00, 1.04, 8000.0)
        """,
    )
    # CLV only from March: no previous month to compare with
    _create(
        conn,
        "marts.kpi_clv",
        f"{keys}, clv_sbg_usd",
        "(date '2024-03-01', 'all', 'all', 20000.0), (date '2024-03-01', 'company_size', 'smb', 9000.0)",
    )
    _create(
        conn,
        "marts.billing_anomalies",
        "anomaly_id, anomaly_type, severity, invoice_id, payment_id, customer_id, expected, actual, "
        "amount_at_stake_usd, detected_at",
        """
        ('a1', 'duplicate_charge', 'block', 'in_1', 'p_1', 'c_1', '100.00', '400.00', 300.00,
         timestamp '2024-03-05 10:00:00'),
        ('a2', 'duplicate_charge', 'block', 'in_2', null, 'c_2', '1', '2', 100.00, timestamp '2024-03-31 23:59:59'),
        ('a3', 'tax_error', 'warn', 'in_1', null, 'c_1', '21.00', '15.75', 5.25, timestamp '2024-03-05 00:00:00'),
        ('a4', 'price_mismatch', 'block', 'in_4', null, 'c_4', '50.00', '60.00', 10.00,
         timestamp '2024-02-10 00:00:00'),
        ('a5', 'missed_invoice', 'warn', null, null, 'c_5', '80.00', '0', 80.00, timestamp '2024-03-12 00:00:00')
        """,
    )
    _create(
        conn,
        "raw._load_manifest",
        "status, rows_loaded, rows_quarantined, loaded_at",
        """
        ('loaded', 100, 3, timestamp '2024-04-01 06:00:00'),
        ('duplicate_content', 0, 0, timestamp '2024-04-01 06:00:01'),
        ('unreadable', 0, 0, timestamp '2024-04-02 06:00:00')
        """,
    )
    ensure_check_runs_table(conn)
    conn.execute(
        """
        insert into quality.check_runs (run_id, checked_at, layer, asset, check_name, passed, severity, message)
        values
            ('run_old', timestamp '2024-04-01 06:05:00', 'mart', 'marts/kpi_dso', 'not_null', false, 'block', 'old'),
            ('run_new', timestamp '2024-04-02 06:05:00', 'mart', 'marts/kpi_dso', 'not_null', true, 'block', null),
            ('run_new', timestamp '2024-04-02 06:05:01', 'anomaly_gate', 'marts/billing_anomalies', 'gate', true,
             'block', 'within the limit'),
            ('run_new', timestamp '2024-04-02 06:05:02', 'ingest', 'raw/invoices', 'freshness', false, 'warn',
             'no batch for 2 days')
        """
    )
    yield conn
    conn.close()


def _tile(data, key):
    return next(tile for tile in data["tiles"] if tile["key"] == key)


def test_the_as_of_month_is_the_latest_month_of_the_kpi_marts(warehouse):
    assert as_of_month(warehouse) == dt.date(2024, 3, 1)
    warehouse.execute("insert into marts.kpi_churn values (date '2024-04-01', 'all', 'all', 0.03, 1.01, 10600.0)")
    assert as_of_month(warehouse) == dt.date(2024, 4, 1)


def test_tiles_compare_the_as_of_month_with_the_month_before(warehouse):
    data = build_dashboard_data(warehouse, GENERATED_AT)
    assert data["as_of_month"] == "2024-03-01"
    assert data["previous_month"] == "2024-02-01"
    assert [tile["key"] for tile in data["tiles"]] == ["invoice_error_rate", "dso", "logo_churn", "nrr", "mrr", "clv"]

    errors = _tile(data, "invoice_error_rate")  # 4.00 -> 2.50 per 100
    assert (errors["value"], errors["previous"]) == (2.50, 4.00)
    assert errors["change"] == pytest.approx(-1.50)
    assert errors["relative_change"] == pytest.approx(-0.375)  # -1.5 / 4
    dso = _tile(data, "dso")  # 30 -> 33 days
    assert dso["change"] == pytest.approx(3.0)
    assert dso["relative_change"] == pytest.approx(0.10)
    churn = _tile(data, "logo_churn")  # 5 % -> 4 %: one percentage point down
    assert churn["change"] == pytest.approx(-0.01)
    nrr = _tile(data, "nrr")  # 100 % -> 102 %
    assert nrr["change"] == pytest.approx(0.02)
    mrr = _tile(data, "mrr")  # 10,000 -> 10,500
    assert (mrr["value"], mrr["change"], mrr["relative_change"]) == (10500.0, 500.0, pytest.approx(0.05))
    clv = _tile(data, "clv")  # no February row
    assert (clv["value"], clv["previous"], clv["change"], clv["relative_change"]) == (20000.0, None, None, None)


def test_trends_hold_every_month_for_every_segment_with_gaps_as_null(warehouse):
    data = build_dashboard_data(warehouse, GENERATED_AT)
    assert data["months"] == ["2024-01-01", "2024-02-01", "2024-03-01"]
    assert data["segments"] == {"all": ["all"], "company_size": ["smb", "enterprise"]}
    errors = data["trends"]["invoice_error_rate"]["by_segment"]
    assert errors["all"]["all"] == [5.00, 4.00, 2.50]
    assert errors["company_size"]["smb"] == [None, 6.00, 3.00]
    assert errors["company_size"]["enterprise"] == [None, None, 1.00]
    assert data["trends"]["mrr"]["by_segment"]["company_size"]["enterprise"] == [None, None, 8000.0]


def test_ar_aging_keeps_the_buckets_and_the_overdue_share(warehouse):
    ar = build_dashboard_data(warehouse, GENERATED_AT)["ar_aging"]
    march = {column: series[-1] for column, series in ar["by_segment"]["all"]["all"].items()}
    assert march["ar_current_usd"] == 600.0
    assert march["ar_90_plus_usd"] == 50.0
    # overdue = 200 + 100 + 50 + 50 = 400 of 1,000; February 200 of 900; January none of 800
    assert ar["by_segment"]["all"]["all"]["overdue_share"] == pytest.approx([0.0, 200 / 900, 0.4])
    # no AR at all is no share, not 0 %
    assert ar["by_segment"]["company_size"]["smb"]["overdue_share"] == [None, None, None]


def test_the_anomaly_panel_covers_the_as_of_month_by_type_and_the_whole_trend(warehouse):
    anomalies = build_dashboard_data(warehouse, GENERATED_AT)["anomalies"]
    assert anomalies["month"] == "2024-03-01"
    assert anomalies["by_type"] == [
        {
            "anomaly_type": "duplicate_charge",
            "severity": "block",
            "anomalies": 2,
            "invoices": 2,
            "amount_at_stake_usd": 400.0,  # 300 + 100
        },
        # a missed invoice has no invoice: it counts here, not among the top invoices
        {
            "anomaly_type": "missed_invoice",
            "severity": "warn",
            "anomalies": 1,
            "invoices": 0,
            "amount_at_stake_usd": 80.0,
        },
        {"anomaly_type": "tax_error", "severity": "warn", "anomalies": 1, "invoices": 1, "amount_at_stake_usd": 5.25},
    ]
    assert anomalies["totals"] == {
        "block": {"anomalies": 2, "amount_at_stake_usd": 400.0},
        "warn": {"anomalies": 2, "amount_at_stake_usd": 85.25},  # 80 + 5.25
    }
    assert anomalies["trend"] == [
        {"month": "2024-02-01", "severity": "block", "anomalies": 1, "amount_at_stake_usd": 10.0},
        {"month": "2024-03-01", "severity": "block", "anomalies": 2, "amount_at_stake_usd": 400.0},
        {"month": "2024-03-01", "severity": "warn", "anomalies": 2, "amount_at_stake_usd": 85.25},
    ]
    # in_1 has a duplicate payment (300) and a tax error (5.25): one row, 305.25, block
    top = anomalies["top_invoices"]
    assert [row["invoice_id"] for row in top] == ["in_1", "in_2"]
    assert top[0]["anomaly_types"] == ["duplicate_charge", "tax_error"]
    assert (top[0]["severity"], top[0]["anomalies"], top[0]["amount_at_stake_usd"]) == ("block", 2, 305.25)
    assert top[0]["detected_at"] == "2024-03-05 00:00:00"


def test_the_quality_strip_has_the_last_load_and_the_latest_check_run(warehouse):
    quality = build_dashboard_data(warehouse, GENERATED_AT)["quality"]
    assert quality["loads"] == {
        "available": True,
        "last_load_at": "2024-04-02 06:00:00",
        "batches_loaded": 1,
        "rows_loaded": 100,
        "rows_quarantined": 3,
        "unreadable_files": 1,
    }
    checks = quality["checks"]
    # run_new only: the old failure is history
    assert (checks["checks_run"], checks["passed"], checks["failed"], checks["blocking_failed"]) == (3, 2, 1, 0)
    assert checks["last_checked_at"] == "2024-04-02 06:05:02"
    assert [failure["check_name"] for failure in checks["failures"]] == ["freshness"]
    assert checks["anomaly_gate"] == {"passed": True, "message": "within the limit"}


def test_without_a_check_history_the_strip_says_so(warehouse):
    warehouse.execute("drop table quality.check_runs")
    data = build_dashboard_data(warehouse, GENERATED_AT)
    assert data["quality"]["checks"] == {"available": False}
    assert "no check history yet" in render_dashboard(data)


def test_a_missing_mart_is_named_in_the_error(warehouse):
    warehouse.execute("drop table marts.kpi_clv")
    with pytest.raises(DashboardDataError, match="marts.kpi_clv"):
        build_dashboard_data(warehouse, GENERATED_AT)


def test_the_data_is_plain_json(warehouse):
    data = build_dashboard_data(warehouse, GENERATED_AT)
    assert json.loads(json.dumps(data, allow_nan=False)) == data


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (10500.0, "usd", "$10.5k"),
        (2_245_238.08, "usd", "$2.25M"),
        (4321.0, "usd", "$4,321"),
        (0.0539, "percent", "5.4%"),
        (33.04, "days", "33.0 days"),
        (2.5, "per_100", "2.50 per 100"),
        (None, "usd", "n/a"),
    ],
)
def test_values_are_formatted_for_people(value, unit, text):
    assert format_value(value, unit) == text


def test_changes_carry_their_sign_and_unit():
    assert format_change(-0.01, -0.2, "percent") == "-1.0 pp"
    assert format_change(3.0, 0.1, "days") == "+3.0 days"
    assert format_change(500.0, 0.05, "usd") == "+$500 (+5.0%)"
    assert format_change(-1.5, -0.375, "per_100") == "-1.50 per 100"
    assert format_change(None, None, "usd") == "no previous month"


def test_the_page_is_offline_and_shows_the_tiles_and_a_selector_per_dimension(warehouse):
    page = render_dashboard(build_dashboard_data(warehouse, GENERATED_AT))
    assert not re.search(r"<script[^>]*\bsrc=", page)
    assert not re.search(r"<link[^>]*\bhref=", page)
    assert page.count("Plotly.newPlot") == 10  # 6 trends, 2 anomaly charts, 2 AR charts
    assert "<option value='all'>All customers</option>" in page
    assert "<option value='company_size'>Company size</option>" in page
    assert "$10.5k" in page and "+$500 (+5.0%)" in page  # MRR tile
    assert "-1.0 pp" in page  # churn tile
    assert "Billing and retention KPIs, Mar 2024" in page
    assert "in_1" in page  # top offending invoice
    assert "Publication gate: within the limit." in page  # the gate's message from quality.check_runs
    assert "1 unreadable files" in page and "2 passed, 1 failed" in page  # the quality strip


def test_publishing_writes_both_files(warehouse, tmp_path):
    published = publish_dashboard(warehouse, tmp_path, GENERATED_AT)
    assert published.page == tmp_path / "dashboard" / PAGE_NAME
    assert json.loads((tmp_path / "dashboard" / DATA_NAME).read_text())["as_of_month"] == "2024-03-01"
    assert sorted(p.name for p in (tmp_path / "dashboard").iterdir()) == [DATA_NAME, PAGE_NAME]


def test_a_failed_build_leaves_the_previous_dashboard_untouched(warehouse, tmp_path, monkeypatch):
    publish_dashboard(warehouse, tmp_path, GENERATED_AT)
    folder = tmp_path / "dashboard"
    before = {name: (folder / name).read_bytes() for name in (PAGE_NAME, DATA_NAME)}

    def broken_render(data):
        raise RuntimeError("rendering failed")

    monkeypatch.setattr(publish_module, "render_dashboard", broken_render)
    warehouse.execute("update marts.kpi_churn set mrr_end_usd = 1 where month = date '2024-03-01'")
    with pytest.raises(RuntimeError, match="rendering failed"):
        publish_dashboard(warehouse, tmp_path, GENERATED_AT)
    assert {name: (folder / name).read_bytes() for name in before} == before
    assert sorted(p.name for p in folder.iterdir()) == [DATA_NAME, PAGE_NAME]  # no temporary files left


@pytest.mark.parametrize("failing_call", [1, 2, 3], ids=["page write", "data write", "link swap"])
def test_a_failed_write_leaves_no_half_file(warehouse, tmp_path, monkeypatch, failing_call):
    """Publishing renames three times (the page, the data, then the `dashboard` link): a failure
    at any of them leaves the previous dashboard published and nothing half-made beside it."""
    publish_dashboard(warehouse, tmp_path, GENERATED_AT)
    folder = tmp_path / "dashboard"
    before = {name: (folder / name).read_bytes() for name in (PAGE_NAME, DATA_NAME)}
    entries_before = sorted(p.name for p in tmp_path.iterdir())
    real_replace = atomic_files.os.replace
    calls = []

    def replace_failing_once(source, target):
        calls.append(target)
        if len(calls) == failing_call:
            raise OSError("disk full")
        return real_replace(source, target)

    monkeypatch.setattr(atomic_files.os, "replace", replace_failing_once)
    warehouse.execute("update marts.kpi_churn set mrr_end_usd = 1 where month = date '2024-03-01'")
    with pytest.raises(OSError, match="disk full"):
        publish_dashboard(warehouse, tmp_path, GENERATED_AT)
    monkeypatch.setattr(atomic_files.os, "replace", real_replace)
    assert len(calls) == failing_call
    assert {name: (folder / name).read_bytes() for name in before} == before
    assert sorted(p.name for p in folder.iterdir()) == [DATA_NAME, PAGE_NAME]
    assert sorted(p.name for p in tmp_path.iterdir()) == entries_before  # no version or link left over


def test_a_month_without_anomalies_renders_an_empty_panel_that_says_so(warehouse):
    warehouse.execute("delete from marts.billing_anomalies where detected_at >= timestamp '2024-03-01'")
    data = build_dashboard_data(warehouse, GENERATED_AT)
    assert data["anomalies"]["by_type"] == []
    assert data["anomalies"]["totals"]["block"] == {"anomalies": 0, "amount_at_stake_usd": 0.0}
    page = render_dashboard(data)
    assert "No anomalies detected in Mar 2024." in page
