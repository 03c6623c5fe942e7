"""The end of `make demo` / `billing-analytics run`: where the dashboard, the exports and the UI are."""

from __future__ import annotations

import pytest

from orchestration.cli import print_where

pytestmark = pytest.mark.integration


def test_the_closing_lines_name_the_dashboard_the_exports_and_the_ui(kpi_world, capsys):
    settings = kpi_world["settings"]
    assert kpi_world["ok"]

    print_where(settings)
    lines = capsys.readouterr().out.splitlines()

    def line_of(label: str) -> str:
        found = [line for line in lines if line.strip().startswith(label)]
        assert len(found) == 1, f"expected one '{label}' line in:\n" + "\n".join(lines)
        return found[0]

    dashboard = settings.output_dir / "dashboard" / "index.html"
    exports = settings.output_dir / "exports" / "at_risk"
    assert str(dashboard) in line_of("dashboard")
    assert str(exports) in line_of("at-risk exports")
    assert dashboard.is_file() and (exports / "manifest.json").is_file()
    ui = line_of("Dagster UI")
    assert "make ui" in ui and "http://127.0.0.1:3000" in ui
