"""dbt's run_results.json + manifest become quality.check_runs rows (layer dbt_test)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest

from orchestration.defs.resources import WarehouseResource
from orchestration.defs.transform.dbt_assets import BUILD_OP, _dbt_build
from orchestration.lib.dbt_results import dbt_test_check_runs

PROJECT = "billing_analytics"
KPI_CHURN = f"model.{PROJECT}.kpi_churn"
FCT_INVOICES = f"model.{PROJECT}.fct_invoices"
RAW_CUSTOMERS = f"source.{PROJECT}.raw.customers"


def _model(name: str, schema: str) -> dict:
    return {"resource_type": "model", "name": name, "package_name": PROJECT, "config": {"schema": schema}}


def _test(name: str, depends_on: list[str], severity: str = "ERROR", attached: str | None = None, **extra) -> dict:
    node = {
        "resource_type": "test",
        "name": name,
        "package_name": PROJECT,
        "depends_on": {"macros": [], "nodes": depends_on},
        "attached_node": attached,
        "config": {"severity": severity, "meta": {}},
    }
    node.update(extra)
    return node


MANIFEST = {
    "metadata": {"project_name": PROJECT},
    "nodes": {
        KPI_CHURN: _model("kpi_churn", "marts"),
        FCT_INVOICES: _model("fct_invoices", "marts"),
        f"test.{PROJECT}.unique_kpi_churn_month": _test(
            "unique_kpi_churn_month", [KPI_CHURN], attached=KPI_CHURN, column_name="month"
        ),
        f"test.{PROJECT}.not_null_kpi_churn_segment": _test(
            "not_null_kpi_churn_segment", [KPI_CHURN], attached=KPI_CHURN, column_name="segment"
        ),
        f"test.{PROJECT}.relationships_fct_invoices_customer_id": _test(
            "relationships_fct_invoices_customer_id",
            [FCT_INVOICES, KPI_CHURN],
            severity="warn",
            attached=FCT_INVOICES,
            column_name="customer_id",
        ),
        f"test.{PROJECT}.accepted_values_fct_invoices_status": _test(
            "accepted_values_fct_invoices_status", [FCT_INVOICES], severity="warn", attached=FCT_INVOICES
        ),
        f"test.{PROJECT}.assert_churn_bridge_closes": _test("assert_churn_bridge_closes", [KPI_CHURN]),
        f"test.{PROJECT}.assert_invoices_match_churn": _test("assert_invoices_match_churn", [KPI_CHURN, FCT_INVOICES]),
        f"test.{PROJECT}.assert_ref_in_meta": _test(
            "assert_ref_in_meta",
            [KPI_CHURN, FCT_INVOICES],
            config={"severity": "ERROR", "meta": {"dagster": {"ref": {"name": "fct_invoices"}}}},
        ),
        f"test.{PROJECT}.source_not_null_raw_customers_country": _test(
            "source_not_null_raw_customers_country", [RAW_CUSTOMERS], attached=RAW_CUSTOMERS, column_name="country"
        ),
        f"test.{PROJECT}.not_null_fct_invoices_invoice_id": _test(
            "not_null_fct_invoices_invoice_id", [FCT_INVOICES], attached=FCT_INVOICES, column_name="invoice_id"
        ),
    },
    "sources": {
        RAW_CUSTOMERS: {"resource_type": "source", "source_name": "raw", "name": "customers", "config": {}},
    },
    "unit_tests": {
        f"unit_test.{PROJECT}.kpi_churn.churn_counts_cancellations": {
            "resource_type": "unit_test",
            "name": "churn_counts_cancellations",
            "model": "kpi_churn",
            "depends_on": {"macros": [], "nodes": [KPI_CHURN]},
            "config": {"meta": {}},
        }
    },
}


def _result(unique_id: str, status: str, failures: int | None = 0, message: str | None = None, seconds=0.1) -> dict:
    return {
        "unique_id": unique_id,
        "status": status,
        "failures": failures,
        "message": message,
        "execution_time": seconds,
        "timing": [],
    }


RUN_RESULTS = {
    "results": [
        _result(KPI_CHURN, "success", failures=None, message="OK"),
        _result(f"test.{PROJECT}.unique_kpi_churn_month", "pass", seconds=0.25),
        _result(
            f"test.{PROJECT}.not_null_kpi_churn_segment", "fail", 3, "Got 3 results, configured to fail if != 0", 0.5
        ),
        _result(
            f"test.{PROJECT}.relationships_fct_invoices_customer_id",
            "warn",
            2,
            "Got 2 results, configured to warn if != 0",
        ),
        _result(f"test.{PROJECT}.accepted_values_fct_invoices_status", "pass"),
        _result(
            f"test.{PROJECT}.assert_churn_bridge_closes",
            "error",
            None,
            "Runtime Error in test assert_churn_bridge_closes: column x does not exist",
        ),
        _result(f"test.{PROJECT}.assert_invoices_match_churn", "pass"),
        _result(f"test.{PROJECT}.assert_ref_in_meta", "pass"),
        _result(f"test.{PROJECT}.source_not_null_raw_customers_country", "pass"),
        _result(f"test.{PROJECT}.not_null_fct_invoices_invoice_id", "skipped", None, None, 0.0),
        _result(
            f"unit_test.{PROJECT}.kpi_churn.churn_counts_cancellations",
            "fail",
            None,
            "actual differs from expected: churned_customers 1 != 2",
            1.5,
        ),
    ]
}


@pytest.fixture(scope="module")
def runs_by_name():
    results = dbt_test_check_runs(RUN_RESULTS, MANIFEST)
    return {run.check_name: run for run in results.runs}


def test_one_row_per_test_that_ran_models_and_skipped_tests_are_left_out(runs_by_name):
    results = dbt_test_check_runs(RUN_RESULTS, MANIFEST)
    # 11 results: 1 model, 1 skipped test, 9 tests that ran (8 data tests, 1 unit test)
    assert len(results.runs) == 9
    assert results.skipped == [f"test.{PROJECT}.not_null_fct_invoices_invoice_id"]
    assert {run.layer for run in results.runs} == {"dbt_test"}
    assert "kpi_churn" not in runs_by_name


def test_a_passing_error_test_is_recorded_as_passed_and_blocking(runs_by_name):
    run = runs_by_name["unique_kpi_churn_month"]
    assert (run.asset, run.passed, run.severity, run.failing_rows) == ("marts/kpi_churn", True, "block", 0)
    assert run.target == "column month"
    assert run.message is None
    assert run.duration_ms == pytest.approx(250.0)


def test_a_failing_test_keeps_its_failure_count_and_dbt_message(runs_by_name):
    run = runs_by_name["not_null_kpi_churn_segment"]
    assert (run.passed, run.severity, run.failing_rows) == (False, "block", 3)
    assert run.message == "Got 3 results, configured to fail if != 0"
    assert run.blocks
    assert run.duration_ms == pytest.approx(500.0)


def test_a_warning_is_a_failed_check_that_only_warns(runs_by_name):
    run = runs_by_name["relationships_fct_invoices_customer_id"]
    # the generic test attaches to the model it is declared on, not to the other model it reads
    assert run.asset == "marts/fct_invoices"
    assert (run.passed, run.severity, run.failing_rows) == (False, "warn", 2)
    assert not run.blocks
    passing_warn_test = runs_by_name["accepted_values_fct_invoices_status"]
    assert (passing_warn_test.passed, passing_warn_test.severity) == (True, "warn")


def test_a_test_that_could_not_run_is_a_blocking_failure_without_a_row_count(runs_by_name):
    run = runs_by_name["assert_churn_bridge_closes"]
    assert (run.asset, run.passed, run.severity, run.failing_rows) == ("marts/kpi_churn", False, "block", None)
    assert run.message.startswith("Runtime Error in test assert_churn_bridge_closes")
    assert run.target is None


def test_a_unit_test_is_recorded_on_the_model_it_tests(runs_by_name):
    run = runs_by_name["churn_counts_cancellations"]
    assert (run.asset, run.passed, run.severity) == ("marts/kpi_churn", False, "block")
    assert run.target == "unit test (fixed input rows)"
    assert run.message == "actual differs from expected: churned_customers 1 != 2"


def test_a_test_on_a_source_sits_on_the_raw_asset(runs_by_name):
    assert runs_by_name["source_not_null_raw_customers_country"].asset == "raw/customers"


def test_a_singular_test_on_several_models_names_its_meta_ref_or_else_all_of_them(runs_by_name):
    assert runs_by_name["assert_ref_in_meta"].asset == "marts/fct_invoices"
    assert runs_by_name["assert_invoices_match_churn"].asset == "marts/fct_invoices, marts/kpi_churn"


def test_a_result_missing_from_the_manifest_says_to_parse_again():
    stray = {"results": [_result(f"test.{PROJECT}.not_in_manifest", "pass")]}
    with pytest.raises(KeyError, match="dbt parse"):
        dbt_test_check_runs(stray, MANIFEST)


# ------------------------------------------------ _dbt_build keeps the results, failed or not


class _Log:
    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []

    def __getattr__(self, level: str):
        return lambda message: self.messages.append((level, message))


class _Context:
    run = SimpleNamespace(run_id="run-under-test")
    is_subset = False

    def __init__(self) -> None:
        self.log = _Log()


class _Invocation:
    """What _dbt_build uses of DbtCliInvocation: a finished process, its target folder and artifacts."""

    def __init__(self, target_path: Path, error: Exception | None) -> None:
        self.target_path = target_path
        self.manifest = MANIFEST
        self.dagster_dbt_translator = None
        self.process = subprocess.Popen(["true"])
        self.process.wait()
        self._error = error

    def stream(self):
        yield "event"
        if self._error:
            raise self._error

    def get_artifact(self, name: str) -> dict:
        return json.loads((self.target_path / name).read_text())


class _Dbt:
    def __init__(self, invocation: _Invocation) -> None:
        self.invocation = invocation

    def cli(self, args, context):
        assert args[0] == "build"
        return self.invocation


def _build(tmp_path: Path, error: Exception | None, run_results: dict | None, monkeypatch):
    monkeypatch.setenv("BILLING_WAREHOUSE_PATH", str(tmp_path / "warehouse.duckdb"))
    target = tmp_path / "target"
    target.mkdir()
    if run_results is not None:
        (target / "run_results.json").write_text(json.dumps(run_results))
    warehouse = WarehouseResource(
        warehouse_path=str(tmp_path / "warehouse.duckdb"), landing_dir=str(tmp_path), output_dir=str(tmp_path)
    )
    context = _Context()
    events = []
    raised = None
    try:
        for event in _dbt_build(context, _Dbt(_Invocation(target, error)), warehouse, BUILD_OP, may_skip=False):
            events.append(event)
    except Exception as exc:
        raised = exc
    return events, raised, context, tmp_path / "warehouse.duckdb"


def _recorded(path: Path) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as conn:
        return conn.execute("select run_id, check_name, passed from quality.check_runs order by check_name").fetchall()


def test_a_successful_build_streams_its_events_and_records_every_test(tmp_path, monkeypatch):
    events, raised, _, warehouse = _build(tmp_path, None, RUN_RESULTS, monkeypatch)
    assert events == ["event"] and raised is None
    rows = _recorded(warehouse)
    assert len(rows) == 9
    assert {row[0] for row in rows} == {"run-under-test"}


def test_a_failed_build_still_records_its_tests_and_raises_its_own_error(tmp_path, monkeypatch):
    build_error = RuntimeError("dbt build failed: 1 test failed")
    events, raised, _, warehouse = _build(tmp_path, build_error, RUN_RESULTS, monkeypatch)
    assert raised is build_error
    rows = {name: passed for _, name, passed in _recorded(warehouse)}
    assert rows["not_null_kpi_churn_segment"] is False
    assert len(rows) == 9


def test_a_recording_problem_after_a_failed_build_is_logged_and_never_masks_the_build_error(tmp_path, monkeypatch):
    build_error = RuntimeError("dbt build failed")
    broken = {"results": [_result(f"test.{PROJECT}.not_in_manifest", "fail", 1)]}
    _, raised, context, _ = _build(tmp_path, build_error, broken, monkeypatch)
    assert raised is build_error
    errors = [message for level, message in context.log.messages if level == "error"]
    assert len(errors) == 1 and "not_in_manifest" in errors[0]


def test_a_recording_problem_after_a_successful_build_fails_the_step(tmp_path, monkeypatch):
    broken = {"results": [_result(f"test.{PROJECT}.not_in_manifest", "pass")]}
    _, raised, _, _ = _build(tmp_path, None, broken, monkeypatch)
    assert isinstance(raised, KeyError)


def test_a_build_that_wrote_no_run_results_records_nothing_and_says_so(tmp_path, monkeypatch):
    build_error = RuntimeError("dbt could not parse the project")
    _, raised, context, warehouse = _build(tmp_path, build_error, None, monkeypatch)
    assert raised is build_error
    assert not warehouse.exists()
    assert any("run_results.json" in message for level, message in context.log.messages if level == "warning")
