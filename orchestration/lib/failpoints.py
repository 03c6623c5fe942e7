"""Fault injection for tests: kill the process at a named point, the N-th time it is reached.

A test hook, a no-op in production. The crash tests
(tests/integration/test_interrupted_runs.py) run `billing-analytics run` in a
subprocess with `BILLING_FAILPOINT=<name>:<hit>` (e.g. `ingest.before_commit:3`);
the third time the code reaches `failpoint("ingest.before_commit")`, the process
sends itself SIGKILL: no exception handler, `finally` block or atexit hook runs,
exactly as when the machine loses power or the OOM killer strikes. When the
process leads its own process group (the test starts it with a new session), the
whole group is killed, so child processes such as dbt die with it, as they do
when a container stops; otherwise only this process.

Named points: ingest.before_write, ingest.before_commit, ingest.after_commit
(every batch transaction of orchestration/lib/loader.py), dbt.event (every event
streamed from a dbt build), publish.before_swap (a published folder is complete,
not yet visible).
"""

from __future__ import annotations

import os
import signal
from collections import Counter

FAILPOINT_VARIABLE = "BILLING_FAILPOINT"

_hits: Counter[str] = Counter()


def armed() -> tuple[str, int] | None:
    """(point, hit) from BILLING_FAILPOINT, or None when unset. A malformed value raises:
    a crash test whose fault never fires would pass for the wrong reason."""
    value = os.environ.get(FAILPOINT_VARIABLE, "").strip()
    if not value:
        return None
    name, _, hit = value.partition(":")
    if not name or not hit.isdigit() or int(hit) < 1:
        raise ValueError(f"{FAILPOINT_VARIABLE} is {value!r}; expected <point>:<hit>, e.g. ingest.before_commit:2")
    return name, int(hit)


def failpoint(name: str) -> None:
    """Count one pass through `name`; SIGKILL this process (group) on the armed hit."""
    target = armed()
    if target is None or target[0] != name:
        return
    _hits[name] += 1
    if _hits[name] == target[1]:
        print(f"failpoint {name}:{target[1]} reached: killing pid {os.getpid()}", flush=True)
        if os.getpgrp() == os.getpid():
            os.killpg(os.getpgrp(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)
