"""Published artefacts built from the warehouse after the models are built."""

from pathlib import Path

import dagster as dg

from orchestration.defs.resources import WAREHOUSE_POOL, WarehouseResource
from orchestration.lib.contract import SOURCE_NAMES
from orchestration.lib.run_report import load_summary, write_load_report

PUBLISH_GROUP = "publish"


@dg.asset(
    key=dg.AssetKey(["publish", "load_report"]),
    group_name=PUBLISH_GROUP,
    kinds={"duckdb", "markdown"},
    pool=WAREHOUSE_POOL,
    owners=["team:data-platform"],
    deps=[dg.AssetKey(["raw", name]) for name in SOURCE_NAMES],
    description="Per-source load report (batches, rows loaded and quarantined, unreadable files) "
    "as Markdown and JSON in <output>/reports.",
)
def load_report(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    with warehouse.connect(read_only=True) as conn:
        summary = load_summary(conn)
    path = write_load_report(summary, Path(warehouse.output_dir) / "reports")
    context.log.info(f"Load report written to {path}")
    quarantined = sum(s.get("rows_quarantined", 0) for s in summary["sources"].values())
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "rows_quarantined": quarantined,
            "unreadable_files": len(summary["unreadable_files"]),
        }
    )
