"""One pipeline run per warehouse at a time: an exclusive lock on `<warehouse>.lock`.

DuckDB admits one writer per file, but a second run does not fail cleanly on it:
it fails wherever it first opens the file while the other run happens to hold it
(an ingest asset, dbt's retry loop, a report), after doing part of its work.
`billing-analytics run` and `demo` therefore take this lock before anything else
and hold it for the whole run; a second run finds it taken and exits at once
with a message naming the holder (pid, command, start time), or waits for it
with `--wait SECONDS`.

Runs launched by Dagster (`dagster dev`, the schedule, the sensor) execute each
step in its own process, and the Dagster pool limits only the runs of one Dagster
instance, so a CLI run and a Dagster run on the same warehouse would not see each
other. Every Dagster step that uses the warehouse resource therefore takes the
same lock for the step's duration (orchestration/defs/resources.py), waiting for
a CLI run to finish rather than failing; a step run inside a CLI run finds the
lock held by its own process and goes on.

The lock is `flock(2)`: the kernel releases it when the holder exits, killed or
not, so a crashed run never leaves a stale lock behind. The file itself stays
(deleting a lock file races with the next process opening it); it holds the
holder's description, for the message only.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

POLL_SECONDS = 0.5

# Locks this process holds: path -> open file. flock locks belong to an open file, so a
# second open of the same file in this process would wait for itself.
_held: dict[Path, object] = {}


class RunLockHeld(RuntimeError):
    """Another run holds the warehouse; the message says who and since when."""


@dataclass(frozen=True)
class Holder:
    pid: int | None
    command: str
    started_at: str
    host: str

    def describe(self) -> str:
        pid = f"pid {self.pid}" if self.pid else "an unknown process"
        return f"{pid} on {self.host}, `{self.command}`, started {self.started_at}"


def lock_path(warehouse_path: Path) -> Path:
    """`warehouse.duckdb` -> `warehouse.duckdb.lock`, beside it."""
    warehouse_path = Path(warehouse_path)
    return warehouse_path.with_name(warehouse_path.name + ".lock")


def read_holder(path: Path) -> Holder:
    """The description the holder wrote; an unknown holder when it has not written it yet."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return Holder(data.get("pid"), data.get("command", "?"), data.get("started_at", "?"), data.get("host", "?"))
    except (OSError, ValueError, AttributeError):
        return Holder(None, "?", "at an unknown time", "?")


def holds_lock(warehouse_path: Path) -> bool:
    """Whether this process holds the run lock of `warehouse_path`."""
    return lock_path(warehouse_path).resolve() in _held


@contextmanager
def run_lock(warehouse_path: Path, wait_seconds: float = 0.0, command: str | None = None) -> Iterator[Path]:
    """Hold the run lock of `warehouse_path` for the `with` block.

    Waits up to `wait_seconds` (0: not at all) for another holder, then raises
    RunLockHeld naming it. Re-entrant within one process: a nested call (a Dagster
    step inside a CLI run) returns at once and leaves the lock to the outer one."""
    path = lock_path(warehouse_path).resolve()
    if path in _held:
        yield path
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held past this frame, closed below
    try:
        _acquire(handle, path, warehouse_path, wait_seconds)
        holder = {
            "pid": os.getpid(),
            "command": command or " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "started_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "host": socket.gethostname(),
        }
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(holder) + "\n")
        handle.flush()
        _held[path] = handle
        try:
            yield path
        finally:
            del _held[path]
            handle.seek(0)
            handle.truncate()
            handle.flush()
    finally:
        handle.close()  # closing releases the flock


def _acquire(handle, path: Path, warehouse_path: Path, wait_seconds: float) -> None:
    deadline = time.monotonic() + max(wait_seconds, 0.0)
    announced = False
    while True:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        holder = read_holder(path)
        if time.monotonic() >= deadline:
            waited = f" (waited {wait_seconds:g} s)" if wait_seconds > 0 else ""
            raise RunLockHeld(
                f"another pipeline run is using the warehouse {warehouse_path}: {holder.describe()}{waited}. "
                f"Nothing was done. Run again when it has finished, or pass --wait SECONDS to wait for it "
                f"(lock file {path})."
            ) from None
        if not announced:
            print(
                f"Waiting up to {wait_seconds:g} s for the run holding {warehouse_path}: {holder.describe()} ...",
                file=sys.stderr,
                flush=True,
            )
            announced = True
        time.sleep(POLL_SECONDS)
