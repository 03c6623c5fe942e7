"""One run per warehouse: a second one is told who holds it, may wait, and a killed holder frees it."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from orchestration.lib.run_lock import RunLockHeld, holds_lock, lock_path, read_holder, run_lock

HOLDER = """
import sys, time
from pathlib import Path
from orchestration.lib.run_lock import run_lock
with run_lock(Path(sys.argv[1]), command="billing-analytics run --warehouse test"):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    Path(sys.argv[1] + ".done").write_text("the holder's last step under the lock")
"""


def _hold(warehouse: Path, seconds: float) -> subprocess.Popen:
    """A separate process holding the lock for `seconds`, started once it holds it."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(warehouse), str(seconds)],
        env={"PYTHONPATH": ":".join(sys.path)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().strip() == "locked"
    return process


def test_the_lock_file_sits_beside_the_warehouse(tmp_path):
    assert lock_path(tmp_path / "warehouse.duckdb") == tmp_path / "warehouse.duckdb.lock"


def test_a_second_run_is_refused_with_the_holders_pid_command_and_start(tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    holder = _hold(warehouse, 60)
    try:
        with pytest.raises(RunLockHeld) as refused, run_lock(warehouse):
            pytest.fail("the lock is held by another process")
        message = str(refused.value)
        assert f"pid {holder.pid}" in message
        assert "`billing-analytics run --warehouse test`" in message
        assert "UTC" in message and "--wait SECONDS" in message and str(warehouse) in message
        assert read_holder(lock_path(warehouse)).pid == holder.pid
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    holder = _hold(warehouse, 60)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with run_lock(warehouse):
        assert holds_lock(warehouse)
    assert not holds_lock(warehouse)


def test_a_waiting_run_starts_when_the_holder_finishes(tmp_path, capsys):
    warehouse = tmp_path / "warehouse.duckdb"
    holder = _hold(warehouse, 1)
    try:
        with run_lock(warehouse, wait_seconds=120):
            assert Path(f"{warehouse}.done").exists(), "the lock was granted only after the holder's work"
    finally:
        holder.wait()
    assert f"pid {holder.pid}" in capsys.readouterr().err


def test_the_lock_is_reentrant_within_one_process(tmp_path):
    """A Dagster step inside a CLI run takes the lock its own process already holds."""
    warehouse = tmp_path / "warehouse.duckdb"
    with run_lock(warehouse):
        with run_lock(warehouse):
            assert holds_lock(warehouse)
        assert holds_lock(warehouse), "the inner block does not release the outer lock"
    assert not holds_lock(warehouse)
    assert read_holder(lock_path(warehouse)).pid is None, "a released lock names no holder"


def test_a_dagster_step_on_a_locked_warehouse_waits_then_fails_naming_the_holder(tmp_path):
    """Under `dagster dev` each step takes the lock through the warehouse resource; a CLI run
    holding it makes the step wait (here 0 s) and then fail with the holder's description."""
    import dagster as dg

    from orchestration.defs.quality.report_sensor import quality_report_job
    from orchestration.defs.resources import WarehouseResource

    warehouse = tmp_path / "warehouse.duckdb"
    holder = _hold(warehouse, 60)
    try:
        resource = WarehouseResource(
            warehouse_path=str(warehouse),
            landing_dir=str(tmp_path),
            output_dir=str(tmp_path / "output"),
            run_lock_wait_seconds=0,
        )
        with dg.instance_for_test() as instance:
            result = quality_report_job.execute_in_process(
                instance=instance, resources={"warehouse": resource}, raise_on_error=False
            )
    finally:
        holder.kill()
        holder.wait()
    assert not result.success
    messages = []
    for event in result.all_events:
        error = getattr(event.event_specific_data, "error", None) if event.is_failure else None
        while error is not None:  # the lock's own error is the cause of Dagster's resource error
            messages.append(error.message)
            error = error.cause
    messages = " ".join(messages)
    assert f"pid {holder.pid}" in messages and "another pipeline run is using the warehouse" in messages
    assert not (tmp_path / "output").exists(), "the step did nothing"
