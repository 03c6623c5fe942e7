"""Publishing the dashboard: <output>/dashboard/index.html and dashboard_data.json, atomically.

Both files are rendered in memory, written to temporary files in the same
folder, flushed, and only then renamed over the published ones (os.replace is
atomic within one filesystem). A build that fails at any point leaves the
previous dashboard exactly as it was, and a reader never sees half a page.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from dashboards.data import build_dashboard_data
from dashboards.render import render_dashboard

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


def write_files_atomically(folder: Path, contents: Mapping[str, str]) -> None:
    """Write every file to a temporary sibling first; rename them into place only once all are written."""
    folder.mkdir(parents=True, exist_ok=True)
    staged: dict[str, str] = {}
    try:
        for name, text in contents.items():
            handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
            staged[name] = temporary
            os.chmod(temporary, 0o644)  # mkstemp makes 0600; a published page is for everyone who reads the folder
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(text)
                stream.flush()
                os.fsync(stream.fileno())
        for name, temporary in staged.items():
            os.replace(temporary, folder / name)
    finally:
        for temporary in staged.values():
            if os.path.exists(temporary):
                os.unlink(temporary)


def publish_dashboard(
    conn: duckdb.DuckDBPyConnection, output_dir: Path, generated_at: dt.datetime | None = None
) -> PublishedDashboard:
    """Build the data, render the page, then publish both (nothing is touched if either step fails)."""
    data = build_dashboard_data(conn, generated_at)
    page = render_dashboard(data)
    folder = dashboard_dir(output_dir)
    write_files_atomically(folder, {DATA_NAME: json.dumps(data, indent=1, allow_nan=False), PAGE_NAME: page})
    return PublishedDashboard(folder / PAGE_NAME, folder / DATA_NAME, data)
