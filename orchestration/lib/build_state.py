"""What the last successful dbt build reflected, and what the next build must do.

The marts are a function of the raw batches, the dbt project and the billing
policy. After each successful dbt build the warehouse keeps, in
`meta.dbt_builds`, the highest loaded batch id per source and a fingerprint
of the project files and dbt vars. The next build compares that with now:

- nothing recorded, the project or policy changed, or raw went backwards
  (a reloaded warehouse): a full refresh;
- new loaded batches: an incremental build, told the previous watermark so
  that incremental models recompute only what the new rows can change;
- neither: nothing to do, the marts are current.

Batch ids rise in load order across every source (loader.py), so one
number, the highest batch id the last build saw, says which raw rows are new.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import duckdb

from orchestration.lib.loader import LOADED, MANIFEST_TABLE

BUILD_STATE_SCHEMA = "meta"
BUILD_STATE_TABLE = f"{BUILD_STATE_SCHEMA}.dbt_builds"

FULL = "full"
INCREMENTAL = "incremental"
SKIP = "skip"

BUILD_STATE_DDL = f"""
create table if not exists {BUILD_STATE_TABLE} (
    run_id varchar not null,
    dbt_op varchar not null,
    mode varchar not null,
    source varchar not null,
    max_batch_id bigint,
    code_fingerprint varchar not null,
    built_at timestamp not null,
)
"""

# What decides the marts besides raw: the dbt project's own files (target/ and
# logs/ are dbt's output, profiles.yml only says where the warehouse is).
FINGERPRINTED = ("dbt_project.yml", "models", "macros", "seeds", "tests", "snapshots", "analyses")


@dataclass(frozen=True)
class RecordedBuild:
    """One successful dbt op build, as meta.dbt_builds holds it."""

    run_id: str
    mode: str
    batches: Mapping[str, int | None]  # source -> highest loaded batch id then
    code_fingerprint: str
    built_at: dt.datetime

    @property
    def watermark(self) -> int:
        return max((batch for batch in self.batches.values() if batch is not None), default=0)


@dataclass(frozen=True)
class BuildPlan:
    action: str  # FULL | INCREMENTAL | SKIP
    reason: str
    watermark: int | None = None  # the previous build's, for INCREMENTAL


def code_fingerprint(project_dir: Path, dbt_vars: Mapping) -> str:
    """SHA-256 of the dbt project's files and the vars it is run with."""
    digest = hashlib.sha256()
    for name in FINGERPRINTED:
        root = project_dir / name
        files = sorted(root.rglob("*")) if root.is_dir() else [root] if root.is_file() else []
        for path in files:
            if path.is_file():
                digest.update(path.relative_to(project_dir).as_posix().encode() + b"\0")
                digest.update(path.read_bytes() + b"\0")
    digest.update(json.dumps(dbt_vars, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def loaded_batches(conn: duckdb.DuckDBPyConnection, sources: Iterable[str]) -> dict[str, int | None]:
    """Per source, the highest batch id loaded into raw (None: none yet, or no manifest at all)."""
    if not _table_exists(conn, MANIFEST_TABLE):
        return dict.fromkeys(sources)
    found = dict(
        conn.execute(
            f"select source, max(batch_id) from {MANIFEST_TABLE} where status = ? group by source", [LOADED]
        ).fetchall()
    )
    return {source: found.get(source) for source in sources}


def ensure_build_state(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(f"create schema if not exists {BUILD_STATE_SCHEMA}")
    conn.execute(BUILD_STATE_DDL)


def last_build(conn: duckdb.DuckDBPyConnection, dbt_op: str) -> RecordedBuild | None:
    """The latest successful build of `dbt_op`, or None (also before the table exists)."""
    if not _table_exists(conn, BUILD_STATE_TABLE):
        return None
    rows = conn.execute(
        f"""
        select run_id, mode, source, max_batch_id, code_fingerprint, built_at
        from {BUILD_STATE_TABLE}
        where dbt_op = ? and built_at = (select max(built_at) from {BUILD_STATE_TABLE} where dbt_op = ?)
        """,
        [dbt_op, dbt_op],
    ).fetchall()
    if not rows:
        return None
    run_id, mode, _, _, fingerprint, built_at = rows[0]
    return RecordedBuild(run_id, mode, {row[2]: row[3] for row in rows}, fingerprint, built_at)


def _table_exists(conn: duckdb.DuckDBPyConnection, table: str) -> bool:
    schema, name = table.split(".")
    return bool(
        conn.execute(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?", [schema, name]
        ).fetchall()[0][0]
    )


def record_build(
    conn: duckdb.DuckDBPyConnection,
    run_id: str,
    dbt_op: str,
    mode: str,
    batches: Mapping[str, int | None],
    fingerprint: str,
    built_at: dt.datetime | None = None,
) -> None:
    """One row per source: what this successful build of `dbt_op` reflects."""
    ensure_build_state(conn)
    built_at = built_at or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    conn.executemany(
        f"insert into {BUILD_STATE_TABLE} values (?, ?, ?, ?, ?, ?, ?)",
        [[run_id, dbt_op, mode, source, batch, fingerprint, built_at] for source, batch in batches.items()],
    )


def missing_tables(conn: duckdb.DuckDBPyConnection, tables: Iterable[tuple[str, str]]) -> list[str]:
    """`schema.table` of each (schema, table) the warehouse does not hold."""
    found = set(conn.execute("select table_schema, table_name from information_schema.tables").fetchall())
    return [f"{schema}.{name}" for schema, name in tables if (schema, name) not in found]


def plan_build(
    previous: RecordedBuild | None,
    current: Mapping[str, int | None],
    fingerprint: str,
    later_ops: Iterable[RecordedBuild | None] = (),
    may_skip: bool = True,
    published_at: dt.datetime | None = None,
    missing_incremental: Iterable[str] = (),
) -> BuildPlan:
    """What the next build of a dbt op must do, given its last successful build.

    `later_ops` are the last builds of the ops that run after it in the same
    job: skipping this op skips them too, so it may skip only when they are
    current as well, and when the dashboard was published (`published_at`)
    after the last of them: otherwise a blocking check stopped publication,
    and the run must evaluate the checks again rather than report success.
    An op that runs only when the one before it built (`may_skip` False)
    builds incrementally when nothing changed. A missing incremental table
    (`missing_incremental`, dropped by hand) would be rebuilt whole while the
    models downstream of it look for changed rows only: a full refresh."""
    if previous is None:
        return BuildPlan(FULL, "no successful dbt build recorded in this warehouse")
    when = f"{previous.built_at:%Y-%m-%d %H:%M:%S} UTC"
    if previous.code_fingerprint != fingerprint:
        return BuildPlan(FULL, f"the dbt project or the billing policy changed since the build of {when}")
    missing = sorted(missing_incremental)
    if missing:
        return BuildPlan(FULL, f"incremental tables missing since the build of {when}: {', '.join(missing)}")
    went_back = [
        source
        for source, batch in previous.batches.items()
        if batch is not None and (current.get(source) is None or current[source] < batch)
    ]
    if went_back:
        return BuildPlan(
            FULL, f"raw holds fewer batches of {', '.join(sorted(went_back))} than the build of {when} (reloaded?)"
        )
    if dict(previous.batches) != dict(current):
        new = sorted(source for source, batch in current.items() if batch != previous.batches.get(source))
        return BuildPlan(
            INCREMENTAL,
            f"new landing batches of {', '.join(new)} since the build of {when} (batch {previous.watermark})",
            watermark=previous.watermark,
        )
    stale = [
        later
        for later in later_ops
        if later is None or later.code_fingerprint != fingerprint or dict(later.batches) != dict(current)
    ]
    if stale:
        return BuildPlan(
            INCREMENTAL,
            f"no new landing batches since the build of {when}, but a later dbt step has not built them",
            watermark=previous.watermark,
        )
    if not may_skip:
        return BuildPlan(
            INCREMENTAL,
            f"no new landing batches since the build of {when}, but the dbt step before it built",
            watermark=previous.watermark,
        )
    last_built = max([previous.built_at, *(later.built_at for later in later_ops if later is not None)])
    if published_at is None or published_at < last_built:
        return BuildPlan(
            INCREMENTAL,
            f"no new landing batches since the build of {when}, but the dashboard was not published after it "
            "(a blocking check stopped it): the checks run again",
            watermark=previous.watermark,
        )
    return BuildPlan(SKIP, f"no new landing batches since the build of {when}; marts are current")
