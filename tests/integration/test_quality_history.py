"""After a full pipeline run, every dbt data test is in quality.check_runs and in the HTML report."""

from __future__ import annotations

import html
import json
from collections import Counter

import duckdb
import pytest

from orchestration.lib.settings import DBT_PROJECT_DIR


@pytest.fixture(scope="module")
def dbt_rows(kpi_world):
    """The dbt_test rows of the latest run that recorded dbt tests on the KPI world."""
    assert kpi_world["ok"], "the KPI world's pipeline run failed"
    with duckdb.connect(str(kpi_world["settings"].warehouse_path), read_only=True) as conn:
        run_id = conn.execute(
            "select run_id from quality.check_runs where layer = 'dbt_test' "
            "group by run_id order by max(checked_at) desc limit 1"
        ).fetchone()[0]
        rows = conn.execute(
            "select asset, check_name, passed, severity, failing_rows from quality.check_runs "
            "where layer = 'dbt_test' and run_id = ?",
            [run_id],
        ).fetchall()
    return run_id, rows


def _manifest() -> dict:
    return json.loads((DBT_PROJECT_DIR / "target" / "manifest.json").read_text())


def _manifest_unit_test_names() -> list[str]:
    return [node["name"] for node in _manifest()["unit_tests"].values()]


def _manifest_data_test_names() -> Counter:
    data_tests = [node["name"] for node in _manifest()["nodes"].values() if node["resource_type"] == "test"]
    assert data_tests
    return Counter(data_tests)


def test_one_row_per_data_test_of_the_manifest_and_none_for_unit_tests(dbt_rows):
    """Unit tests run in the test suite (test_dbt_unit_tests.py), not in production builds."""
    _, rows = dbt_rows
    expected = _manifest_data_test_names()
    assert len(rows) == sum(expected.values())
    assert Counter(name for _, name, _, _, _ in rows) == expected
    assert not {name for _, name, _, _, _ in rows} & set(_manifest_unit_test_names())


def test_each_row_sits_on_the_asset_of_the_dagster_check_for_the_same_test(dbt_rows):
    from orchestration.defs.transform.dbt_assets import billing_dbt_models, billing_dbt_models_after_python

    _, rows = dbt_rows
    recorded = {(asset, name) for asset, name, _, _, _ in rows}
    dagster_checks = {
        (key.asset_key.to_user_string(), key.name)
        for assets in (billing_dbt_models, billing_dbt_models_after_python)
        for key in assets.check_keys
    }
    assert dagster_checks and dagster_checks <= recorded
    # dagster-dbt makes no check of tests on sources (the ingest assets own raw/*)
    others = recorded - dagster_checks
    assert others and {asset.split("/")[0] for asset, _ in others} == {"raw"}


def test_the_html_report_names_every_dbt_test_and_the_run(dbt_rows, kpi_world):
    run_id, rows = dbt_rows
    page = (kpi_world["settings"].output_dir / "reports" / "data_quality.html").read_text(encoding="utf-8")
    assert f"Latest run <code>{html.escape(run_id)}</code>" in page
    missing = [name for _, name, _, _, _ in rows if f"<code>{html.escape(name)}</code>" not in page]
    assert missing == []
    failing_section = page[page.index("<h2>Failing checks of the latest run") : page.index("<h2>Latest status")]
    for _, name, passed, _, _ in rows:
        assert (f"<code>{html.escape(name)}</code>" in failing_section) == (not passed), name
