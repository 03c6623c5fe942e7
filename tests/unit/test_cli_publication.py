"""What `billing-analytics run` says when a run publishes nothing: what was kept, and what stopped it."""

from __future__ import annotations

from types import SimpleNamespace

import dagster as dg

from orchestration.cli import _print_publication, failed_steps
from orchestration.defs.publish.dashboard_asset import KPI_DASHBOARD_KEY
from orchestration.lib.settings import Settings

DBT_FAILURE = (
    "The dbt CLI process with command\n\n`dbt build --select source:value+`\n\nfailed with exit code `1`. "
    "Check the stdout in the Dagster compute logs for the full information about the error.\n\n"
    "Errors parsed from dbt logs:\n\n"
    "Runtime Error in model kpi_clv (models/marts/value/kpi_clv.sql)\n"
    '  Parser Error: syntax error at or near "mrr_usd"'
)


class FakeResult:
    """The parts of an ExecuteInProcessResult the CLI reads."""

    def __init__(self, materialized=(), failures=(), checks=()):
        self.success = False
        self._materialized = [SimpleNamespace(asset_key=key) for key in materialized]
        self.all_events = [
            SimpleNamespace(
                event_type_value="STEP_FAILURE",
                step_key=step,
                event_specific_data=SimpleNamespace(error=SimpleNamespace(message=message)),
            )
            for step, message in failures
        ]
        self._checks = list(checks)

    def get_asset_materialization_events(self):
        return self._materialized

    def get_step_success_events(self):
        return []

    def get_asset_check_evaluations(self):
        return self._checks


def _settings(tmp_path) -> Settings:
    return Settings(tmp_path / "landing", tmp_path / "warehouse.duckdb", tmp_path / "output")


def _publish_before(settings: Settings) -> None:
    (settings.output_dir / "dashboard").mkdir(parents=True)
    (settings.output_dir / "dashboard" / "index.html").write_text("<html>")
    (settings.output_dir / "exports" / "at_risk").mkdir(parents=True)
    (settings.output_dir / "exports" / "at_risk" / "manifest.json").write_text("{}")


def test_a_failed_dbt_model_is_named_with_dbts_error_and_both_publications_are_kept(tmp_path, capsys):
    settings = _settings(tmp_path)
    _publish_before(settings)
    _print_publication(FakeResult(failures=[("billing_dbt_models_after_python", DBT_FAILURE)]), settings)
    assert capsys.readouterr().err.splitlines() == [
        "Dashboard NOT updated by this run (the previous version is kept as it was).",
        "At-risk exports NOT updated by this run (the previous version is kept as it was).",
        "Publication stopped by:",
        "  step billing_dbt_models_after_python failed: Runtime Error in model kpi_clv "
        '(models/marts/value/kpi_clv.sql) Parser Error: syntax error at or near "mrr_usd"',
    ]


def test_a_blocking_check_is_named_and_a_first_run_says_nothing_was_published_before(tmp_path, capsys):
    gate = dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey(["marts", "billing_anomalies"]),
        check_name="block_anomalies_within_revenue_share",
        passed=False,
        blocking=True,
        description="7.10% of 2024-06 revenue at stake, above the limit of 5.00%",
    )
    _print_publication(FakeResult(checks=[gate]), _settings(tmp_path))
    assert capsys.readouterr().err.splitlines() == [
        "Dashboard NOT updated by this run (none was published before).",
        "At-risk exports NOT updated by this run (none was published before).",
        "Publication stopped by:",
        "  blocking check failed: marts/billing_anomalies block_anomalies_within_revenue_share: "
        "7.10% of 2024-06 revenue at stake, above the limit of 5.00%",
    ]


def test_only_the_publication_that_did_not_happen_is_reported(tmp_path, capsys):
    settings = _settings(tmp_path)
    _publish_before(settings)
    _print_publication(FakeResult(materialized=[KPI_DASHBOARD_KEY]), settings)
    captured = capsys.readouterr()
    assert captured.out.startswith("Dashboard published: ")
    assert captured.err.splitlines()[0] == (
        "At-risk exports NOT updated by this run (the previous version is kept as it was)."
    )


def test_a_failed_step_without_dbt_errors_gives_the_first_line_of_its_error():
    result = FakeResult(failures=[("raw__invoices", "IOException: Could not set lock on file\nmore detail")])
    assert failed_steps(result) == [("raw__invoices", "IOException: Could not set lock on file")]
