"""Two runs on one warehouse: one runs, the other is refused by name or waits its turn.

Warehouse "raced": two `billing-analytics run` processes are started at the same
moment. Exactly one must succeed; the other must exit with code 75 at once, before
touching anything, naming the winner's pid and saying how to wait.

Warehouse "queued": a run is started, and once it holds the run lock a second one
is started with `--wait`: it must say whom it waits for, then run after the first
one (finding nothing new to load) and succeed.

Both warehouses must then hold the same raw, staging, intermediate and mart rows:
the two orderings give the result of one clean run.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time

import pytest

from billing_world.deliver import DeliveryConfig
from billing_world.generate import generate_world
from billing_world.simulate import WorldConfig
from orchestration.cli import EXIT_LOCKED
from orchestration.lib.run_lock import lock_path, read_holder
from orchestration.lib.settings import Settings
from tests.integration.cli_process import RUN_TIMEOUT_SECONDS, start_cli
from tests.integration.test_incremental_runs import EXCLUDED_COLUMNS
from tests.integration.warehouse_comparison import CONSISTENT, RAW_EXCLUDED, load_consistency, table_differences

pytestmark = pytest.mark.integration

WORLD = WorldConfig(customers=120, months=6, start=dt.date(2024, 1, 1), seed=5, anomaly_rate=0.0)
DELIVERY = DeliveryConfig(batches_per_source=2, bad_row_rate=0.01, seed=5)


def _finish(process):
    stdout, stderr = process.communicate(timeout=RUN_TIMEOUT_SECONDS)
    return {"pid": process.pid, "returncode": process.returncode, "stdout": stdout, "stderr": stderr}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("concurrent")
    raced = Settings(root / "raced" / "landing", root / "raced" / "warehouse.duckdb", root / "raced" / "output")
    queued = Settings(root / "queued" / "landing", root / "queued" / "warehouse.duckdb", root / "queued" / "output")
    generate_world(raced.landing_dir, WORLD, DELIVERY)
    shutil.copytree(raced.landing_dir, queued.landing_dir)

    race = [_finish(process) for process in [start_cli(raced), start_cli(raced)]]

    first = start_cli(queued)
    deadline = time.monotonic() + 300
    while read_holder(lock_path(queued.warehouse_path)).pid != first.pid:
        assert first.poll() is None and time.monotonic() < deadline, "the first run never took the lock"
        time.sleep(0.2)
    waiting = start_cli(queued, "--wait", str(RUN_TIMEOUT_SECONDS))
    queue = [_finish(first), _finish(waiting)]
    return {"raced": raced, "queued": queued, "race": race, "queue": queue}


def test_of_two_runs_started_at_once_exactly_one_runs_and_the_other_names_it(runs):
    winners = [run for run in runs["race"] if run["returncode"] == 0]
    losers = [run for run in runs["race"] if run["returncode"] != 0]
    assert len(winners) == 1 and len(losers) == 1, [(run["returncode"], run["stderr"][-2000:]) for run in runs["race"]]
    loser, winner = losers[0], winners[0]
    assert loser["returncode"] == EXIT_LOCKED
    message = loser["stderr"].strip()
    assert message.startswith(
        f"billing-analytics: another pipeline run is using the warehouse {runs['raced'].warehouse_path}: "
        f"pid {winner['pid']} on "
    )
    assert "Nothing was done. Run again when it has finished, or pass --wait SECONDS" in message
    assert "Running the pipeline" not in loser["stdout"], "refused before doing anything"


def test_a_run_started_with_wait_waits_for_the_other_then_runs(runs):
    first, waiting = runs["queue"]
    assert first["returncode"] == 0, first["stderr"][-2000:]
    assert waiting["returncode"] == 0, waiting["stderr"][-2000:]
    assert f"Waiting up to {RUN_TIMEOUT_SECONDS} s for the run holding" in waiting["stderr"]
    assert f"pid {first['pid']} on " in waiting["stderr"]
    assert "the marts and the dashboard are current" in waiting["stdout"], "it ran after the first one had loaded all"


def test_neither_ordering_corrupts_the_warehouse(runs, tmp_path):
    raced, queued = runs["raced"].warehouse_path, runs["queued"].warehouse_path
    for warehouse in (raced, queued):
        assert load_consistency(warehouse) == CONSISTENT
    _, raw_differences = table_differences(raced, queued, ["raw"], RAW_EXCLUDED, tmp_path / "raw.duckdb")
    assert raw_differences == {}
    schemas = ("staging", "intermediate", "marts")
    tables, differences = table_differences(raced, queued, schemas, EXCLUDED_COLUMNS, tmp_path / "models.duckdb")
    assert {schema for schema, _ in tables} == set(schemas)
    assert differences == {}
