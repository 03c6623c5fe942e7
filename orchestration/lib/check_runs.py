"""The history of every data-quality check run: quality.check_runs.

Dagster keeps check results in its own event log, but an analyst asking "what
failed, when, and on which batch" should not need the Dagster instance: every
check (GX suites on ingested batches and published marts, dbt tests, the
billing-anomaly gate) appends one row per check and target here, and the
human-readable report is rendered from this table.

Examples and messages are stored with personal values masked
(orchestration/lib/personal_data.py): this table is read by everyone who
reads the quality report, a wider circle than the warehouse's data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb

from orchestration.lib.personal_data import mask_examples, redact_optional

QUALITY_SCHEMA = "quality"
CHECK_RUNS_TABLE = f"{QUALITY_SCHEMA}.check_runs"

# Where a check sits: on an ingested batch, a published mart, a dbt test, the anomaly gate.
LAYERS = ("ingest", "mart", "dbt_test", "anomaly_gate")
SEVERITIES = ("block", "warn")
EXAMPLES_KEPT = 10

_DDL = f"""
create table if not exists {CHECK_RUNS_TABLE} (
    run_id varchar not null,          -- the Dagster run id, or 'cli-<time>' outside Dagster
    checked_at timestamp not null,    -- UTC
    layer varchar not null,           -- one of LAYERS
    asset varchar not null,           -- the asset checked, e.g. raw/invoices or marts/kpi_churn
    check_name varchar not null,      -- e.g. expect_column_values_to_be_unique(invoice_id)
    target varchar,                   -- what exactly: a batch file, a table, a period
    passed boolean not null,
    severity varchar not null,        -- block: stops publication when it fails; warn: reported only
    rows_checked bigint,
    failing_rows bigint,
    examples varchar,                 -- JSON list of up to EXAMPLES_KEPT failing values or rows
    message varchar,                  -- one sentence a person can act on
    duration_ms double
)
"""


@dataclass
class CheckRun:
    """One check on one target, as it is stored."""

    layer: str
    asset: str
    check_name: str
    passed: bool
    severity: str = "block"
    target: str | None = None
    rows_checked: int | None = None
    failing_rows: int | None = None
    examples: list = field(default_factory=list)
    message: str | None = None
    duration_ms: float | None = None

    def __post_init__(self) -> None:
        if self.layer not in LAYERS:
            raise ValueError(f"check layer {self.layer!r} is not one of {LAYERS}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"check severity {self.severity!r} is not one of {SEVERITIES}")

    @property
    def blocks(self) -> bool:
        return not self.passed and self.severity == "block"


def ensure_check_runs_table(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(f"create schema if not exists {QUALITY_SCHEMA}")
    conn.execute(_DDL)


def record_check_runs(conn: duckdb.DuckDBPyConnection, run_id: str, runs: list[CheckRun]) -> None:
    """Append the runs in one transaction (all or none), personal values masked."""
    if not runs:
        return
    ensure_check_runs_table(conn)
    checked_at = datetime.now(UTC).replace(tzinfo=None)
    rows = [
        (
            run_id,
            checked_at,
            r.layer,
            r.asset,
            r.check_name,
            r.target,
            r.passed,
            r.severity,
            r.rows_checked,
            r.failing_rows,
            json.dumps(mask_examples(r.examples[:EXAMPLES_KEPT], r.asset), default=str),
            redact_optional(r.message),
            r.duration_ms,
        )
        for r in runs
    ]
    conn.begin()
    try:
        conn.executemany(f"insert into {CHECK_RUNS_TABLE} values ({', '.join('?' * 13)})", rows)
    except BaseException:
        conn.rollback()
        raise
    conn.commit()


def cli_run_id() -> str:
    """A run id for checks run outside Dagster (scripts, tests)."""
    return "cli-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
