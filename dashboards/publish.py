"""Publishing the dashboard: <output>/dashboard/index.html and dashboard_data.json, atomically.

Both files are rendered in memory, written into a new version folder and made
visible together by replacing the `dashboard` link (orchestration/lib/atomic_files.py).
A build that fails or is killed at any point leaves the previous dashboard exactly
as it was, and a reader never sees half a page, nor a page beside another run's data.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from dashboards.data import build_dashboard_data
from dashboards.render import render_dashboard
from orchestration.lib.atomic_files import publish_folder, write_text_atomically

DASHBOARD_FOLDER = "dashboard"
PAGE_NAME = "index.html"
DATA_NAME = "dashboard_data.json"


@dataclass(frozen=True)
class PublishedDashboard:
    page: Path
    data_file: Path
    data: dict[str, Any]


def dashboard_dir(output_dir: Path) -> Path:
    return Path(output_dir) / DASHBOARD_FOLDER


def publish_dashboard(
    conn: duckdb.DuckDBPyConnection, output_dir: Path, generated_at: dt.datetime | None = None
) -> PublishedDashboard:
    """Build the data, render the page, then publish both (nothing is touched if either step fails)."""
    data = build_dashboard_data(conn, generated_at)
    page = render_dashboard(data)
    files = {DATA_NAME: json.dumps(data, indent=1, allow_nan=False), PAGE_NAME: page}

    def fill(version: Path) -> None:
        for name, text in files.items():
            write_text_atomically(version / name, text)

    folder = dashboard_dir(output_dir)
    publish_folder(folder, fill)
    return PublishedDashboard(folder / PAGE_NAME, folder / DATA_NAME, data)
