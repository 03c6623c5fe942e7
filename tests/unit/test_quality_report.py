"""The data-quality report, rendered from hand-inserted quality.check_runs rows."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import stat
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from orchestration.defs.quality.report_sensor import (
    quality_report_after_failure,
    quality_report_after_success,
    quality_report_job,
)
from orchestration.defs.resources import WarehouseResource
from orchestration.lib.check_runs import CheckRun, ensure_check_runs_table, record_check_runs
from orchestration.lib.quality_report import (
    load_quality_report,
    write_quality_report,
    write_quality_report_for_warehouse,
)
from orchestration.lib.settings import PROJECT_ROOT, Settings

SCRIPT = "<script>alert('x')</script>"

# Run A (older): ingest and dbt checks pass except not_null_segment; a mart check fails and warns.
RUN_A = [
    CheckRun("ingest", "raw/invoices", "expect_unique(invoice_id)", True, target="invoices/batch_1.csv"),
    CheckRun("dbt_test", "marts/kpi_churn", "unique_kpi_churn_month", True, target="column month"),
    CheckRun("dbt_test", "marts/kpi_churn", "not_null_segment", False, failing_rows=5, message="Got 5 results"),
    CheckRun("mart", "marts/kpi_dso", "expect_dso_in_range", False, severity="warn", failing_rows=1),
]
# Run B (latest): not_null_segment is fixed; the mart check did not run; three checks fail.
RUN_B = [
    CheckRun("ingest", "raw/invoices", "expect_unique(invoice_id)", True, target="invoices/batch_2.csv"),
    CheckRun(
        "ingest",
        "raw/invoices",
        "expect_unique(invoice_id)",
        False,
        target="invoices/batch_3.csv",
        rows_checked=120,
        failing_rows=2,
        examples=["inv_0007", "inv_0042"],
        message="2 invoice ids appear twice in the batch",
    ),
    CheckRun("dbt_test", "marts/kpi_churn", "unique_kpi_churn_month", True, target="column month"),
    CheckRun("dbt_test", "marts/kpi_churn", "not_null_segment", True, failing_rows=0),
    CheckRun(
        "dbt_test", "staging/stg_billing__customers", "relationships_country", False, severity="warn", failing_rows=4
    ),
    CheckRun(
        "anomaly_gate",
        "marts/billing_anomalies",
        "block_anomalies_within_revenue_share",
        False,
        target="2024-06",
        failing_rows=3,
        examples=[{"invoice_id": "inv_9", "note": "<b>bold</b> & co"}],
        message=f"share 7.5% > 5% | {SCRIPT}",
    ),
]
A_AT = dt.datetime(2026, 11, 1, 6, 0)
B_AT = dt.datetime(2026, 11, 2, 6, 0)


@pytest.fixture()
def warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as conn:
        for run_id, runs, at in (("run-a", RUN_A, A_AT), ("run-b", RUN_B, B_AT)):
            record_check_runs(conn, run_id, runs)
            conn.execute("update quality.check_runs set checked_at = ? where run_id = ?", [at, run_id])
    return path


def _read_only(path: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(path), read_only=True)


def _section(html_text: str, heading: str) -> str:
    start = html_text.index(f"<h2>{heading}")
    end = html_text.find("<h2>", start + 1)
    return html_text[start : end if end != -1 else None]


def test_the_summary_counts_the_latest_run_by_outcome_and_severity(warehouse):
    with _read_only(warehouse) as conn:
        report = load_quality_report(conn)
    latest = report.latest
    assert latest.run_id == "run-b"
    assert (latest.checks, latest.passed, latest.failed_block, latest.failed_warn) == (6, 3, 2, 1)
    assert report.by_layer == [
        ("ingest", "block", 1, 1),
        ("dbt_test", "block", 2, 0),
        ("dbt_test", "warn", 0, 1),
        ("anomaly_gate", "block", 0, 1),
    ]


def test_the_failing_checks_are_exactly_those_of_the_latest_run_blocking_first(warehouse):
    with _read_only(warehouse) as conn:
        report = load_quality_report(conn)
    assert [(f.layer, f.check_name, f.target, f.failing_rows) for f in report.failures] == [
        ("ingest", "expect_unique(invoice_id)", "invoices/batch_3.csv", 2),
        ("anomaly_gate", "block_anomalies_within_revenue_share", "2024-06", 3),
        ("dbt_test", "relationships_country", None, 4),
    ]
    assert report.failures[0].examples == ["inv_0007", "inv_0042"]
    # run A's not_null_segment failure was fixed in run B: it is not a failure of the latest run
    assert [f.asset for f in report.blocking_failures] == ["raw/invoices", "marts/billing_anomalies"]


def test_every_check_shows_its_latest_status_over_all_targets_of_its_latest_run(warehouse):
    with _read_only(warehouse) as conn:
        report = load_quality_report(conn)
    statuses = {(s.layer, s.check_name): s for s in report.statuses}
    assert len(report.statuses) == 6
    ingest = statuses[("ingest", "expect_unique(invoice_id)")]
    # batch_1 belongs to run A; in run B one of two batches failed, so the check failed
    assert (ingest.passed, ingest.targets, ingest.failing_rows) == (
        False,
        ["invoices/batch_2.csv", "invoices/batch_3.csv"],
        2,
    )
    assert (ingest.severity, ingest.run_id) == ("block", "run-b")
    assert statuses[("dbt_test", "not_null_segment")].passed is True
    # the mart check did not run in run B: its status is run A's
    mart = statuses[("mart", "expect_dso_in_range")]
    assert (mart.passed, mart.severity, mart.run_id, mart.checked_at) == (False, "warn", "run-a", A_AT)
    # failed first, in pipeline order; then passed
    assert [s.check_name for s in report.statuses] == [
        "expect_unique(invoice_id)",
        "relationships_country",
        "expect_dso_in_range",
        "block_anomalies_within_revenue_share",
        "not_null_segment",
        "unique_kpi_churn_month",
    ]


def test_the_history_counts_each_run_newest_first(warehouse):
    with _read_only(warehouse) as conn:
        report = load_quality_report(conn, history_runs=5)
    assert [(r.run_id, r.checks, r.passed, r.failed_block, r.failed_warn) for r in report.history] == [
        ("run-b", 6, 3, 2, 1),
        ("run-a", 4, 2, 1, 1),
    ]
    with _read_only(warehouse) as conn:
        assert [r.run_id for r in load_quality_report(conn, history_runs=1).history] == ["run-b"]


def test_the_html_lists_the_failing_checks_first_and_names_what_blocked_publication(warehouse, tmp_path):
    with _read_only(warehouse) as conn:
        path = write_quality_report(conn, tmp_path / "output")
    assert path == tmp_path / "output" / "reports" / "data_quality.html"
    page = path.read_text(encoding="utf-8")
    assert "Publication blocked by: raw/invoices: expect_unique(invoice_id) (invoices/batch_3.csv); " in page
    assert "marts/billing_anomalies: block_anomalies_within_revenue_share (2024-06)" in page
    failing = _section(page, "Failing checks of the latest run")
    assert failing.startswith("<h2>Failing checks of the latest run (3)</h2>")
    names = re.findall(r"<td><code>([^<]+)</code></td>", failing)
    assert names == ["expect_unique(invoice_id)", "block_anomalies_within_revenue_share", "relationships_country"]
    assert "inv_0042" in failing and "not_null_segment" not in failing
    assert "<h2>Latest status of every check (6)</h2>" in page
    history = _section(page, "History of the last 2 runs")
    assert history.index("run-b") < history.index("run-a")
    # self-contained: no scripts, stylesheets or images fetched from anywhere
    assert not re.search(r"<(script|link|img)\b|src=|href=", page)


def test_every_value_is_html_escaped(warehouse, tmp_path):
    with _read_only(warehouse) as conn:
        page = write_quality_report(conn, tmp_path).read_text(encoding="utf-8")
    assert SCRIPT not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "<b>bold</b>" not in page
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; co" in page


def test_the_markdown_summary_lists_the_failures_with_pipes_and_markup_escaped(warehouse, tmp_path):
    with _read_only(warehouse) as conn:
        write_quality_report(conn, tmp_path)
    markdown = (tmp_path / "reports" / "data_quality.md").read_text(encoding="utf-8")
    assert "6 checks, 3 passed, 2 failed and block, 1 failed and warn" in markdown
    table_rows = [line for line in markdown.splitlines() if line.startswith("| block") or line.startswith("| warn")]
    assert len(table_rows) == 3
    assert "share 7.5% &gt; 5% \\| &lt;script&gt;" in table_rows[1]


def test_a_missing_table_gives_a_report_that_says_no_check_ran_yet(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    duckdb.connect(str(path)).close()
    with _read_only(path) as conn:
        page = write_quality_report(conn, tmp_path / "output").read_text(encoding="utf-8")
    assert "the table quality.check_runs does not exist in this warehouse" in page
    markdown = (tmp_path / "output" / "reports" / "data_quality.md").read_text(encoding="utf-8")
    assert "does not exist" in markdown


def test_an_empty_table_gives_a_report_that_says_it_is_empty(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as conn:
        ensure_check_runs_table(conn)
    with _read_only(path) as conn:
        page = write_quality_report(conn, tmp_path).read_text(encoding="utf-8")
    assert "the table quality.check_runs is empty" in page


def test_a_missing_warehouse_gives_a_report_naming_it(tmp_path):
    path, report = write_quality_report_for_warehouse(tmp_path / "nowhere.duckdb", tmp_path / "output")
    assert report.latest is None
    assert f"the warehouse {tmp_path / 'nowhere.duckdb'} does not exist" in path.read_text(encoding="utf-8")


def test_the_report_replaces_the_previous_one_without_leaving_temporary_files(warehouse, tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "data_quality.html").write_text("stale")
    with _read_only(warehouse) as conn:
        write_quality_report(conn, tmp_path)
    assert sorted(p.name for p in reports.iterdir()) == ["data_quality.html", "data_quality.md"]
    assert "run-b" in (reports / "data_quality.html").read_text(encoding="utf-8")
    # readable like any file written under the current umask, not private like a mkstemp file
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((reports / "data_quality.html").stat().st_mode) == 0o666 & ~umask


def test_examples_stored_as_json_objects_come_back_as_objects(warehouse):
    with _read_only(warehouse) as conn:
        report = load_quality_report(conn)
    gate = report.failures[1]
    assert gate.examples == [{"invoice_id": "inv_9", "note": "<b>bold</b> & co"}]
    with _read_only(warehouse) as conn:
        stored = conn.execute("select examples from quality.check_runs where layer = 'anomaly_gate'").fetchone()[0]
    assert json.loads(stored) == gate.examples


# ------------------------------------------------ under Dagster: sensors and the report job


@dg.op
def _noop() -> None:
    pass


@dg.op
def _blocking_check_failed() -> None:
    raise RuntimeError("a blocking check failed")


@dg.job(name="billing_pipeline")
def _pipeline_that_succeeds():
    _noop()


@dg.job(name="billing_pipeline")
def _pipeline_that_fails():
    _blocking_check_failed()


@pytest.mark.parametrize(
    ("sensor", "job"),
    [(quality_report_after_success, _pipeline_that_succeeds), (quality_report_after_failure, _pipeline_that_fails)],
)
def test_a_finished_pipeline_run_passed_or_failed_requests_one_report_run_keyed_by_it(sensor, job):
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(instance=instance, raise_on_error=False)
        event = result.get_run_success_event() if result.success else result.get_run_failure_event()
        context = dg.build_run_status_sensor_context(
            sensor_name=sensor.name, dagster_instance=instance, dagster_run=result.dagster_run, dagster_event=event
        )
        request = sensor(context)
    assert isinstance(request, dg.RunRequest)
    assert request.run_key == f"quality_report_after_{result.run_id}"
    assert request.tags["quality_report_for_job"] == "billing_pipeline"
    assert sensor.job_name == "quality_report"


def test_a_report_run_does_not_request_another_report(tmp_path):
    resources = {
        "warehouse": WarehouseResource(
            warehouse_path=str(tmp_path / "none.duckdb"), landing_dir=str(tmp_path), output_dir=str(tmp_path)
        )
    }
    with dg.instance_for_test() as instance:
        result = quality_report_job.execute_in_process(instance=instance, resources=resources, raise_on_error=False)
        context = dg.build_run_status_sensor_context(
            sensor_name=quality_report_after_success.name,
            dagster_instance=instance,
            dagster_run=result.dagster_run,
            dagster_event=result.get_run_success_event(),
        )
        assert isinstance(quality_report_after_success(context), dg.SkipReason)


def test_the_report_job_writes_the_report_from_the_warehouse(warehouse, tmp_path):
    resources = {
        "warehouse": WarehouseResource(
            warehouse_path=str(warehouse), landing_dir=str(tmp_path), output_dir=str(tmp_path / "output")
        )
    }
    result = quality_report_job.execute_in_process(resources=resources)
    assert result.success
    page = (tmp_path / "output" / "reports" / "data_quality.html").read_text(encoding="utf-8")
    assert "Publication blocked by: raw/invoices" in page


# ------------------------------------------------ docs/data_quality.md: the SQL examples run


def _doc_queries() -> list[str]:
    text = (PROJECT_ROOT / "docs" / "data_quality.md").read_text(encoding="utf-8")
    return re.findall(r"```sql\n(.*?)```", text, flags=re.DOTALL)


def test_every_sql_example_of_the_data_quality_page_runs_on_the_table(warehouse):
    queries = _doc_queries()
    assert len(queries) == 6
    with _read_only(warehouse) as conn:
        for query in queries:
            conn.execute(query).fetchall()


def test_the_documented_latest_failures_query_returns_the_latest_runs_failures(warehouse):
    with _read_only(warehouse) as conn:
        rows = conn.execute(_doc_queries()[0]).fetchall()
        examples = conn.execute(_doc_queries()[4]).fetchall()
    assert [(layer, name, severity) for layer, _, name, _, severity, _, _ in rows] == [
        ("anomaly_gate", "block_anomalies_within_revenue_share", "block"),
        ("ingest", "expect_unique(invoice_id)", "block"),
        ("dbt_test", "relationships_country", "warn"),
    ]
    # one row per kept example: 2 for the rejected batch, 1 for the gate
    kept = sorted(json.dumps(json.loads(example), sort_keys=True) for *_, example in examples)
    expected = ["inv_0007", "inv_0042", {"invoice_id": "inv_9", "note": "<b>bold</b> & co"}]
    assert kept == sorted(json.dumps(value, sort_keys=True) for value in expected)


# ------------------------------------------------ the CLI's run summary


def test_the_cli_summary_prints_the_report_path_and_what_blocked_publication(warehouse, tmp_path, capsys):
    from orchestration.cli import print_quality_report

    settings = Settings(tmp_path / "landing", warehouse, tmp_path / "output")
    print_quality_report(settings, "run-b")
    out = capsys.readouterr().out.splitlines()
    html_path = tmp_path / "output" / "reports" / "data_quality.html"
    assert out == [
        f"Data-quality report (6 checks, 2 failed and block, 1 warn): {html_path}",
        "  publication blocked by raw/invoices: expect_unique(invoice_id) (2 failing)",
        "  publication blocked by marts/billing_anomalies: block_anomalies_within_revenue_share (3 failing)",
    ]
    assert html_path.exists()


def test_the_cli_summary_says_when_the_run_recorded_no_check(warehouse, tmp_path, capsys):
    from orchestration.cli import print_quality_report

    print_quality_report(Settings(tmp_path / "landing", warehouse, tmp_path / "output"), "run-that-stopped-early")
    first_line = capsys.readouterr().out.splitlines()[0]
    assert first_line.startswith("Data-quality report (this run recorded no checks; latest run run-b): ")
