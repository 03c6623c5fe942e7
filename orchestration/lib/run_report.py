"""What the last loads did, per source: for people (Markdown, console) and tools (JSON).

The report says what kind of problem each quarantined row had, not the values:
a reason quotes the delivered value, which can be anyone's name or address in
the wrong column, so quoted values are blanked here (they group better that
way, too) and left in raw._quarantine. File names and errors are shown with
email-shaped text redacted (orchestration/lib/personal_data.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from orchestration.lib.atomic_files import write_text_atomically
from orchestration.lib.contract import SOURCE_NAMES
from orchestration.lib.personal_data import redact_optional
from orchestration.lib.warehouse import fetch_scalar, open_warehouse


def load_summary(conn: duckdb.DuckDBPyConnection) -> dict:
    """Totals per source from the load manifest, plus the commonest quarantine reasons."""
    per_source = {
        row[0]: {
            "batches_loaded": row[1],
            "duplicate_batches": row[2],
            "unreadable_files": row[3],
            "rejected_batches": row[4],
            "rows_in_files": row[5],
            "rows_loaded": row[6],
            "rows_quarantined": row[7],
        }
        for row in conn.execute(
            """
            select source,
                   count(*) filter (where status = 'loaded'),
                   count(*) filter (where status = 'duplicate_content'),
                   count(*) filter (where status = 'unreadable'),
                   count(*) filter (where status = 'rejected'),
                   coalesce(sum(rows_in_file) filter (where status = 'loaded'), 0),
                   coalesce(sum(rows_loaded), 0),
                   coalesce(sum(rows_quarantined), 0)
            from raw._load_manifest
            group by source
            """
        ).fetchall()
    }
    reasons = conn.execute(
        """
        select source,
               column_name,
               -- (the value) and 'the value' become (...) and '...': the kind of problem, no delivered value
               regexp_replace(regexp_replace(reason, '\\(.*\\)', '(...)'), '''.*''', '''...''') as reason_kind,
               count(*) as n
        from raw._quarantine
        group by all
        order by n desc
        limit 20
        """
    ).fetchall()
    unreadable = conn.execute(
        "select source, batch_file, error from raw._load_manifest where status = 'unreadable' order by 1, 2"
    ).fetchall()
    # Rejected batches (a blocking expectation failed) are, like unreadable files,
    # neither loaded nor quarantined: recorded with their reason and retried.
    rejected = conn.execute(
        "select source, batch_file, rows_in_file, error from raw._load_manifest where status = 'rejected' order by 1, 2"
    ).fetchall()
    return {
        "sources": {name: per_source.get(name, {}) for name in SOURCE_NAMES},
        "top_quarantine_reasons": [{"source": s, "column": c, "reason": r, "rows": n} for s, c, r, n in reasons],
        "unreadable_files": [
            {"source": s, "file": redact_optional(f), "error": redact_optional(e)} for s, f, e in unreadable
        ],
        "rejected_batches": [
            {"source": s, "file": redact_optional(f), "rows": n, "error": redact_optional(e)} for s, f, n, e in rejected
        ],
    }


def render_markdown(summary: dict) -> str:
    lines = [
        "# Load report",
        "",
        "| source | batches | duplicates skipped | unreadable | rejected | rows in files | loaded | quarantined |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in summary["sources"].items():
        lines.append(
            f"| {name} | {s.get('batches_loaded', 0)} | {s.get('duplicate_batches', 0)} "
            f"| {s.get('unreadable_files', 0)} | {s.get('rejected_batches', 0)} | {s.get('rows_in_files', 0):,} "
            f"| {s.get('rows_loaded', 0):,} | {s.get('rows_quarantined', 0):,} |"
        )
    if summary["unreadable_files"]:
        lines += ["", "## Unreadable files", ""]
        lines += [f"- `{u['source']}/{u['file']}`: {u['error']}" for u in summary["unreadable_files"]]
    if summary.get("rejected_batches"):
        lines += ["", "## Rejected batches (a blocking expectation failed; nothing loaded, retried next run)", ""]
        lines += [f"- `{r['file']}` ({r['rows']:,} rows): {r['error']}" for r in summary["rejected_batches"]]
    if summary["top_quarantine_reasons"]:
        lines += [
            "",
            "## Commonest quarantine reasons",
            "",
            "| source | column | reason | rows |",
            "|---|---|---|---:|",
        ]
        lines += [
            f"| {r['source']} | {r['column'] or ''} | {r['reason']} | {r['rows']:,} |"
            for r in summary["top_quarantine_reasons"]
        ]
    lines += ["", "Every quarantined row, with file, row number, column and reason: `raw._quarantine`."]
    return "\n".join(lines) + "\n"


def write_load_report(summary: dict, reports_dir: Path) -> Path:
    reports_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomically(reports_dir / "load_report.json", json.dumps(summary, indent=2, default=str))
    path = reports_dir / "load_report.md"
    write_text_atomically(path, render_markdown(summary))
    return path


def print_load_summary(warehouse_path: Path) -> None:
    if not warehouse_path.exists():
        print("No warehouse was written.")
        return
    with open_warehouse(warehouse_path, read_only=True) as conn:
        has_manifest = fetch_scalar(
            conn,
            "select count(*) from information_schema.tables"
            " where table_schema = 'raw' and table_name = '_load_manifest'",
        )
        if not has_manifest:
            print("Nothing was loaded.")
            return
        print(render_markdown(load_summary(conn)))
