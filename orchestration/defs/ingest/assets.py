"""Ingestion assets: landing batch files -> raw.<source> in DuckDB.

Asset keys are ["raw", <source>], the keys dagster-dbt gives the dbt sources,
so staging models hang off them in the graph. Validation happens inside the
asset, before anything is written: a blocking check would only stop the
steps after it, and bad rows must never reach raw. Row by row the contract
(bad rows are quarantined), then batch by batch the source's expectation
suite (a batch failing a blocking expectation is rejected whole); the
`batch_expectations` check then fails, blocking, so nothing downstream of a
source builds while one of its batches is rejected.

A source waits for the sources its suite references (`deps`): FX rates and
customers before invoices, invoices before their lines, payments and credit
notes. When a parent's blocking check fails, its children wait for the next
run too (their references could not be checked anyway).
"""

from pathlib import Path

import dagster as dg

from orchestration.defs.resources import WAREHOUSE_POOL, WarehouseResource
from orchestration.lib.check_runs import EXAMPLES_KEPT
from orchestration.lib.contract import SOURCES, Source
from orchestration.lib.expectations import parent_sources
from orchestration.lib.loader import BatchResult, SourceLoadReport, ingest_source
from orchestration.lib.warehouse import fetch_scalar

INGEST_GROUP = "ingest"
# Quarantined rows shown in an ingest asset's metadata; raw._quarantine has them all.
QUARANTINE_EXAMPLES = 20


def conservation_violations(conn, source_name: str) -> list[dict]:
    """Batches whose loaded + quarantined rows do not add up to the file's rows,
    checked against what raw and quarantine actually hold."""
    rows = conn.execute(
        f"""
        with loaded as (
            select _batch_id as batch_id, count(*) as n from raw.{source_name} group by 1
        ),
        quarantined as (
            select batch_id, count(*) as n from raw._quarantine where source = ? group by 1
        )
        select m.batch_file, m.rows_in_file, coalesce(l.n, 0), coalesce(q.n, 0)
        from raw._load_manifest as m
        left join loaded as l on l.batch_id = m.batch_id
        left join quarantined as q on q.batch_id = m.batch_id
        where m.source = ? and m.status = 'loaded'
          and (m.rows_in_file != coalesce(l.n, 0) + coalesce(q.n, 0)
               or m.rows_loaded != coalesce(l.n, 0)
               or m.rows_quarantined != coalesce(q.n, 0))
        """,
        [source_name, source_name],
    ).fetchall()
    return [{"batch_file": f, "rows_in_file": n, "rows_in_raw": lo, "rows_in_quarantine": q} for f, n, lo, q in rows]


def quarantine_examples(conn, report: SourceLoadReport, limit: int = QUARANTINE_EXAMPLES) -> list[dict]:
    """The first quarantined rows of the batches loaded in this run: file, row, column, reason.

    Reasons quote a value only for checked (typed, enum, code) columns, never a
    free-text one such as a name, email or comment."""
    batch_ids = [b.batch_id for b in report.loaded_batches if b.rows_quarantined]
    if not batch_ids:
        return []
    rows = conn.execute(
        "select batch_file, row_number, column_name, reason from raw._quarantine "
        f"where batch_id in ({', '.join('?' for _ in batch_ids)}) order by batch_id, row_number limit ?",
        [*batch_ids, limit],
    ).fetchall()
    return [{"file": f, "row": r, "column": c, "reason": reason} for f, r, c, reason in rows]


def _report_metadata(report: SourceLoadReport, total_rows: int, quarantined: list[dict]) -> dict:
    return {
        "new_batches": len(report.batches),
        "files_already_loaded": report.files_already_loaded,
        "rows_loaded": report.rows_loaded,
        "rows_quarantined": report.rows_quarantined,
        "unreadable_files": dg.MetadataValue.json(
            [{"file": b.batch_file, "error": b.error} for b in report.unreadable]
        ),
        "rejected_files": dg.MetadataValue.json([b.batch_file for b in report.rejected]),
        "quarantined_rows": dg.MetadataValue.json(quarantined),
        "expectation_seconds": round(sum(b.expectation_seconds for b in report.batches), 3),
        "dagster/row_count": total_rows,
        "batches": dg.MetadataValue.md(_batches_table(report)),
    }


def _batches_table(report: SourceLoadReport) -> str:
    if not report.batches:
        return "No new batch files."
    lines = ["| file | status | rows | loaded | quarantined |", "|---|---|---|---|---|"]
    lines += [
        f"| {b.batch_file} | {b.status} | {b.rows_in_file if b.rows_in_file is not None else ''} "
        f"| {b.rows_loaded} | {b.rows_quarantined} |"
        for b in report.batches
    ]
    return "\n".join(lines)


def failed_expectations(batches: list[BatchResult], severity: str) -> list[dict]:
    """Per batch and failed expectation of that severity: what failed, on how many rows, examples."""
    return [
        {
            "file": batch.batch_file,
            "expectation": run.check_name,
            "failing_rows": run.failing_rows,
            "rows_checked": run.rows_checked,
            "examples": run.examples[:EXAMPLES_KEPT],
            "message": run.message,
        }
        for batch in batches
        for run in batch.failed_checks
        if run.severity == severity
    ]


def batch_expectations_result(report: SourceLoadReport) -> dg.AssetCheckResult:
    """Fails while any batch of the source is rejected: every rejected file present in the
    landing folder is retried (and so reported) on every run until it loads."""
    rejected = failed_expectations(report.rejected, "block")
    warnings = failed_expectations(report.batches, "warn")
    return dg.AssetCheckResult(
        check_name="batch_expectations",
        passed=not report.rejected,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"{len(report.rejected)} batch file(s) rejected: "
            + "; ".join(
                f"{b.batch_file}: {', '.join(r.check_name for r in b.failed_checks if r.blocks)}"
                for b in report.rejected
            )
            if report.rejected
            else f"{len(report.batches)} new batch file(s) checked, none rejected"
        ),
        metadata={
            "rejected_files": dg.MetadataValue.json([b.batch_file for b in report.rejected]),
            "held_back_files": dg.MetadataValue.json(report.held_back),
            "failed_expectations": dg.MetadataValue.json(rejected),
            "warnings": dg.MetadataValue.json(warnings),
            "batches_checked": sum(1 for b in report.batches if b.check_runs),
            "expectations_run": sum(len(b.check_runs) for b in report.batches),
            "expectation_seconds": round(sum(b.expectation_seconds for b in report.batches), 3),
        },
    )


def build_ingest_asset(source: Source) -> dg.AssetsDefinition:
    key = dg.AssetKey(["raw", source.name])
    conservation = dg.AssetCheckSpec(
        "conservation",
        asset=key,
        blocking=True,
        description="Every batch: rows loaded + rows quarantined = rows in the file.",
    )
    readable = dg.AssetCheckSpec(
        "all_files_readable", asset=key, description="Every landed file of this source could be read (warns otherwise)."
    )
    expectations = dg.AssetCheckSpec(
        "batch_expectations",
        asset=key,
        blocking=True,
        description=(
            f"No batch of {source.name} is rejected by a blocking expectation of expectations/raw_{source.name}.json "
            "(keys, enums, ranges, time window, references to loaded rows); warn-level failures only report."
        ),
    )

    @dg.asset(
        key=key,
        group_name=INGEST_GROUP,
        kinds={"duckdb", "polars"},
        pool=WAREHOUSE_POOL,
        owners=["team:data-platform"],
        tags={"layer": "raw"},
        deps=[dg.AssetKey(["raw", parent]) for parent in parent_sources(source.name)],
        description=(
            f"{source.description} Loads new `{source.name}/` batch files from the landing folder "
            f"into raw.{source.name}; rows that break the contract go to raw._quarantine, and a batch "
            f"that fails a blocking expectation of expectations/raw_{source.name}.json is rejected whole."
        ),
        check_specs=[conservation, readable, expectations],
    )
    def ingest(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        with warehouse.connect() as conn:
            report = ingest_source(
                conn, Path(warehouse.landing_dir), source.name, log=context.log.info, run_id=context.run.run_id
            )
            for bad in report.unreadable:
                # The error starts with the file's path.
                context.log.error(f"UNREADABLE (retried next run): {bad.error}")
            for bad in report.rejected:
                context.log.error(bad.error)
            total_rows = fetch_scalar(conn, f"select count(*) from raw.{source.name}")
            violations = conservation_violations(conn, source.name)
            quarantined = quarantine_examples(conn, report)
        yield dg.MaterializeResult(metadata=_report_metadata(report, total_rows, quarantined))
        yield dg.AssetCheckResult(
            check_name="conservation",
            passed=not violations,
            metadata={"violations": dg.MetadataValue.json(violations[:20])},
        )
        yield dg.AssetCheckResult(
            check_name="all_files_readable",
            passed=not report.unreadable,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "unreadable": dg.MetadataValue.json(
                    [{"file": b.batch_file, "error": b.error} for b in report.unreadable]
                )
            },
        )
        yield batch_expectations_result(report)

    return ingest


ingest_assets = [build_ingest_asset(source) for source in SOURCES.values()]
