"""`billing-analytics` in a child process, as a user or a scheduler starts it, for the fault tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from orchestration.lib.failpoints import FAILPOINT_VARIABLE
from orchestration.lib.settings import PROJECT_ROOT, Settings

# A run of the small worlds takes about a minute on a quiet machine; this only stops a hung test.
RUN_TIMEOUT_SECONDS = 1800


def cli_command(settings: Settings, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "orchestration.cli",
        "run",
        "--landing",
        str(settings.landing_dir),
        "--warehouse",
        str(settings.warehouse_path),
        "--output",
        str(settings.output_dir),
        *extra,
    ]


def cli_environment(failpoint: str | None = None, policy: Path | None = None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("BILLING_")}
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    if failpoint:
        env[FAILPOINT_VARIABLE] = failpoint
    if policy:
        env["BILLING_POLICY_PATH"] = str(policy)
    return env


def start_cli(
    settings: Settings, *extra: str, failpoint: str | None = None, policy: Path | None = None
) -> subprocess.Popen:
    """Start `billing-analytics run` in its own session (process group), so a failpoint's
    SIGKILL takes dbt and every other child with it, as a crash or a stopped container does."""
    return subprocess.Popen(
        cli_command(settings, *extra),
        cwd=PROJECT_ROOT,
        env=cli_environment(failpoint, policy),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def run_cli(
    settings: Settings, *extra: str, failpoint: str | None = None, policy: Path | None = None
) -> subprocess.CompletedProcess:
    process = start_cli(settings, *extra, failpoint=failpoint, policy=policy)
    stdout, stderr = process.communicate(timeout=RUN_TIMEOUT_SECONDS)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
