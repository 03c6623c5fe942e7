"""Spark tests: the time of each Spark build step, in the terminal summary."""

from __future__ import annotations

import pytest

SPARK_STEP_SECONDS = pytest.StashKey[dict[str, float]]()


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    seconds = config.stash.get(SPARK_STEP_SECONDS, None)
    if seconds:
        steps = ", ".join(f"{step} {value:.1f} s" for step, value in seconds.items())
        terminalreporter.write_line(f"Spark build: {steps}")
