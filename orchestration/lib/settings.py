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
    "BILLING_DATA_DIR": ("data", "root folder for generated and produced data"),
    "BILLING_LANDING_DIR": ("data/landing", "landing folder read by ingestion"),
    "BILLING_WAREHOUSE_PATH": ("data/warehouse.duckdb", "DuckDB warehouse file"),
    "BILLING_OUTPUT_DIR": ("data/output", "dashboards, exports and reports"),
}


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

    def export_to_env(self) -> None:
        """Make child processes (dbt) see the same absolute paths."""
        os.environ["BILLING_LANDING_DIR"] = str(self.landing_dir)
        os.environ["BILLING_WAREHOUSE_PATH"] = str(self.warehouse_path)
        os.environ["BILLING_OUTPUT_DIR"] = str(self.output_dir)
