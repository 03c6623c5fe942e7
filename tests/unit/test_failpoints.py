"""The crash-test hook: a no-op unless armed, then a SIGKILL on exactly the armed hit."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from orchestration.lib.failpoints import FAILPOINT_VARIABLE, armed, failpoint

SCRIPT = """
from orchestration.lib.failpoints import failpoint
for number in range(1, 6):
    failpoint("other.point")
    failpoint("ingest.before_commit")
    print(f"passed {number}", flush=True)
"""


def _run(value: str | None) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": ":".join(sys.path)}
    if value is not None:
        env[FAILPOINT_VARIABLE] = value
    return subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60)


def test_unarmed_it_does_nothing(monkeypatch):
    monkeypatch.delenv(FAILPOINT_VARIABLE, raising=False)
    assert armed() is None
    failpoint("ingest.before_commit")  # would kill the test run if it fired


def test_armed_it_kills_the_process_on_the_third_pass_and_no_other():
    finished = _run(None)
    assert finished.returncode == 0 and finished.stdout.count("passed") == 5
    killed = _run("ingest.before_commit:3")
    assert killed.returncode == -signal.SIGKILL
    assert [line for line in killed.stdout.splitlines() if line.startswith("passed")] == ["passed 1", "passed 2"]
    assert "failpoint ingest.before_commit:3 reached" in killed.stdout


@pytest.mark.parametrize("value", ["ingest.before_commit", "ingest.before_commit:0", ":2", "x:two"])
def test_a_malformed_value_is_refused(monkeypatch, value):
    monkeypatch.setenv(FAILPOINT_VARIABLE, value)
    with pytest.raises(ValueError, match=FAILPOINT_VARIABLE):
        armed()
