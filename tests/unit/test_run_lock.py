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
