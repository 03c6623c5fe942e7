"""What people read: the load report, the KPI dashboard and the retention team's at-risk exports."""

import datetime as dt
from pathlib import Path

from dashboards.publish import PAGE_NAME, dashboard_dir
from orchestration.defs.publish.assets import load_report
from orchestration.defs.publish.dashboard_asset import kpi_dashboard
from orchestration.defs.publish.exports_asset import MANIFEST_NAME, at_risk_exports, export_set_dir

publish_assets = [load_report, kpi_dashboard, at_risk_exports]


def last_publication_at(output_dir: Path) -> dt.datetime | None:
    """When both the dashboard and the at-risk exports were last published (the older of the
    two, naive UTC); None while either has never been. A run may skip dbt and publication only
    when this is after the last build: one published without the other (a failed or killed
    publication step) must be published on the next run, new batches or not."""
    files = (dashboard_dir(Path(output_dir)) / PAGE_NAME, export_set_dir(Path(output_dir)) / MANIFEST_NAME)
    if not all(path.exists() for path in files):
        return None
    return min(dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC).replace(tzinfo=None) for path in files)
