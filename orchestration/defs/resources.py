"""Resources shared by the assets: where the landing folder and warehouse are."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from pydantic import Field

from orchestration.lib.run_lock import run_lock
from orchestration.lib.settings import Settings
from orchestration.lib.warehouse import open_warehouse

# Every asset and check that opens the warehouse runs in this pool; the
# instance config (config/dagster.yaml) gives it a limit of 1.
WAREHOUSE_POOL = "duckdb_warehouse"


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file and the landing folder it is fed from."""

    warehouse_path: str
    landing_dir: str
    output_dir: str
    run_lock_wait_seconds: float = Field(
        default=3600.0,
        description="How long a step waits for another run's lock on the warehouse (lib/run_lock.py) before failing.",
    )

    @classmethod
    def from_settings(cls, settings: Settings) -> WarehouseResource:
        return cls(
            warehouse_path=str(settings.warehouse_path),
            landing_dir=str(settings.landing_dir),
            output_dir=str(settings.output_dir),
        )

    @contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext) -> Iterator[WarehouseResource]:
        """Hold the warehouse's run lock while a step uses this resource: a Dagster run and a
        `billing-analytics run` on the same file take turns (inside a CLI run, the CLI holds it)."""
        run = context.run
        command = f"dagster run {run.run_id} of {run.job_name}" if run else "a dagster step"
        with run_lock(Path(self.warehouse_path), self.run_lock_wait_seconds, command=command):
            yield self

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        with open_warehouse(Path(self.warehouse_path), read_only=read_only) as conn:
            yield conn
