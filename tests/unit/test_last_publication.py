"""A run may skip dbt only when the dashboard and the exports were both published after the last build."""

from __future__ import annotations

import datetime as dt
import os

from orchestration.defs.publish import last_publication_at


def _touch(path, when: dt.datetime) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("published")
    os.utime(path, (when.timestamp(), when.timestamp()))


def test_the_older_of_the_two_publications_counts(tmp_path):
    page_at = dt.datetime(2026, 11, 21, 6, 0, 5, tzinfo=dt.UTC)
    exports_at = dt.datetime(2026, 11, 20, 6, 0, 9, tzinfo=dt.UTC)
    _touch(tmp_path / "dashboard" / "index.html", page_at)
    _touch(tmp_path / "exports" / "at_risk" / "manifest.json", exports_at)
    assert last_publication_at(tmp_path) == dt.datetime(2026, 11, 20, 6, 0, 9)


def test_a_dashboard_without_exports_is_not_a_publication(tmp_path):
    _touch(tmp_path / "dashboard" / "index.html", dt.datetime(2026, 11, 21, 6, 0, tzinfo=dt.UTC))
    assert last_publication_at(tmp_path) is None
    assert last_publication_at(tmp_path / "nothing here") is None
