"""Shared fixtures: the dbt manifest (parsed once per session) and a temporary warehouse environment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from orchestration.lib.settings import DBT_PROJECT_DIR

DBT = Path(sys.executable).parent / "dbt"


def _ensure_manifest() -> None:
    """dagster-dbt reads target/manifest.json at import; `make test` parses first,
    this covers a bare `pytest`."""
    if not (DBT_PROJECT_DIR / "target" / "manifest.json").exists():
        subprocess.run([str(DBT), "parse", "--quiet", "--profiles-dir", "."], cwd=DBT_PROJECT_DIR, check=True)


_ensure_manifest()


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
