"""A dbt model that fails at run time stops publication, says so, and keeps what was published.

Run 1 publishes the dashboard and the at-risk exports. Before run 2 someone edits
the billing policy and types the gross margin as `80%` instead of 0.80. The policy
reaches dbt as a var, so dbt parses and starts, and two models of the second dbt
step (marts.kpi_clv, marts.customer_risk, which multiply by the margin) fail in
DuckDB with a syntax error. Run 2 must exit non-zero, print which step and which
models failed with dbt's error, say that neither the dashboard nor the exports
were updated, and leave every published file byte for byte, links included.
"""

from __future__ import annotations

import datetime as dt
import os

import pytest

from billing_world.deliver import DeliveryConfig
from billing_world.generate import generate_world
from billing_world.simulate import WorldConfig
from orchestration.lib.policy import write_policy_variant
from orchestration.lib.settings import Settings
from tests.integration.cli_process import run_cli

pytestmark = pytest.mark.integration

WORLD = WorldConfig(customers=120, months=6, start=dt.date(2024, 1, 1), seed=11, anomaly_rate=0.0)
DELIVERY = DeliveryConfig(batches_per_source=2, bad_row_rate=0.0, seed=11)


def _published(output_dir):
    """Every published file's bytes and where each published link points."""
    state = {}
    for folder in (output_dir / "dashboard", output_dir / "exports" / "at_risk"):
        state[folder.name] = os.readlink(folder)
        for path in sorted(folder.iterdir()):
            state[path.relative_to(output_dir).as_posix()] = path.read_bytes()
    return state


def test_a_failing_dbt_model_stops_publication_and_keeps_the_dashboard_and_exports(tmp_path):
    settings = Settings(tmp_path / "landing", tmp_path / "warehouse.duckdb", tmp_path / "output")
    generate_world(settings.landing_dir, WORLD, DELIVERY)
    first = run_cli(settings)
    assert first.returncode == 0, first.stderr[-3000:]
    published = _published(settings.output_dir)
    assert {"dashboard/index.html", "dashboard/dashboard_data.json", "at_risk/manifest.json"} <= {
        name.replace("exports/", "") for name in published
    }

    typo = write_policy_variant(tmp_path / "policy_with_a_typo.yml", {"reporting": {"gross_margin": "80%"}})
    second = run_cli(settings, policy=typo)

    assert second.returncode == 1
    err = second.stderr
    assert "Dashboard NOT updated by this run (the previous version is kept as it was)." in err
    assert "At-risk exports NOT updated by this run (the previous version is kept as it was)." in err
    assert "Publication stopped by:" in err
    failure = next(
        line for line in err.splitlines() if line.startswith("  step billing_dbt_models_after_python failed:")
    )
    # dbt's own words: which models, in which file, and DuckDB's error
    assert "Runtime Error in model customer_risk (models/marts/value/customer_risk.sql)" in failure
    assert "Runtime Error in model kpi_clv (models/marts/value/kpi_clv.sql)" in failure
    assert "Parser Error: syntax error" in failure
    assert "Pipeline FAILED" in err and "failed steps: billing_dbt_models_after_python" in err
    assert _published(settings.output_dir) == published
