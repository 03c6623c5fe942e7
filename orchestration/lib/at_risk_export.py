"""The retention team's at-risk customers: selected from marts.customer_risk, their
risk drivers said in words, written to CSV and Parquet.

One responsibility: select (filters validated against the segments present in the
mart), describe (a `drivers` column, strongest driver first) and write (a temporary
file renamed into place, so a failed export never leaves half a file). The Dagster
asset (orchestration/defs/publish/exports_asset.py) and `billing-analytics export
at-risk` both go through here; docs/exports.md describes the files.

"At risk" means at least one risk driver present (risk_score > 0): a customer with
nothing to talk about is never exported, whatever the minimum risk. Names and emails
are left out unless asked for (`include_pii`); they come from staging, the only layer
that keeps them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import duckdb
import polars as pl

from orchestration.lib.atomic_files import write_file_atomically

RISK_TABLE = "marts.customer_risk"
# dim_customers leaves names and emails out on purpose; staging is where they live.
CUSTOMERS_TABLE = "staging.stg_billing__customers"
SEGMENT_DIMENSIONS = ("company_size", "region", "tier", "billing_period", "acquisition_channel", "tenure_band")
# A missing attribute is a segment of its own, named like in the KPI marts.
UNKNOWN_SEGMENT = "unknown"
FORMATS = ("csv", "parquet")
PII_COLUMNS = ("customer_name", "email")
# The order a row is read in: who, how risky and how much is at stake, why, then the detail.
EXPORT_COLUMNS = (
    "customer_id",
    *PII_COLUMNS,
    "as_of_month",
    "risk_rank",
    "risk_score",
    "value_at_risk_usd",
    "expected_residual_lifetime_usd",
    "current_mrr_usd",
    "drivers",
    "top_risk_driver",
    *SEGMENT_DIMENSIONS,
    "tenure_months",
    "failed_payments",
    "billing_complaints",
    "error_credit_notes",
    "low_clarity_scores",
    "lowest_clarity_score",
    "latest_nps_score",
    "downgrades",
    "overdue_balance_usd",
    "overdue_mrr_multiple",
    "residual_lifetime_null_reason",
)
# Largest value at risk first (unknown value last), then the higher score, then the id: a total order.
SORT_KEYS = (("value_at_risk_usd", "desc nulls last"), ("risk_score", "desc"), ("customer_id", "asc"))
SORT_ORDER = ", ".join(f"{column} {direction}" for column, direction in SORT_KEYS)
# The policy's driver order (config/billing_policy.yml risk.drivers) when none is given:
# equal contributions are listed in it, as top_risk_driver breaks ties by it.
DEFAULT_DRIVER_ORDER = (
    "failed_payments",
    "overdue_mrr_multiple",
    "billing_complaints",
    "error_credit_notes",
    "low_clarity_scores",
    "nps_detractor",
    "downgrades",
)
NO_DRIVERS = "none"


class ExportArgumentError(ValueError):
    """A filter the data cannot answer; the message is one line and lists the valid choices."""


class WarehouseNotReady(RuntimeError):
    """The warehouse or marts.customer_risk is not there yet (no successful run)."""


def _listed(values: Iterable[object]) -> str:
    return ", ".join(str(value) for value in values)


@dataclass(frozen=True)
class AtRiskFilter:
    """Which at-risk customers to export.

    segments: dimension -> accepted values; values of one dimension are alternatives,
    dimensions must all match. min_risk: lowest risk_score kept (inclusive). top_n: keep
    the first N after sorting by value at risk. include_pii: add customer_name and email.
    """

    segments: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    min_risk: float = 0.0
    top_n: int | None = None
    include_pii: bool = False

    def __post_init__(self) -> None:
        unknown = [dimension for dimension in self.segments if dimension not in SEGMENT_DIMENSIONS]
        if unknown:
            raise ExportArgumentError(
                f"unknown segment dimension {unknown[0]!r}; valid dimensions: {_listed(SEGMENT_DIMENSIONS)}"
            )
        if isinstance(self.min_risk, bool) or not isinstance(self.min_risk, int | float) or not 0 <= self.min_risk <= 1:
            raise ExportArgumentError(
                f"minimum risk must be a number from 0 to 1 (risk_score is a share), got {self.min_risk!r}"
            )
        if self.top_n is not None and (
            isinstance(self.top_n, bool) or not isinstance(self.top_n, int) or self.top_n < 1
        ):
            raise ExportArgumentError(f"top must be a whole number of customers >= 1, got {self.top_n!r}")

    def describe(self) -> dict[str, Any]:
        """The filters as plain JSON, for a manifest."""
        return {
            "segments": {dimension: list(values) for dimension, values in self.segments.items()},
            "min_risk": self.min_risk,
            "top_n": self.top_n,
            "risk_score_above_zero": True,
        }


def parse_segments(pairs: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """`dim=value` pairs (repeatable; one dimension may come several times) -> dimension -> values."""
    segments: dict[str, list[str]] = {}
    for pair in pairs:
        dimension, separator, value = (part.strip() for part in pair.partition("="))
        if not separator or not dimension or not value:
            raise ExportArgumentError(
                f"segment {pair!r} is not dimension=value (e.g. company_size=enterprise); "
                f"valid dimensions: {_listed(SEGMENT_DIMENSIONS)}"
            )
        if dimension not in SEGMENT_DIMENSIONS:
            raise ExportArgumentError(
                f"unknown segment dimension {dimension!r}; valid dimensions: {_listed(SEGMENT_DIMENSIONS)}"
            )
        values = segments.setdefault(dimension, [])
        if value not in values:
            values.append(value)
    return {dimension: tuple(values) for dimension, values in segments.items()}


# --- the billing policy's say --------------------------------------------------------------


@dataclass(frozen=True)
class RiskWording:
    """What the words need from the policy: the drivers' window and their tie order."""

    window_days: int
    driver_order: tuple[str, ...] = DEFAULT_DRIVER_ORDER


def risk_wording(policy: Mapping[str, Any], source: str = "config/billing_policy.yml") -> RiskWording:
    """The `risk` section's window and driver order, refused with the key named when unusable."""
    try:
        risk = policy["risk"]
        window_days = risk["window_days"]
        drivers = tuple(risk["drivers"])
    except (KeyError, TypeError):
        raise ValueError(
            f"{source} has no risk.window_days and risk.drivers (the churn-risk score's section)"
        ) from None
    if isinstance(window_days, bool) or not isinstance(window_days, int) or window_days < 1:
        raise ValueError(f"risk.window_days in {source} is {window_days!r}; expected a whole number of days >= 1")
    return RiskWording(window_days, drivers)


@dataclass(frozen=True)
class ExportDefaults:
    """The `exports` section: how the published export set is split, and its minimum risk."""

    segment_dimension: str
    min_risk: float


def export_defaults(policy: Mapping[str, Any], source: str = "config/billing_policy.yml") -> ExportDefaults:
    """exports.segment_dimension and exports.min_risk, refused with the valid choices when wrong."""
    section = policy.get("exports")
    if not isinstance(section, Mapping) or "segment_dimension" not in section:
        raise ValueError(f"{source} has no exports.segment_dimension; set it to one of {_listed(SEGMENT_DIMENSIONS)}")
    dimension = section["segment_dimension"]
    if dimension not in SEGMENT_DIMENSIONS:
        raise ValueError(
            f"exports.segment_dimension in {source} is {dimension!r}; valid dimensions: {_listed(SEGMENT_DIMENSIONS)}"
        )
    min_risk = section.get("min_risk", 0.0)
    if isinstance(min_risk, bool) or not isinstance(min_risk, int | float) or not 0 <= min_risk <= 1:
        raise ValueError(f"exports.min_risk in {source} is {min_risk!r}; expected a number from 0 to 1")
    return ExportDefaults(dimension, float(min_risk))


# --- select --------------------------------------------------------------------------------


def _table_columns(conn: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    schema, name = table.split(".")
    rows = conn.execute(
        "select column_name from information_schema.columns where table_schema = ? and table_name = ? "
        "order by ordinal_position",
        [schema, name],
    ).fetchall()
    return [row[0] for row in rows]


def require_risk_table(conn: duckdb.DuckDBPyConnection, table: str = RISK_TABLE) -> list[str]:
    """The risk mart's columns; WarehouseNotReady when it has not been built."""
    columns = _table_columns(conn, table)
    if not columns:
        raise WarehouseNotReady(f"{table} is not in the warehouse: run `billing-analytics run` first")
    return columns


def segment_choices(conn: duckdb.DuckDBPyConnection, table: str = RISK_TABLE) -> dict[str, list[str]]:
    """Every segment value present in the mart, per dimension (a missing value is `unknown`)."""
    union = "\nunion all\n".join(
        f"select '{dimension}' as dimension, coalesce({dimension}, '{UNKNOWN_SEGMENT}') as segment_value from {table}"
        for dimension in SEGMENT_DIMENSIONS
    )
    rows = conn.execute(f"select distinct dimension, segment_value from ({union}) order by all").fetchall()
    choices: dict[str, list[str]] = {dimension: [] for dimension in SEGMENT_DIMENSIONS}
    for dimension, value in rows:
        choices[dimension].append(value)
    return choices


def validate_segments(segments: Mapping[str, Sequence[str]], choices: Mapping[str, Sequence[str]]) -> None:
    """Every requested value must be present in the mart; the error lists the ones that are."""
    for dimension, values in segments.items():
        if dimension not in choices:
            raise ExportArgumentError(
                f"unknown segment dimension {dimension!r}; valid dimensions: {_listed(SEGMENT_DIMENSIONS)}"
            )
        for value in values:
            if value not in choices[dimension]:
                raise ExportArgumentError(
                    f"unknown {dimension} {value!r}; valid values: {_listed(choices[dimension]) or '(none: no rows)'}"
                )


def _plural(count_sql: str, noun: str) -> str:
    return f"{count_sql} || ' {noun}' || case when {count_sql} = 1 then '' else 's' end"


def _driver_phrases(window_days: int) -> dict[str, str]:
    """One SQL phrase per driver of the score; each is used only where that driver contributes."""
    window = f" in {window_days} days"
    return {
        "failed_payments": f"{_plural('failed_payments', 'failed payment')} || '{window}'",
        "overdue_mrr_multiple": (
            "format('{:,.2f}', overdue_balance_usd) || ' USD overdue'"
            " || case when current_mrr_usd > 0 then ' (' || printf('%.1f', overdue_mrr_multiple) || 'x MRR)'"
            " else ' (no MRR)' end"
        ),
        "billing_complaints": f"{_plural('billing_complaints', 'billing ticket')} || '{window}'",
        "error_credit_notes": f"{_plural('error_credit_notes', 'credit note')} || ' for a billing error{window}'",
        "low_clarity_scores": (
            "case when low_clarity_scores = 1"
            f" then 'clarity score ' || lowest_clarity_score || '/5{window}'"
            f" else low_clarity_scores || ' low clarity scores{window} (lowest ' || lowest_clarity_score || '/5)' end"
        ),
        "nps_detractor": "'NPS ' || latest_nps_score || '/10'",
        "downgrades": f"{_plural('downgrades', 'downgrade')} || '{window}'",
    }


def drivers_sql(wording: RiskWording, columns: Iterable[str]) -> str:
    """A DuckDB expression over customer_risk's columns: the drivers present in words,
    strongest contribution first (ties in the policy's driver order), joined with "; ",
    or 'none'. A driver counts when its `<driver>_contribution` is above zero, so a
    driver weighted 0 (or dropped from the policy) is not named, whatever its count."""
    phrases = _driver_phrases(wording.window_days)
    available = set(columns)
    order = list(wording.driver_order) + [name for name in DEFAULT_DRIVER_ORDER if name not in wording.driver_order]
    items = []
    for position, driver in enumerate(order):
        contribution = f"{driver}_contribution"
        if contribution not in available:
            continue
        # a driver the export has no words for is still named, with its value
        phrase = phrases.get(driver, f"'{driver} ' || {driver}")
        items.append(
            f"{{'weight': -{contribution}, 'position': {position}, "
            f"'phrase': case when {contribution} > 0 then {phrase} end}}"
        )
    if not items:
        return f"'{NO_DRIVERS}'"
    listed = ", ".join(items)
    return (
        "coalesce(nullif(array_to_string(list_transform(list_sort(list_filter("
        f"[{listed}], lambda item: item.phrase is not null)), lambda item: item.phrase), '; '), ''), '{NO_DRIVERS}')"
    )


def select_at_risk(
    conn: duckdb.DuckDBPyConnection,
    at_risk: AtRiskFilter,
    wording: RiskWording,
    table: str = RISK_TABLE,
    customers_table: str = CUSTOMERS_TABLE,
) -> pl.DataFrame:
    """The at-risk customers matching the filter, in EXPORT_COLUMNS order (without the PII
    columns unless asked), sorted by value at risk (unknown value last), then risk_score,
    then customer_id. Segment values are checked against the mart first."""
    columns = require_risk_table(conn, table)
    validate_segments(at_risk.segments, segment_choices(conn, table))
    conditions = ["risk.risk_score > 0", "risk.risk_score >= ?"]
    parameters: list[Any] = [at_risk.min_risk]
    for dimension, values in at_risk.segments.items():
        conditions.append(f"coalesce(risk.{dimension}, '{UNKNOWN_SEGMENT}') in ({', '.join('?' for _ in values)})")
        parameters.extend(values)
    segments = ",\n".join(
        f"coalesce(risk.{dimension}, '{UNKNOWN_SEGMENT}') as {dimension}" for dimension in SEGMENT_DIMENSIONS
    )
    kept = [
        name
        for name in EXPORT_COLUMNS
        if name not in SEGMENT_DIMENSIONS and name not in PII_COLUMNS and name != "drivers"
    ]
    pii_join = ""
    if at_risk.include_pii:
        if not _table_columns(conn, customers_table):
            raise WarehouseNotReady(f"{customers_table} is not in the warehouse: run `billing-analytics run` first")
        pii_join = f"left join {customers_table} as customers on risk.customer_id = customers.customer_id"
    sql = f"""
        select
            {", ".join(f"risk.{name}" for name in kept)},
            {"customers.customer_name, customers.email," if at_risk.include_pii else ""}
            {drivers_sql(wording, columns)} as drivers,
            {segments}
        from {table} as risk
        {pii_join}
        where {" and ".join(conditions)}
        order by {", ".join(f"risk.{column} {direction}" for column, direction in SORT_KEYS)}
        {"limit ?" if at_risk.top_n is not None else ""}
    """
    if at_risk.top_n is not None:
        parameters.append(at_risk.top_n)
    frame = conn.sql(sql, params=parameters).pl()
    wanted = [name for name in EXPORT_COLUMNS if at_risk.include_pii or name not in PII_COLUMNS]
    return frame.select(wanted)


# --- write ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportedFile:
    path: Path
    format: str
    rows: int


def parse_formats(text: str) -> tuple[str, ...]:
    """`csv,parquet` -> ("csv", "parquet"); an unknown format lists the valid ones."""
    formats: list[str] = []
    for part in text.split(","):
        name = part.strip().lower()
        if name not in FORMATS:
            raise ExportArgumentError(f"unknown format {part.strip()!r}; valid formats: {_listed(FORMATS)}")
        if name not in formats:
            formats.append(name)
    return tuple(formats)


def write_frame(frame: pl.DataFrame, path: Path, file_format: str) -> ExportedFile:
    """Write to a temporary file beside `path`, flush it to disk, then rename it over
    `path`: a reader sees the old file or the new one, never part of one."""
    if file_format not in FORMATS:
        raise ExportArgumentError(f"unknown format {file_format!r}; valid formats: {_listed(FORMATS)}")

    def write(stream: BinaryIO) -> None:
        if file_format == "csv":
            frame.write_csv(stream)
        else:
            frame.write_parquet(stream)

    write_file_atomically(path, write)
    return ExportedFile(path, file_format, frame.height)


def write_export(frame: pl.DataFrame, folder: Path, stem: str, formats: Sequence[str] = FORMATS) -> list[ExportedFile]:
    """`<folder>/<stem>.<format>` for each format."""
    return [write_frame(frame, Path(folder) / f"{stem}.{file_format}", file_format) for file_format in formats]
