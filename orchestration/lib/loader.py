"""Load landing batch files into raw DuckDB tables: each file once, whole or not at all.

The load manifest is the receipt book. It makes a rerun a no-op, recognises the
same content delivered under another name, and numbers batches in load order so
downstream models can pick the newest version of a key when a source has no
`updated_at`. Each batch (raw rows, quarantine rows, manifest row) is one
transaction, so a crash never leaves half a batch behind, and every row of a
file is accounted for: rows_loaded + rows_quarantined = rows_in_file.

Before a batch is written, its contract-valid rows also meet the source's
expectation suite (expectations/raw_<source>.json, orchestration/lib/expectations.py):
keys, enums, ranges, time window and references to rows already loaded. A
failing `block` expectation rejects the whole batch (status `rejected`, the
error names the file, expectation, column, failing rows and examples; nothing
is written, and the file is retried on the next run, when it may be fixed or
its parent rows may have arrived); `warn` failures load and are reported.
Every expectation's result goes to quality.check_runs.

`ingest_source` manages its own transactions: pass a connection that is not
inside one. DuckDB allows one writer per file, so only one ingestion runs at a time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from time import perf_counter

import duckdb
import polars as pl

from orchestration.lib.check_runs import CheckRun, cli_run_id, record_check_runs
from orchestration.lib.contract import BATCH_SUFFIXES, SOURCES, TRUTH_FOLDER, Source
from orchestration.lib.expectations import rejection_error, validate_raw_batch
from orchestration.lib.failpoints import failpoint
from orchestration.lib.readers import ROW_NUMBER, UnreadableBatchError, batch_format, read_batch
from orchestration.lib.validation import EXTRA_COLUMN, QUARANTINE_SCHEMA, validate_batch
from orchestration.lib.warehouse import fetch_scalar

RAW_SCHEMA = "raw"
MANIFEST_TABLE = f"{RAW_SCHEMA}._load_manifest"
QUARANTINE_TABLE = f"{RAW_SCHEMA}._quarantine"

LOADED = "loaded"
DUPLICATE_CONTENT = "duplicate_content"
UNREADABLE = "unreadable"
REJECTED = "rejected"  # readable, but a blocking expectation failed: nothing written
# Statuses that mean "this file needs nothing more"; unreadable and rejected files are retried.
DONE_STATUSES = (LOADED, DUPLICATE_CONTENT)
RETRIED_STATUSES = (UNREADABLE, REJECTED)

# Lineage columns after the contract columns of every raw table.
METADATA_COLUMNS = (
    (EXTRA_COLUMN, "VARCHAR"),  # JSON object of columns the contract does not know
    ("_batch_id", "BIGINT NOT NULL"),
    ("_batch_file", "VARCHAR NOT NULL"),
    ("_batch_hash", "VARCHAR NOT NULL"),
    ("_row_number", "BIGINT NOT NULL"),
    ("_loaded_at", "TIMESTAMP NOT NULL"),
)

MANIFEST_DDL = f"""
create table if not exists {MANIFEST_TABLE} (
    batch_id bigint primary key,
    source varchar not null,
    batch_file varchar not null,
    content_hash varchar,
    file_size bigint not null,
    file_mtime timestamp not null,
    file_format varchar not null,
    status varchar not null,
    rows_in_file bigint,
    rows_loaded bigint not null,
    rows_quarantined bigint not null,
    duplicate_of varchar,
    error varchar,
    loaded_at timestamp not null,
)
"""

QUARANTINE_DDL = f"""
create table if not exists {QUARANTINE_TABLE} (
    source varchar not null,
    batch_id bigint not null,
    batch_file varchar not null,
    content_hash varchar not null,
    row_number bigint not null,
    column_name varchar,
    reason varchar not null,
    record varchar,
    quarantined_at timestamp not null,
)
"""

_MANIFEST_COLUMNS = (
    "batch_id",
    "source",
    "batch_file",
    "content_hash",
    "file_size",
    "file_mtime",
    "file_format",
    "status",
    "rows_in_file",
    "rows_loaded",
    "rows_quarantined",
    "duplicate_of",
    "error",
    "loaded_at",
)


class ConservationError(RuntimeError):
    """Rows went missing or appeared between the file and the warehouse."""


@dataclass
class BatchResult:
    """What happened to one file in this run."""

    source: str
    batch_file: str  # relative to the landing dir, '/'-separated
    content_hash: str
    status: str  # LOADED | DUPLICATE_CONTENT | UNREADABLE | REJECTED
    rows_in_file: int | None
    rows_loaded: int
    rows_quarantined: int
    error: str | None = None
    duplicate_of: str | None = None
    batch_id: int | None = None
    seconds: float = 0.0
    # The expectation suite's results on this batch, and the time it took.
    check_runs: list[CheckRun] = field(default_factory=list)
    expectation_seconds: float = 0.0

    @property
    def failed_checks(self) -> list[CheckRun]:
        return [run for run in self.check_runs if not run.passed]


@dataclass
class SourceLoadReport:
    source: str
    batches: list[BatchResult] = field(default_factory=list)
    files_already_loaded: int = 0
    # Files after a rejected one, left for a later run so batches load in delivery order.
    held_back: list[str] = field(default_factory=list)

    @property
    def loaded_batches(self) -> list[BatchResult]:
        return [b for b in self.batches if b.status == LOADED]

    @property
    def duplicate_batches(self) -> list[BatchResult]:
        return [b for b in self.batches if b.status == DUPLICATE_CONTENT]

    @property
    def unreadable(self) -> list[BatchResult]:
        return [b for b in self.batches if b.status == UNREADABLE]

    @property
    def rejected(self) -> list[BatchResult]:
        return [b for b in self.batches if b.status == REJECTED]

    @property
    def rows_loaded(self) -> int:
        return sum(b.rows_loaded for b in self.batches)

    @property
    def rows_quarantined(self) -> int:
        return sum(b.rows_quarantined for b in self.batches)

    def summary(self) -> str:
        return (
            f"{self.source}: {len(self.loaded_batches)} file(s) loaded "
            f"({self.rows_loaded:,} rows loaded, {self.rows_quarantined:,} quarantined), "
            f"{len(self.duplicate_batches)} duplicate, {len(self.unreadable)} unreadable, "
            f"{len(self.rejected)} rejected, {len(self.held_back)} held back behind a rejected file, "
            f"{self.files_already_loaded} already loaded"
        )


# --- schema ---------------------------------------------------------------


def raw_table_columns(source: Source) -> list[tuple[str, str]]:
    """(name, DuckDB type) of raw.<source>, in table order."""
    contract = [(c.name, c.raw_sql_type + (" NOT NULL" if c.required else "")) for c in source.columns]
    return contract + list(METADATA_COLUMNS)


def ensure_warehouse_schema(conn: duckdb.DuckDBPyConnection) -> None:
    """Create schema raw, one raw table per source, the manifest and the quarantine."""
    conn.execute(f"create schema if not exists {RAW_SCHEMA}")
    for source in SOURCES.values():
        columns = ",\n    ".join(f'"{name}" {sql_type}' for name, sql_type in raw_table_columns(source))
        conn.execute(f'create table if not exists {RAW_SCHEMA}."{source.name}" (\n    {columns}\n)')
        _check_raw_table(conn, source)
    conn.execute(MANIFEST_DDL)
    conn.execute(QUARANTINE_DDL)


def _check_raw_table(conn: duckdb.DuckDBPyConnection, source: Source) -> None:
    # `create if not exists` keeps an old table as it is; a contract change must not pass unnoticed.
    found = conn.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = ? and table_name = ? order by ordinal_position",
        [RAW_SCHEMA, source.name],
    ).fetchall()
    expected = [(name, sql_type.removesuffix(" NOT NULL")) for name, sql_type in raw_table_columns(source)]
    if [(n, t.upper()) for n, t in found] != expected:
        raise RuntimeError(
            f"{RAW_SCHEMA}.{source.name} has columns {found}, the contract expects {expected}: "
            "migrate the table or rebuild the warehouse"
        )


# --- discovery ------------------------------------------------------------


def discover_batch_files(landing_dir: Path, source_name: str, log: Callable[[str], None] = print) -> list[Path]:
    """Batch files of one source, sorted by relative path (= load order)."""
    folder = landing_dir / source_name
    if not folder.is_dir():
        log(f"{source_name}: no folder {folder}, nothing to load")
        return []
    truth = (landing_dir / TRUTH_FOLDER).resolve()
    found = []
    for path in sorted(folder.rglob("*"), key=lambda p: p.relative_to(landing_dir).as_posix()):
        if not path.is_file():
            continue
        rel = path.relative_to(landing_dir).as_posix()
        if path.resolve().is_relative_to(truth):
            log(f"{rel}: ignored, points into {TRUTH_FOLDER}/")
        elif any(part.startswith(".") for part in path.relative_to(folder).parts):
            # Dot files are what copy tools write while a transfer is in progress.
            log(f"{rel}: ignored, hidden file")
        elif batch_format(path) is None:
            log(f"{rel}: ignored, not a batch file ({', '.join(BATCH_SUFFIXES)})")
        else:
            found.append(path)
    return found


# --- ingestion ------------------------------------------------------------


def ingest_source(
    conn: duckdb.DuckDBPyConnection,
    landing_dir: Path,
    source_name: str,
    log: Callable[[str], None] = print,
    run_id: str | None = None,
) -> SourceLoadReport:
    """Load every new batch file of one source; safe to rerun at any time.

    `run_id` labels the expectation results in quality.check_runs (the Dagster
    run id; a `cli-...` id when None)."""
    if source_name not in SOURCES:
        raise ValueError(f"unknown source {source_name!r}; known: {', '.join(SOURCES)}")
    source = SOURCES[source_name]
    landing_dir = Path(landing_dir)
    run_id = run_id or cli_run_id()
    ensure_warehouse_schema(conn)
    report = SourceLoadReport(source_name)
    done = {
        (batch_file, size, mtime_us)
        for batch_file, size, mtime_us in conn.execute(
            f"select batch_file, file_size, epoch_us(file_mtime) from {MANIFEST_TABLE} "
            "where source = ? and status in (?, ?)",
            [source_name, *DONE_STATUSES],
        ).fetchall()
    }
    loaded_hashes: dict[str, str] = dict(
        conn.execute(
            f"select content_hash, min(batch_file) from {MANIFEST_TABLE} "
            "where source = ? and status = ? group by content_hash",
            [source_name, LOADED],
        ).fetchall()
    )
    loaded_paths = set(loaded_hashes.values())
    for path in discover_batch_files(landing_dir, source_name, log):
        rel = path.relative_to(landing_dir).as_posix()
        try:
            stat = path.stat()
        except OSError as error:
            log(f"{rel}: skipped, gone since it was listed ({error})")
            continue
        # Microseconds: what a TIMESTAMP column stores, so the comparison is exact.
        mtime_us = stat.st_mtime_ns // 1000
        if (rel, stat.st_size, mtime_us) in done:
            report.files_already_loaded += 1
            continue
        if report.rejected:
            # Without updated_at the later batch's version of a row wins downstream (by
            # batch id): loading later files now would let the rejected batch, loaded on
            # a later run, override their newer versions. They wait for it.
            report.held_back.append(rel)
            log(f"{rel}: held back until {report.rejected[0].batch_file} loads (batches load in order)")
            continue
        result = _ingest_file(conn, source, path, rel, stat.st_size, mtime_us, loaded_hashes)
        # After the batch's own transaction: a check history never holds back a load.
        record_check_runs(conn, run_id, result.check_runs)
        report.batches.append(result)
        log(_describe(result))
        if result.status == LOADED:
            if rel in loaded_paths:
                # Batches are immutable by contract; raw keeps both versions, but say so.
                log(f"{rel}: WARNING, loaded before with different content; both versions are in raw")
            loaded_hashes.setdefault(result.content_hash, rel)
    log(report.summary())
    return report


def _describe(result: BatchResult) -> str:
    if result.status == LOADED:
        return (
            f"{result.batch_file}: loaded {result.rows_loaded:,} rows, quarantined "
            f"{result.rows_quarantined:,} (batch {result.batch_id}, {result.seconds:.2f} s)"
        )
    if result.status == DUPLICATE_CONTENT:
        return f"{result.batch_file}: same content as {result.duplicate_of}, nothing loaded"
    if result.status == REJECTED:
        return f"REJECTED: {result.error}"
    return f"UNREADABLE (retried next run): {result.error}"


def _ingest_file(
    conn: duckdb.DuckDBPyConnection,
    source: Source,
    path: Path,
    rel: str,
    size: int,
    mtime_us: int,
    loaded_hashes: dict[str, str],
) -> BatchResult:
    started = perf_counter()
    file_format = batch_format(path) or ""
    manifest = {
        "source": source.name,
        "batch_file": rel,
        "file_size": size,
        "file_mtime": datetime(1970, 1, 1) + timedelta(microseconds=mtime_us),
        "file_format": file_format,
        "duplicate_of": None,
        "error": None,
    }
    try:
        data = path.read_bytes()
    except OSError as error:
        return _record_unreadable(conn, manifest, "", f"{rel}: cannot read the file ({error})", started)
    content_hash = hashlib.sha256(data).hexdigest()
    if not data:
        # Never a finished export (a CSV has at least its header): most likely a copy
        # still in progress, so it is retried rather than recorded as loaded.
        error = f"{rel}: empty file (0 bytes): nothing to load; retried next run, in case it is still being written"
        return _record_unreadable(conn, manifest, content_hash, error, started)
    if content_hash in loaded_hashes:
        manifest |= {
            "content_hash": content_hash,
            "status": DUPLICATE_CONTENT,
            "duplicate_of": loaded_hashes[content_hash],
            "rows_in_file": None,
            "rows_loaded": 0,
            "rows_quarantined": 0,
        }
        batch_id = _in_transaction(conn, lambda: _insert_manifest_row(conn, manifest))
        return _result(manifest, batch_id, started)
    try:
        raw = read_batch(data, file_format, rel)
    except UnreadableBatchError as error:
        return _record_unreadable(conn, manifest, content_hash, str(error), started)
    del data
    validated = validate_batch(raw.frame, source)
    expectations_started = perf_counter()
    check_runs = validate_raw_batch(conn, source.name, validated.valid, rel)
    expectation_seconds = perf_counter() - expectations_started
    if any(run.blocks for run in check_runs):
        manifest |= {
            "content_hash": content_hash,
            "status": REJECTED,
            "error": rejection_error(rel, check_runs),
            "rows_in_file": raw.rows_in_file,
            "rows_loaded": 0,
            "rows_quarantined": 0,
        }
        batch_id = _in_transaction(conn, lambda: _insert_manifest_row(conn, manifest))
        return _result(manifest, batch_id, started, check_runs, expectation_seconds)
    rejected = raw.rejected.select("row_number", pl.lit(None, pl.String).alias("column_name"), "reason", "record")
    quarantine = pl.concat([validated.quarantine, rejected.cast(QUARANTINE_SCHEMA)]).sort("row_number")  # type: ignore[arg-type]
    manifest |= {
        "content_hash": content_hash,
        "status": LOADED,
        "rows_in_file": raw.rows_in_file,
        "rows_loaded": validated.valid.height,
        "rows_quarantined": quarantine.height,
    }
    batch_id = _in_transaction(conn, lambda: _load_batch(conn, source, manifest, validated.valid, quarantine))
    return _result(manifest, batch_id, started, check_runs, expectation_seconds)


def _result(
    manifest: dict,
    batch_id: int,
    started: float,
    check_runs: list[CheckRun] | None = None,
    expectation_seconds: float = 0.0,
) -> BatchResult:
    return BatchResult(
        source=manifest["source"],
        batch_file=manifest["batch_file"],
        content_hash=manifest["content_hash"],
        status=manifest["status"],
        rows_in_file=manifest["rows_in_file"],
        rows_loaded=manifest["rows_loaded"],
        rows_quarantined=manifest["rows_quarantined"],
        error=manifest["error"],
        duplicate_of=manifest["duplicate_of"],
        batch_id=batch_id,
        seconds=perf_counter() - started,
        check_runs=check_runs or [],
        expectation_seconds=expectation_seconds,
    )


def _record_unreadable(
    conn: duckdb.DuckDBPyConnection, manifest: dict, content_hash: str, error: str, started: float
) -> BatchResult:
    manifest |= {
        "content_hash": content_hash or None,
        "status": UNREADABLE,
        "error": error,
        "rows_in_file": None,
        "rows_loaded": 0,
        "rows_quarantined": 0,
    }
    batch_id = _in_transaction(conn, lambda: _insert_manifest_row(conn, manifest))
    result = _result(manifest, batch_id, started)
    result.content_hash = content_hash
    return result


def _in_transaction(conn: duckdb.DuckDBPyConnection, work: Callable[[], int]) -> int:
    failpoint("ingest.before_write")  # test hook: the batch is read and checked, nothing written
    conn.begin()
    try:
        outcome = work()
        failpoint("ingest.before_commit")  # test hook: written inside the open transaction
    except BaseException:
        conn.rollback()
        raise
    conn.commit()
    failpoint("ingest.after_commit")  # test hook: committed, the next batch not begun
    return outcome


def _next_batch_id(conn: duckdb.DuckDBPyConnection) -> int:
    # max + 1 inside the transaction is safe: DuckDB admits one writer per file.
    return fetch_scalar(conn, f"select coalesce(max(batch_id), 0) + 1 from {MANIFEST_TABLE}")


def _insert_manifest_row(conn: duckdb.DuckDBPyConnection, manifest: dict) -> int:
    # The id is taken before the delete below so a deleted id is never reused.
    batch_id = manifest.get("batch_id") or _next_batch_id(conn)
    row = manifest | {"batch_id": batch_id, "loaded_at": manifest.get("loaded_at") or _utc_now()}
    # Earlier failed attempts at this file are superseded by this outcome: the
    # manifest keeps one row per file version, and reruns do not pile up rows.
    conn.execute(
        f"delete from {MANIFEST_TABLE} where source = ? and batch_file = ? and status in (?, ?)",
        [row["source"], row["batch_file"], *RETRIED_STATUSES],
    )
    placeholders = ", ".join("?" for _ in _MANIFEST_COLUMNS)
    conn.execute(
        f"insert into {MANIFEST_TABLE} ({', '.join(_MANIFEST_COLUMNS)}) values ({placeholders})",
        [row[c] for c in _MANIFEST_COLUMNS],
    )
    return batch_id


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _load_batch(
    conn: duckdb.DuckDBPyConnection,
    source: Source,
    manifest: dict,
    valid: pl.DataFrame,
    quarantine: pl.DataFrame,
) -> int:
    """Raw rows, quarantine rows and the manifest row; the caller owns the transaction."""
    batch_id = _next_batch_id(conn)
    loaded_at = _utc_now()
    lineage = (batch_id, manifest["batch_file"], manifest["content_hash"], loaded_at)
    _insert_raw_rows(conn, source, valid, lineage)
    _insert_quarantine(conn, source.name, quarantine, lineage)
    # Counted back from the tables, not from the frames: this is what will be committed.
    loaded = fetch_scalar(conn, f'select count(*) from {RAW_SCHEMA}."{source.name}" where _batch_id = ?', [batch_id])
    quarantined = fetch_scalar(conn, f"select count(*) from {QUARANTINE_TABLE} where batch_id = ?", [batch_id])
    if loaded + quarantined != manifest["rows_in_file"] or loaded != valid.height:
        raise ConservationError(
            f"{manifest['batch_file']}: {manifest['rows_in_file']} rows in file but {loaded} loaded "
            f"and {quarantined} quarantined; nothing of this batch was kept"
        )
    _insert_manifest_row(conn, manifest | {"batch_id": batch_id, "loaded_at": loaded_at})
    return batch_id


def _insert_raw_rows(conn: duckdb.DuckDBPyConnection, source: Source, valid: pl.DataFrame, lineage: tuple) -> None:
    if valid.is_empty():
        return
    columns = ", ".join(f'"{c}"' for c in (*source.column_names, EXTRA_COLUMN))
    conn.register("_ingest_rows", valid)
    try:
        conn.execute(
            f'insert into {RAW_SCHEMA}."{source.name}" '
            f"({columns}, _batch_id, _batch_file, _batch_hash, _row_number, _loaded_at) "
            f"select {columns}, ?, ?, ?, {ROW_NUMBER}, ? from _ingest_rows",
            list(lineage),
        )
    finally:
        conn.unregister("_ingest_rows")


def _insert_quarantine(
    conn: duckdb.DuckDBPyConnection, source_name: str, quarantine: pl.DataFrame, lineage: tuple
) -> None:
    if quarantine.is_empty():
        return
    batch_id, batch_file, content_hash, loaded_at = lineage
    conn.register("_ingest_quarantine", quarantine)
    try:
        conn.execute(
            f"insert into {QUARANTINE_TABLE} "
            "select ?, ?, ?, ?, row_number, column_name, reason, record, ? from _ingest_quarantine",
            [source_name, batch_id, batch_file, content_hash, loaded_at],
        )
    finally:
        conn.unregister("_ingest_quarantine")
