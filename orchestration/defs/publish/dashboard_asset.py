"""The leadership KPI dashboard, published after the quality gate.

The asset sits downstream of every mart it reads; the blocking checks on those
marts (the billing-anomaly gate on marts/billing_anomalies among them) run
first, and when one fails Dagster skips this step, so the last good dashboard
stays in place. The page and its data are replaced atomically (dashboards.publish).
"""

from pathlib import Path

import dagster as dg

from dashboards.data import KPI_TABLES
from dashboards.publish import publish_dashboard
from dashboards.render import format_change, format_value
from orchestration.defs.publish.assets import PUBLISH_GROUP
from orchestration.defs.resources import WAREHOUSE_POOL, WarehouseResource

KPI_DASHBOARD_KEY = dg.AssetKey(["publish", "kpi_dashboard"])
# Every mart the dashboard reads, under the keys dagster-dbt gives the dbt models.
DASHBOARD_MARTS = (*KPI_TABLES, "marts.billing_anomalies")


def _tiles_markdown(tiles: list[dict]) -> str:
    lines = ["| KPI | value | change vs previous month |", "|---|---:|---:|"]
    for tile in tiles:
        lines.append(
            f"| {tile['label']} | {format_value(tile['value'], tile['unit'])} "
            f"| {format_change(tile['change'], tile['relative_change'], tile['unit'])} |"
        )
    return "\n".join(lines)


@dg.asset(
    key=KPI_DASHBOARD_KEY,
    group_name=PUBLISH_GROUP,
    kinds={"plotly", "html"},
    pool=WAREHOUSE_POOL,
    owners=["team:data-platform"],
    deps=[dg.AssetKey(table.split(".")) for table in DASHBOARD_MARTS],
    description="Leadership KPI dashboard: a self-contained offline HTML page (plotly.js inline) with headline "
    "tiles, monthly trends by segment, billing anomalies, AR aging and data-quality status, plus the numbers "
    "behind it, in <output>/dashboard/index.html and dashboard_data.json. Skipped when a blocking check fails.",
)
def kpi_dashboard(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    with warehouse.connect(read_only=True) as conn:
        published = publish_dashboard(conn, Path(warehouse.output_dir))
    data = published.data
    context.log.info(f"Dashboard for {data['as_of_month'][:7]} published to {published.page}")
    anomalies = data["anomalies"]["totals"]
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(published.page)),
            "data_path": dg.MetadataValue.path(str(published.data_file)),
            "latest_month": data["as_of_month"],
            "tiles": dg.MetadataValue.md(_tiles_markdown(data["tiles"])),
            "block_anomalies": anomalies["block"]["anomalies"],
            "warn_anomalies": anomalies["warn"]["anomalies"],
            "page_bytes": published.page.stat().st_size,
        }
    )
