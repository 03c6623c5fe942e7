"""What people read: the load report and the KPI dashboard; exports as they arrive."""

from orchestration.defs.publish.assets import load_report
from orchestration.defs.publish.dashboard_asset import kpi_dashboard

publish_assets = [load_report, kpi_dashboard]
