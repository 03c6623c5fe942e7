"""A failure before publication keeps what was published, says why, and the next run catches up.

Run 1 publishes the dashboard and the at-risk exports. Before run 2 someone edits
the billing policy and types the gross margin as `80%` instead of 0.80. The policy
reaches dbt as a var, so dbt parses and starts, and two models of the second dbt
step (marts.kpi_clv, marts.customer_risk, which multiply by the margin) fail in
DuckDB with a syntax error. Run 2 must exit non-zero, print which step and which
models failed with dbt's error, say that neither the dashboard nor the exports
were updated, and leave every published file byte for byte, links included.

Run 3 (the typo fixed) cannot publish the exports: a file is in the way of the
exports folder; the dashboard is published. Run 4, with the file gone and no new
landing batch, must still publish the exports: a run may only skip dbt and
publication when both were published after the last build.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil

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


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("failed_build")
    settings = Settings(root / "landing", root / "warehouse.duckdb", root / "output")
    generate_world(settings.landing_dir, WORLD, DELIVERY)
    first = run_cli(settings)
    published = _published(settings.output_dir)

    typo = write_policy_variant(root / "policy_with_a_typo.yml", {"reporting": {"gross_margin": "80%"}})
    second = run_cli(settings, policy=typo)
    after_second = _published(settings.output_dir)

    exports = settings.output_dir / "exports"
    shutil.move(exports, root / "exports_aside")
    exports.write_text("not a folder")
    third = run_cli(settings)
    exports.unlink()
    shutil.move(root / "exports_aside", exports)
    fourth = run_cli(settings)
    return {
        "settings": settings,
        "runs": [first, second, third, fourth],
        "published": published,
        "after_second": after_second,
        "after_fourth": _published(settings.output_dir),
    }


def test_a_failing_dbt_model_stops_publication_and_keeps_the_dashboard_and_exports(runs):
    first, second, _, _ = runs["runs"]
    assert first.returncode == 0, first.stderr[-3000:]
    assert {"dashboard/index.html", "dashboard/dashboard_data.json", "exports/at_risk/manifest.json"} <= set(
        runs["published"]
    )
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
    assert runs["after_second"] == runs["published"]


def test_an_export_left_unpublished_is_published_by_the_next_run_without_new_batches(runs):
    _, _, third, fourth = runs["runs"]
    assert third.returncode == 1
    assert "Dashboard published:" in third.stdout
    assert "At-risk exports NOT updated by this run" in third.stderr
    assert "step publish__at_risk_exports failed:" in third.stderr
    assert fourth.returncode == 0, fourth.stderr[-3000:]
    assert "At-risk exports published:" in fourth.stdout
    manifest = json.loads(runs["after_fourth"]["exports/at_risk/manifest.json"])
    assert manifest["generated_at"] > json.loads(runs["published"]["exports/at_risk/manifest.json"])["generated_at"]
