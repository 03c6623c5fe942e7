"""What people read: the load report, the KPI dashboard and the retention team's at-risk exports."""

from orchestration.defs.publish.assets import load_report
from orchestration.defs.publish.dashboard_asset import kpi_dashboard
from orchestration.defs.publish.exports_asset import at_risk_exports

publish_assets = [load_report, kpi_dashboard, at_risk_exports]
