"""Worlds shared by the integration tests: generate, run the whole pipeline once, reuse."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from billing_world.deliver import DeliveryConfig
from billing_world.generate import generate_world
from billing_world.simulate import WorldConfig, simulate_world
from orchestration.lib.policy import OPEN_GATE, POLICY_PATH_VARIABLE, write_policy_variant
from orchestration.lib.settings import Settings

# The world the KPI invariants are checked on: small, but with every anomaly
# type, bad rows, a duplicate and an update batch.
KPI_WORLD = WorldConfig(customers=300, months=18, start=dt.date(2024, 1, 1), seed=23, anomaly_rate=0.02)
KPI_DELIVERY = DeliveryConfig(batches_per_source=3, bad_row_rate=0.005, seed=23)


def run_pipeline(settings: Settings, policy_path: Path | None = None) -> bool:
    """`billing-analytics run` in-process, leaving the environment as it was
    (the dbt step exports the warehouse path for its subprocess); `policy_path`
    runs it under another billing policy file."""
    from orchestration.cli import run

    saved_environment = dict(os.environ)
    try:
        if policy_path is not None:
            os.environ[POLICY_PATH_VARIABLE] = str(policy_path)
        return run(settings)
    finally:
        os.environ.clear()
        os.environ.update(saved_environment)


def generate_and_run(
    root: Path, world: WorldConfig, delivery: DeliveryConfig, policy_path: Path | None = None
) -> tuple[Settings, bool]:
    settings = Settings(root / "landing", root / "warehouse.duckdb", root / "output")
    generate_world(settings.landing_dir, world, delivery)
    return settings, run_pipeline(settings, policy_path)


def policy_without_gate(folder: Path) -> Path:
    """The shipped policy with the anomaly gate wide open: for worlds injected with
    more anomalies than a real month would pass, when the test is about detection."""
    return write_policy_variant(folder / "policy_without_gate.yml", {"anomalies": {"gate": OPEN_GATE}})


@pytest.fixture(scope="session")
def kpi_world(tmp_path_factory):
    """KPI_WORLD generated and run once per test session."""
    settings, ok = generate_and_run(tmp_path_factory.mktemp("kpi_world"), KPI_WORLD, KPI_DELIVERY)
    return {"settings": settings, "ok": ok, "simulated": simulate_world(KPI_WORLD)}
