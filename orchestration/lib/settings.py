"""Configuration from environment variables, with documented defaults.

The one place that reads the environment: Dagster resources, the CLI and the
dbt profile (through the same variable names) all agree on paths.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
CONFIG_DIR = PROJECT_ROOT / "config"
POLICY_PATH = CONFIG_DIR / "billing_policy.yml"
COUNTRIES_SEED_PATH = DBT_PROJECT_DIR / "seeds" / "ref_countries.csv"
# The dbt of this interpreter's environment (.venv), not whatever is on PATH.
DBT_EXECUTABLE = Path(sys.executable).parent / "dbt"

# name -> (default relative to the project root, what it is)
ENVIRONMENT = {
    "BILLING_LANDING_DIR": ("data/landing", "landing folder read by ingestion"),
    "BILLING_WAREHOUSE_PATH": ("data/warehouse.duckdb", "DuckDB warehouse file"),
    "BILLING_OUTPUT_DIR": ("data/output", "dashboards, exports and reports"),
}
# A bound on DuckDB's memory, so large worlds spill to disk instead of growing.
DEFAULT_DUCKDB_MEMORY_LIMIT = "6GB"


def duckdb_memory_limit() -> str:
    return os.environ.get("BILLING_DUCKDB_MEMORY_LIMIT") or DEFAULT_DUCKDB_MEMORY_LIMIT


def _path(name: str) -> Path:
    value = os.environ.get(name) or ENVIRONMENT[name][0]
    path = Path(value).expanduser()
    return path if path.is_absolute() else (PROJECT_ROOT / path)


@dataclass(frozen=True)
class Settings:
    landing_dir: Path
    warehouse_path: Path
    output_dir: Path

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            landing_dir=_path("BILLING_LANDING_DIR"),
            warehouse_path=_path("BILLING_WAREHOUSE_PATH"),
            output_dir=_path("BILLING_OUTPUT_DIR"),
        )
