"""Shared fixtures: the dbt manifest (parsed once per session) and a temporary warehouse environment."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from orchestration.lib.settings import DBT_EXECUTABLE, DBT_PROJECT_DIR


def pytest_sessionstart(session: pytest.Session) -> None:
    """Parse the dbt project once per session: dagster-dbt reads target/manifest.json
    at import, and a stale one would not know the tests dbt is about to run."""
    command = [str(DBT_EXECUTABLE), "parse", "--quiet", "--profiles-dir", "."]
    subprocess.run(command, cwd=DBT_PROJECT_DIR, check=True)


@pytest.fixture()
def pipeline_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Landing, warehouse and output paths under tmp_path, exported like a user would."""
    paths = {
        "landing": tmp_path / "landing",
        "warehouse": tmp_path / "warehouse.duckdb",
        "output": tmp_path / "output",
    }
    monkeypatch.setenv("BILLING_LANDING_DIR", str(paths["landing"]))
    monkeypatch.setenv("BILLING_WAREHOUSE_PATH", str(paths["warehouse"]))
    monkeypatch.setenv("BILLING_OUTPUT_DIR", str(paths["output"]))
    return paths
