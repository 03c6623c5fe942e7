"""Run the Great Expectations suites of `expectations/` on pandas frames: new batches and published marts.

GX Core 1.x validates a pandas DataFrame through one ephemeral context per
process, one pandas datasource and one whole-dataframe batch definition,
all created once and reused (`_gx`). GX's SQL datasource fails on DuckDB, so
the warehouse hands GX frames: polars -> pandas through pyarrow, only the
columns a suite names.

Two passes keep the cost per batch near GX's fixed overhead: the suite runs
with result format BOOLEAN_ONLY, and only the expectations that failed run
again, one by one, with SUMMARY and the index columns (the file's record
number, or the mart's grain) to count the failing rows and give examples.

Each expectation's outcome becomes a `CheckRun` (orchestration/lib/check_runs.py)
with the rows checked, the failing rows and up to EXAMPLES_KEPT examples.
Values known only at validation time are the suites' parameters: the
plausible time window, the keys a batch references that its parent table
lacks, and the data's as-of month (see expectations/generate_suites.py).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from time import perf_counter
from typing import Any

import duckdb
import pandas as pd
import polars as pl

from orchestration.lib.check_runs import EXAMPLES_KEPT, CheckRun
from orchestration.lib.personal_data import mask_example, mask_examples, redact_optional
from orchestration.lib.readers import ROW_NUMBER
from orchestration.lib.settings import PROJECT_ROOT

SUITES_DIR = PROJECT_ROOT / "expectations"
BLOCK = "block"
LATEST_CHUNK = "latest_chunk"  # meta.scope of mart expectations about the whole table

# The plausible window of every timestamp (blocking): before 2000 is a
# placeholder or a parse slip, more than two years ahead a typo (2150); a
# planned date (a yearly period's end, a due date) fits well inside. An event
# column's latest value more than a day of clock skew ahead of now only warns:
# a feed running a few weeks past today is odd, not wrong.
EARLIEST_TIMESTAMP = datetime(2000, 1, 1)
EVENT_CLOCK_SKEW = timedelta(days=1)
PLAUSIBLE_HORIZON = timedelta(days=731)

# Rows a mart is validated in at most (whole months per chunk): bounded memory,
# and the grain's uniqueness holds per chunk because the month is in the grain.
MART_CHUNK_ROWS = 250_000
# Examples spelled out in a message; the check run keeps EXAMPLES_KEPT.
EXAMPLES_IN_MESSAGE = 3

# GX compares datetime64[ns] columns vectorised, every other unit value by
# value in Python (1.7 s per 200,000 rows); ns covers 1678..2262, so values
# beyond are clipped to these bounds, which lie outside every plausible window.
_NS_MIN, _NS_MAX = datetime(1678, 1, 1), datetime(2262, 1, 1)
_SUMMARY = "SUMMARY"


# --- suites as data (no GX import: the ingest assets read their parents at definition time) ---


@dataclass(frozen=True)
class ExpectationSpec:
    """One expectation of a suite file, with what the pipeline needs to know about it."""

    position: int
    type: str
    kwargs: dict
    severity: str
    why: str
    references: str | None = None  # "raw.<parent>.<column>" for referential expectations
    always_known: tuple[str, ...] = ()
    scope: str | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        if "column" in self.kwargs:
            return (self.kwargs["column"],)
        return tuple(self.kwargs.get("column_list", ()))

    @property
    def condition(self) -> str | None:
        condition = self.kwargs.get("row_condition")
        if not condition:
            return None
        if isinstance(condition, dict) and condition.get("type") == "comparison":
            return f"{condition['column']['name']} {condition['operator']} {condition['parameter']!r}"
        return json.dumps(condition)

    @property
    def condition_columns(self) -> tuple[str, ...]:
        condition = self.kwargs.get("row_condition")
        if isinstance(condition, dict) and isinstance(condition.get("column"), dict):
            return (condition["column"]["name"],)
        return ()

    @property
    def bounds(self) -> str:
        """The range an expectation holds values to, as text: ' >= 0', ' in 1..5', ' = as_of_month'."""

        def shown(value: Any) -> str:
            if isinstance(value, dict) and "$PARAMETER" in value:
                return value["$PARAMETER"]
            return f"{value:g}" if isinstance(value, int | float) else str(value)

        low, high = self.kwargs.get("min_value"), self.kwargs.get("max_value")
        if low is not None and high is not None:
            return f" = {shown(low)}" if low == high else f" in {shown(low)}..{shown(high)}"
        if low is not None:
            return f" {'>' if self.kwargs.get('strict_min') else '>='} {shown(low)}"
        if high is not None:
            return f" {'<' if self.kwargs.get('strict_max') else '<='} {shown(high)}"
        return ""

    @property
    def check_name(self) -> str:
        """The expectation, its columns and bounds: unique within a suite (a test keeps it so)."""
        where = f" where {self.condition}" if self.condition else ""
        subject = ", ".join(self.columns) if self.columns else "rows"
        return f"{self.type}({subject}{self.bounds}{where})"

    @property
    def parameters(self) -> dict[str, str]:
        """argument -> suite parameter name, for the arguments filled at validation time."""
        return {k: v["$PARAMETER"] for k, v in self.kwargs.items() if isinstance(v, dict) and "$PARAMETER" in v}

    @property
    def is_row_level(self) -> bool:
        """True when GX flags rows (and can name them), False for table-level aggregates."""
        return self.type.startswith("expect_column_values_") or self.type == "expect_compound_columns_to_be_unique"

    @property
    def parent(self) -> tuple[str, str] | None:
        """(parent source, parent column) of a referential expectation."""
        if self.references is None:
            return None
        _schema, table, column = self.references.split(".")
        return table, column


@dataclass(frozen=True)
class Suite:
    name: str
    meta: dict
    expectations: tuple[ExpectationSpec, ...]
    document: dict = field(repr=False, compare=False)

    @property
    def has_block(self) -> bool:
        return any(e.severity == BLOCK for e in self.expectations)

    @property
    def index_columns(self) -> tuple[str, ...]:
        return tuple(self.meta.get("index_columns", ()))

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column the suite reads, index columns first, in suite order."""
        found = dict.fromkeys(self.index_columns)
        for spec in self.expectations:
            found |= dict.fromkeys(spec.columns + spec.condition_columns)
        return tuple(found)

    @property
    def parent_sources(self) -> tuple[str, ...]:
        """The raw sources whose rows this suite's batches must find already loaded."""
        return tuple(sorted({spec.parent[0] for spec in self.expectations if spec.parent}))


@functools.cache
def load_suite(name: str) -> Suite:
    """The suite `expectations/<name>.json` (e.g. raw_invoices, marts_kpi_churn)."""
    path = SUITES_DIR / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"no expectation suite {path}; write it with: python expectations/generate_suites.py")
    document = json.loads(path.read_text())
    specs = []
    for position, item in enumerate(document["expectations"]):
        meta = item.get("meta") or {}
        if meta.get("severity") not in ("block", "warn") or not meta.get("why"):
            raise ValueError(f"{path.name}: expectation {position} ({item['type']}) needs meta.severity and meta.why")
        specs.append(
            ExpectationSpec(
                position=position,
                type=item["type"],
                kwargs=item["kwargs"],
                severity=meta["severity"],
                why=meta["why"],
                references=meta.get("references"),
                always_known=tuple(meta.get("always_known", ())),
                scope=meta.get("scope"),
            )
        )
    return Suite(document["name"], document.get("meta") or {}, tuple(specs), document)


def raw_suite(source_name: str) -> Suite:
    return load_suite(f"raw_{source_name}")


def mart_suite(model: str) -> Suite:
    return load_suite(f"marts_{model}")


def mart_models() -> tuple[str, ...]:
    """The published marts: those with a suite file (expectations/marts_<model>.json)."""
    return tuple(sorted(path.stem.removeprefix("marts_") for path in SUITES_DIR.glob("marts_*.json")))


def parent_sources(source_name: str) -> tuple[str, ...]:
    """Sources to ingest before `source_name`, so its references can be checked."""
    return raw_suite(source_name).parent_sources


# --- GX -----------------------------------------------------------------------


@functools.cache
def _gx():
    """The process's one GX context, pandas datasource and batch definition."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    asset = context.data_sources.add_pandas("warehouse_frames").add_dataframe_asset("frame")
    return context, asset.add_batch_definition_whole_dataframe("whole_frame")


@functools.cache
def _gx_suite(name: str, latest_chunk: bool):
    """The suite registered in the context: every expectation, or (for a mart's earlier
    chunks) only those not scoped to the latest chunk. Returns it with its specs by GX id."""
    import great_expectations as gx

    context, _ = _gx()
    suite = load_suite(name)
    specs = [s for s in suite.expectations if latest_chunk or s.scope != LATEST_CHUNK]
    document = dict(suite.document)
    document["name"] = name if latest_chunk else f"{name}.earlier_chunks"
    document["expectations"] = [suite.document["expectations"][s.position] for s in specs]
    registered = context.suites.add(gx.ExpectationSuite(**document))
    by_id = {expectation.id: spec for expectation, spec in zip(registered.expectations, specs, strict=True)}
    return registered, by_id


def to_pandas(frame: pl.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """The named columns of a polars frame as pandas, in the types GX compares fast."""
    expressions = []
    for name in columns:
        if name not in frame.columns:
            continue  # GX reports the missing column on the expectations that need it
        dtype = frame.schema[name]
        column = pl.col(name)
        if dtype == pl.Date:
            column = column.cast(pl.Datetime("us"))
        if dtype == pl.Date or isinstance(dtype, pl.Datetime):
            column = column.dt.replace_time_zone(None).clip(_NS_MIN, _NS_MAX).dt.cast_time_unit("ns")
        elif isinstance(dtype, pl.Decimal):
            column = column.cast(pl.Float64)  # signs and ranges only: float is exact enough
        expressions.append(column)
    return frame.select(expressions).to_pandas()


@dataclass
class Outcome:
    """One expectation on one frame (or, for marts, summed over chunks)."""

    spec: ExpectationSpec
    passed: bool
    rows_checked: int
    failing_rows: int | None = 0
    examples: list = field(default_factory=list)
    observed: Any = None
    error: str | None = None
    expected: str | None = None  # for table-level expectations: the bounds, parameters filled in

    def merge(self, other: Outcome) -> Outcome:
        failing = (
            None if self.failing_rows is None or other.failing_rows is None else self.failing_rows + other.failing_rows
        )
        return Outcome(
            self.spec,
            self.passed and other.passed,
            self.rows_checked + other.rows_checked,
            failing if not (self.passed and other.passed) else 0,
            (self.examples + other.examples)[:EXAMPLES_KEPT],
            other.observed if other.observed is not None else self.observed,
            self.error or other.error,
            other.expected or self.expected,
        )


def evaluate(suite: Suite, frame: pl.DataFrame, parameters: dict, latest_chunk: bool = True) -> list[Outcome]:
    """Run the suite on one frame; one Outcome per expectation, in suite order."""
    context, batch_definition = _gx()
    registered, specs_by_id = _gx_suite(suite.name, latest_chunk)
    needed = {name for spec in specs_by_id.values() for name in spec.parameters.values()}
    missing = sorted(needed - parameters.keys())
    if missing:
        raise ValueError(f"suite {suite.name} needs the parameters {missing}; nothing fills them")
    data = to_pandas(frame, suite.columns)
    batch = batch_definition.get_batch(batch_parameters={"dataframe": data})
    result = batch.validate(registered, expectation_parameters=parameters, result_format="BOOLEAN_ONLY")
    index_columns = [c for c in suite.index_columns if c in data.columns]
    outcomes = []
    for item in result.results:
        spec = specs_by_id[item.expectation_config.id]
        error = _exception_message(item)
        if item.success and error is None:
            outcomes.append(Outcome(spec, True, frame.height))
            continue
        expectation = next(e for e in registered.expectations if e.id == item.expectation_config.id)
        detail = _detail(batch, expectation, spec, parameters, index_columns, frame.height)
        outcomes.append(_masked(detail, suite.meta.get("table", suite.name)))
    return sorted(outcomes, key=lambda o: o.spec.position)


def _masked(outcome: Outcome, table: str) -> Outcome:
    """The outcome with personal values masked (orchestration/lib/personal_data.py): its
    examples become check-run rows, messages, Dagster metadata and log lines."""
    outcome.examples = mask_examples(outcome.examples, table)
    outcome.observed = mask_example(outcome.observed, table)
    outcome.error = redact_optional(outcome.error)
    return outcome


def _detail(
    batch, expectation, spec: ExpectationSpec, parameters: dict, index_columns: list[str], rows: int
) -> Outcome:
    """Re-run one failed expectation for its failing-row count and examples."""
    result_format: dict = {"result_format": _SUMMARY, "partial_unexpected_count": EXAMPLES_KEPT}
    if spec.is_row_level and index_columns:
        result_format["unexpected_index_column_names"] = index_columns
    item = batch.validate(expectation, expectation_parameters=parameters, result_format=result_format)
    error = _exception_message(item)
    if error is not None:
        return Outcome(spec, False, rows, None, [], None, error)
    result = item.result or {}
    if not spec.is_row_level:
        observed = _plain(result.get("observed_value"))
        bounds = {k: spec.kwargs[k] for k in ("min_value", "max_value") if spec.kwargs.get(k) is not None}
        filled = {k: parameters[v["$PARAMETER"]] if isinstance(v, dict) else v for k, v in bounds.items()}
        expected = ", ".join(f"{k}={_plain(v)!r}" for k, v in filled.items())
        return Outcome(
            spec, bool(item.success), rows, None, [] if item.success else [observed], observed, None, expected
        )
    examples = [_example(entry) for entry in result.get("partial_unexpected_index_list") or []]
    if not examples:
        examples = [_plain(value) for value in result.get("partial_unexpected_list") or []]
    failing = result.get("unexpected_count")
    return Outcome(spec, bool(item.success), rows, None if failing is None else int(failing), examples[:EXAMPLES_KEPT])


def _exception_message(item) -> str | None:
    info = item.exception_info or {}
    candidates = [info] if "raised_exception" in info else list(info.values())
    for candidate in candidates:
        if isinstance(candidate, dict) and candidate.get("raised_exception"):
            return str(candidate.get("exception_message") or "GX raised an exception")
    return None


def _plain(value: Any) -> Any:
    """A JSON-friendly version of a value GX returns (numpy scalars, timestamps)."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, pd.Timestamp | datetime | date):
        return value.isoformat()
    if hasattr(value, "item"):
        return _plain(value.item())
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)


def _example(entry: dict) -> dict:
    """A failing row as {row: file record number, column: value} or {grain..., column: value}."""
    plain = {("row" if key == ROW_NUMBER else key): _plain(value) for key, value in entry.items()}
    if "row" in plain:
        plain = {"row": plain.pop("row"), **plain}
    return plain


# --- check runs -----------------------------------------------------------------


def _example_text(example: Any) -> str:
    if not isinstance(example, dict):
        return repr(example)
    values = ", ".join(f"{k}={v!r}" for k, v in example.items() if k != "row")
    return f"row {example['row']}: {values}" if "row" in example else values


def describe(outcome: Outcome) -> str | None:
    """One sentence on a failed expectation: what, which column, how many rows, examples, why."""
    if outcome.passed:
        return None
    spec = outcome.spec
    head = f"{spec.check_name} [{spec.severity}]"
    if outcome.error is not None:
        return f"{head} could not be evaluated: {outcome.error}"
    if not spec.is_row_level:
        return f"{head} failed: observed {outcome.observed!r}, expected {outcome.expected}. Why it matters: {spec.why}"
    columns = ", ".join(spec.columns)
    if spec.parent is not None:
        what = f"reference {columns} values absent from raw.{spec.parent[0]}.{spec.parent[1]}"
    else:
        what = f"fail on column {columns}"
    shown = "; ".join(_example_text(e) for e in outcome.examples[:EXAMPLES_IN_MESSAGE])
    count = "?" if outcome.failing_rows is None else f"{outcome.failing_rows:,}"
    return f"{head}: {count} of {outcome.rows_checked:,} rows {what}, e.g. {shown}. Why it matters: {spec.why}"


def to_check_runs(outcomes: list[Outcome], layer: str, asset: str, target: str, seconds: float) -> list[CheckRun]:
    """GX evaluates a suite as one graph, so each expectation is given an equal share of its time."""
    share_ms = seconds * 1000 / max(len(outcomes), 1)
    return [
        CheckRun(
            layer=layer,
            asset=asset,
            check_name=o.spec.check_name,
            passed=o.passed,
            severity=o.spec.severity,
            target=target,
            rows_checked=o.rows_checked,
            failing_rows=o.failing_rows,
            examples=o.examples[:EXAMPLES_KEPT],
            message=describe(o),
            duration_ms=round(share_ms, 3),
        )
        for o in outcomes
    ]


# --- parameters -------------------------------------------------------------------


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def time_window(now: datetime | None = None) -> dict[str, pd.Timestamp]:
    now = now or utc_now()
    return {
        "earliest_timestamp": pd.Timestamp(EARLIEST_TIMESTAMP),
        "latest_event_timestamp": pd.Timestamp(now + EVENT_CLOCK_SKEW),
        "latest_plausible_timestamp": pd.Timestamp(now + PLAUSIBLE_HORIZON),
    }


_BATCH_VIEW = "_expectation_batch"


def absent_keys(conn: duckdb.DuckDBPyConnection, spec: ExpectationSpec) -> list[str]:
    """Values of the batch's column (registered as _BATCH_VIEW) that the parent table lacks.

    Only the keys the batch references are looked up in the parent, never the
    whole parent table.
    """
    assert spec.parent is not None
    parent, parent_column = spec.parent
    (column,) = spec.columns
    rows = conn.execute(
        f"""
        with referenced as (
            select distinct "{column}" as key from {_BATCH_VIEW} where "{column}" is not null
        ),
        present as (
            select distinct "{parent_column}" as key from raw."{parent}"
            where "{parent_column}" in (select key from referenced)
        )
        select key from referenced
        except
        select key from present
        order by key
        """
    ).fetchall()
    return [key for (key,) in rows if key not in spec.always_known]


def raw_batch_parameters(
    conn: duckdb.DuckDBPyConnection, suite: Suite, rows: pl.DataFrame, now: datetime | None = None
) -> dict:
    """The suite parameters for one batch: the time window and, per reference, the absent keys."""
    values: dict = dict(time_window(now))
    references = [spec for spec in suite.expectations if spec.parent is not None]
    if not references:
        return values
    columns = sorted({c for spec in references for c in spec.columns})
    conn.register(_BATCH_VIEW, rows.select(columns))
    try:
        for spec in references:
            values[spec.parameters["value_set"]] = absent_keys(conn, spec)
    finally:
        conn.unregister(_BATCH_VIEW)
    return values


def data_as_of_month(conn: duckdb.DuckDBPyConnection) -> date | None:
    """The month of the latest subscription event or invoice in raw: the data's as-of month
    (int_subscription_reporting_months ends the reporting calendar there)."""
    rows = conn.execute(
        """
        select cast(date_trunc('month', greatest(
            (select max(effective_at) from raw.subscription_events),
            (select max(issued_at) from raw.invoices)
        )) as date)
        """
    ).fetchall()
    return rows[0][0]


def mart_parameters(conn: duckdb.DuckDBPyConnection, now: datetime | None = None) -> dict:
    as_of = data_as_of_month(conn)
    return dict(time_window(now)) | {"as_of_month": None if as_of is None else pd.Timestamp(as_of)}


# --- the two uses -------------------------------------------------------------------


def validate_raw_batch(
    conn: duckdb.DuckDBPyConnection,
    source_name: str,
    rows: pl.DataFrame,
    target: str,
    now: datetime | None = None,
) -> list[CheckRun]:
    """The raw suite of `source_name` on a batch's contract-valid rows (as validation.py types
    them, with the record number column); `target` is the batch file."""
    suite = raw_suite(source_name)
    started = perf_counter()
    outcomes = evaluate(suite, rows, raw_batch_parameters(conn, suite, rows, now))
    return to_check_runs(outcomes, "ingest", f"raw/{source_name}", target, perf_counter() - started)


def rejection_error(target: str, runs: list[CheckRun]) -> str:
    """The load manifest's error for a batch that failed a blocking expectation."""
    failed = "; ".join(run.message or run.check_name for run in runs if run.blocks)
    return f"{target}: rejected, nothing loaded (retried next run): {failed}"


@dataclass
class MartValidation:
    model: str
    runs: list[CheckRun]
    months: list[tuple[date | None, date | None, int]]  # (first, last, rows) per chunk
    as_of_month: date | None
    seconds: float

    @property
    def rows_checked(self) -> int:
        return sum(rows for _first, _last, rows in self.months)

    @property
    def failed(self) -> list[CheckRun]:
        return [run for run in self.runs if not run.passed]


def month_chunks(months: list[tuple[date | None, int]], max_rows: int) -> list[tuple[date | None, date | None, int]]:
    """Consecutive whole months grouped into chunks of at most max_rows (a bigger month is a chunk of its own)."""
    chunks: list[list] = []
    for month, rows in months:
        if chunks and chunks[-1][2] + rows <= max_rows:
            chunks[-1][1], chunks[-1][2] = month, chunks[-1][2] + rows
        else:
            chunks.append([month, month, rows])
    return [(first, last, rows) for first, last, rows in chunks]


def validate_mart(
    conn: duckdb.DuckDBPyConnection,
    model: str,
    chunk_rows: int = MART_CHUNK_ROWS,
    now: datetime | None = None,
) -> MartValidation:
    """The mart suite of `model`, month chunk by month chunk (or only the as-of month when
    the suite says `months_validated: latest`). Reads; writes nothing."""
    suite = mart_suite(model)
    started = perf_counter()
    table, month_column = suite.meta["table"], suite.meta["month_column"]
    parameters = mart_parameters(conn, now)
    as_of = parameters["as_of_month"]
    as_of_month = None if as_of is None else as_of.date()
    schema, name = table.split(".")
    present = {
        column
        for (column,) in conn.execute(
            "select column_name from information_schema.columns where table_schema = ? and table_name = ?",
            [schema, name],
        ).fetchall()
    }
    if not present:
        raise LookupError(f"{table} does not exist: build it (dbt) before checking it")
    selected = ", ".join(f'"{c}"' for c in suite.columns if c in present)
    month_sql = f"cast(date_trunc('month', \"{month_column}\") as date)"
    months = conn.execute(f"select {month_sql} as m, count(*) from {table} group by 1 order by 1 nulls last").fetchall()
    if suite.meta.get("months_validated") == "latest":
        months = [(m, n) for m, n in months if m is None or m == as_of_month]
    # Rows without a month have no chunk of their own: they go with the latest one.
    undated = sum(n for m, n in months if m is None)
    chunks = month_chunks([(m, n) for m, n in months if m is not None], chunk_rows) or [(None, None, 0)]
    merged: dict[int, Outcome] = {}
    validated = []
    for i, (first, last, rows) in enumerate(chunks):
        latest = i == len(chunks) - 1
        condition = f"{month_sql} between ? and ?" if first is not None else "false"
        if latest and undated:
            condition = f'({condition}) or "{month_column}" is null'
            rows += undated
        bounds = [first, last] if first is not None else []
        frame = conn.sql(f"select {selected} from {table} where {condition}", params=bounds).pl()
        for outcome in evaluate(suite, frame, parameters, latest_chunk=latest):
            position = outcome.spec.position
            merged[position] = merged[position].merge(outcome) if position in merged else outcome
        validated.append((first, last, rows))
    seconds = perf_counter() - started
    span = _span(validated)
    outcomes = [merged[p] for p in sorted(merged)]
    runs = to_check_runs(outcomes, "mart", f"marts/{model}", f"{table} {span}", seconds)
    return MartValidation(model, runs, validated, as_of_month, seconds)


def _span(chunks: list[tuple[date | None, date | None, int]]) -> str:
    dated = [(f, la) for f, la, _ in chunks if f is not None]
    if not dated:
        return "(no rows)"
    first, last = dated[0][0], dated[-1][1]
    return f"{first:%Y-%m}" if first == last else f"{first:%Y-%m}..{last:%Y-%m}"
