"""The retention team's at-risk export set, published after the quality checks.

One CSV and one Parquet file per value of a segment dimension (policy
`exports.segment_dimension`, or the run's config) plus manifest.json, under
<output>/exports/at_risk/. The asset depends on marts/customer_risk, so the blocking
checks on that mart run first and, when one fails, Dagster skips this step and the
previous set stays. Names and emails are never in this set (docs/exports.md).

A new set is written into a new version folder and made visible by replacing the
`at_risk` link in one atomic step (orchestration/lib/atomic_files.py): at every moment
a reader finds the old complete set or the new one, never a mix and never no folder.
"""

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from pydantic import Field

from orchestration.defs.publish.assets import PUBLISH_GROUP
from orchestration.defs.resources import WAREHOUSE_POOL, WarehouseResource
from orchestration.lib.at_risk_export import (
    FORMATS,
    RISK_TABLE,
    SEGMENT_DIMENSIONS,
    SORT_ORDER,
    AtRiskFilter,
    ExportedFile,
    RiskWording,
    export_defaults,
    risk_wording,
    segment_choices,
    select_at_risk,
    write_frame,
)
from orchestration.lib.atomic_files import publish_folder, write_text_atomically
from orchestration.lib.policy import load_policy, policy_path

AT_RISK_EXPORTS_KEY = dg.AssetKey(["publish", "at_risk_exports"])
CUSTOMER_RISK_KEY = dg.AssetKey(["marts", "customer_risk"])
EXPORT_FOLDER = Path("exports") / "at_risk"
MANIFEST_NAME = "manifest.json"
FILE_PREFIX = "at_risk"


class AtRiskExportConfig(dg.Config):
    """Run-time choices; unset values come from the policy's `exports` section."""

    segment_dimension: str | None = Field(
        default=None,
        description=f"One file per value of this dimension ({', '.join(SEGMENT_DIMENSIONS)}); "
        "default exports.segment_dimension in config/billing_policy.yml.",
    )
    min_risk: float | None = Field(
        default=None,
        description="Lowest risk_score exported, 0..1 (customers scoring 0 never are); default exports.min_risk.",
    )


@dataclass(frozen=True)
class PublishedExportSet:
    folder: Path
    manifest: dict[str, Any]


def export_set_dir(output_dir: Path) -> Path:
    return Path(output_dir) / EXPORT_FOLDER


def segment_file_stem(dimension: str, value: str) -> str:
    """A file name part for a segment value: `24m+` -> `24m_plus`, other unsafe characters -> `_`."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", value.replace("+", "_plus")).strip("._") or "blank"
    return f"{FILE_PREFIX}_{dimension}_{safe}"


def publish_at_risk_exports(
    conn: duckdb.DuckDBPyConnection,
    output_dir: Path,
    segment_dimension: str,
    min_risk: float,
    wording: RiskWording,
    generated_at: dt.datetime | None = None,
) -> PublishedExportSet:
    """Select once, split by the dimension's values (every value present in the mart gets
    its files, empty ones too, so a missing file never has to be explained), write every
    file and the manifest into a new version folder, then swap it in. Nothing published
    is touched before every file is written."""
    if segment_dimension not in SEGMENT_DIMENSIONS:
        raise ValueError(f"unknown segment dimension {segment_dimension!r}; valid: {', '.join(SEGMENT_DIMENSIONS)}")
    at_risk = AtRiskFilter(min_risk=min_risk)  # validates min_risk
    generated_at = generated_at or dt.datetime.now(dt.UTC)
    frame = select_at_risk(conn, at_risk, wording)
    values = segment_choices(conn)[segment_dimension]
    as_of = conn.execute(f"select max(as_of_month) from {RISK_TABLE}").fetchall()[0][0]
    stems = {value: segment_file_stem(segment_dimension, value) for value in values}
    if len(set(stems.values())) != len(stems):
        raise ValueError(f"two {segment_dimension} values map to one file name: {stems}")

    def fill(folder: Path) -> dict[str, Any]:
        files: list[dict[str, Any]] = []
        for value, stem in stems.items():
            part = frame.filter(frame[segment_dimension] == value)
            for file_format in FORMATS:
                written: ExportedFile = write_frame(part, folder / f"{stem}.{file_format}", file_format)
                files.append(
                    {"file": written.path.name, "format": file_format, "segment_value": value, "rows": written.rows}
                )
        manifest = {
            "export": "at_risk_customers",
            "source": RISK_TABLE,
            "as_of_month": as_of.isoformat() if as_of else None,
            "generated_at": generated_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
            "segment_dimension": segment_dimension,
            "filters": at_risk.describe(),
            "sort": SORT_ORDER,
            "risk_window_days": wording.window_days,
            "pii_included": False,
            "rows": frame.height,
            "columns": frame.columns,
            "files": files,
        }
        # the manifest last: a set is complete when its manifest is there
        write_text_atomically(folder / MANIFEST_NAME, json.dumps(manifest, indent=1) + "\n")
        return manifest

    target = export_set_dir(output_dir)
    manifest = publish_folder(target, fill)
    return PublishedExportSet(target, manifest)


def _files_markdown(manifest: dict[str, Any]) -> str:
    lines = ["| segment | rows | files |", "|---|---:|---|"]
    by_value: dict[str, list[dict[str, Any]]] = {}
    for entry in manifest["files"]:
        by_value.setdefault(entry["segment_value"], []).append(entry)
    for value, entries in by_value.items():
        lines.append(f"| {value} | {entries[0]['rows']:,} | {', '.join(entry['file'] for entry in entries)} |")
    return "\n".join(lines)


@dg.asset(
    key=AT_RISK_EXPORTS_KEY,
    group_name=PUBLISH_GROUP,
    kinds={"duckdb", "csv", "parquet"},
    pool=WAREHOUSE_POOL,
    owners=["team:data-platform"],
    tags={"audience": "retention"},
    deps=[CUSTOMER_RISK_KEY],
    description="The retention team's at-risk customers (marts.customer_risk with a driver present), sorted by "
    "value at risk, drivers in words, no names or emails: one CSV and one Parquet file per value of the "
    "policy's exports.segment_dimension plus manifest.json in <output>/exports/at_risk/, replaced as a set. "
    "Skipped when a blocking check on marts/customer_risk fails.",
)
def at_risk_exports(
    context: dg.AssetExecutionContext, config: AtRiskExportConfig, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    source = policy_path()
    policy = load_policy(source)
    defaults = export_defaults(policy, str(source))
    dimension = config.segment_dimension or defaults.segment_dimension
    min_risk = defaults.min_risk if config.min_risk is None else config.min_risk
    with warehouse.connect(read_only=True) as conn:
        published = publish_at_risk_exports(
            conn, Path(warehouse.output_dir), dimension, min_risk, risk_wording(policy, str(source))
        )
    manifest = published.manifest
    context.log.info(
        f"At-risk exports for {manifest['as_of_month']}: {manifest['rows']:,} customers by {dimension} "
        f"(min risk {min_risk}) in {published.folder}"
    )
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(published.folder)),
            "manifest": dg.MetadataValue.path(str(published.folder / MANIFEST_NAME)),
            "as_of_month": manifest["as_of_month"],
            "segment_dimension": dimension,
            "min_risk": min_risk,
            "rows": manifest["rows"],
            "files": dg.MetadataValue.md(_files_markdown(manifest)),
        }
    )
