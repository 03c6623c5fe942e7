"""The KPI dashboard's numbers, read from the warehouse into one JSON-serialisable dict.

Everything the page shows comes from here (render.py only draws it), and the
same dict is published as dashboard_data.json, so a number on the page can be
traced to a mart row. Money is USD (metrics.md); rates stay fractions
(0.0123), error rates stay per 100 invoices, as the marts hold them.

The as-of month is the latest month the KPI marts report (the month of the
latest billing fact, reported as it stands); tiles compare it with the
calendar month before it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import duckdb

# The tiles and trend lines: one KPI column of one mart each (metrics.md).
# unit: how a person reads it (render.py formats by it); better: the direction
# that is good news, so a change can be coloured without guessing.


@dataclass(frozen=True)
class Metric:
    key: str
    table: str
    column: str
    label: str
    unit: str  # percent (a fraction), per_100, days, usd
    better: str  # up or down
    description: str


METRICS = (
    Metric(
        "invoice_error_rate",
        "marts.kpi_invoice_error_rate",
        "error_rate_per_100",
        "Invoice error rate",
        "per_100",
        "down",
        "Invoices with an error credit note or error ticket, per 100 issued",
    ),
    Metric(
        "dso",
        "marts.kpi_dso",
        "dso_days",
        "DSO",
        "days",
        "down",
        "Days sales outstanding: AR at month end / credit sales x days in month",
    ),
    Metric(
        "logo_churn",
        "marts.kpi_churn",
        "logo_churn_rate",
        "Logo churn",
        "percent",
        "down",
        "Customers active at the month start and gone by its end",
    ),
    Metric(
        "nrr",
        "marts.kpi_churn",
        "net_revenue_retention",
        "Net revenue retention",
        "percent",
        "up",
        "(MRR start + expansion - contraction - churned) / MRR start, for the month",
    ),
    Metric(
        "mrr",
        "marts.kpi_churn",
        "mrr_end_usd",
        "MRR",
        "usd",
        "up",
        "Monthly recurring revenue at the month end",
    ),
    Metric(
        "clv",
        "marts.kpi_clv",
        "clv_sbg_usd",
        "CLV (sBG)",
        "usd",
        "up",
        "Customer lifetime value: gross margin x revenue per period x discounted expected lifetime (sBG fit)",
    ),
)

# The marts whose latest month makes the as-of month.
KPI_TABLES = tuple(dict.fromkeys(metric.table for metric in METRICS))

AR_BUCKETS = (
    ("ar_current_usd", "Not yet due"),
    ("ar_1_30_usd", "1-30 days overdue"),
    ("ar_31_60_usd", "31-60 days overdue"),
    ("ar_61_90_usd", "61-90 days overdue"),
    ("ar_90_plus_usd", "90+ days overdue"),
)

TOP_INVOICES = 10

# Segment dimensions in the marts' order (dbt_project/macros/segments.sql), and the
# natural order of values that have one; other values sort alphabetically, `unknown` last.
DIMENSION_ORDER = ("all", "company_size", "region", "tier", "billing_period", "acquisition_channel", "tenure_band")
VALUE_ORDER = {
    "company_size": ("smb", "mid_market", "enterprise"),
    "tier": ("basic", "pro", "enterprise"),
    "billing_period": ("month", "quarter", "year"),
    "tenure_band": ("0-3m", "3-12m", "12-24m", "24m+"),
}


class DashboardDataError(RuntimeError):
    """The warehouse lacks what the dashboard needs (a mart not built, no months)."""


def _plain(value: Any) -> Any:
    """DuckDB values as JSON types: decimals as floats, dates as ISO text."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _rows(conn: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[dict[str, Any]]:
    cursor = conn.execute(sql, params or [])
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def table_exists(conn: duckdb.DuckDBPyConnection, qualified_name: str) -> bool:
    schema, name = qualified_name.split(".")
    found = conn.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?", [schema, name]
    ).fetchall()
    return bool(found[0][0])


def _require(conn: duckdb.DuckDBPyConnection, tables: tuple[str, ...]) -> None:
    missing = [table for table in tables if not table_exists(conn, table)]
    if missing:
        raise DashboardDataError(
            f"the dashboard reads {', '.join(missing)}, which the warehouse does not have: build the dbt models first"
        )


def add_months(month: dt.date, months: int) -> dt.date:
    index = month.year * 12 + month.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def as_of_month(conn: duckdb.DuckDBPyConnection) -> dt.date:
    """The latest month any KPI mart reports: the month of the latest billing fact."""
    _require(conn, KPI_TABLES)
    latest = " union all ".join(f"select max(month) as month from {table}" for table in KPI_TABLES)
    month = conn.execute(f"select max(month) from ({latest})").fetchall()[0][0]
    if month is None:
        raise DashboardDataError(f"the KPI marts ({', '.join(KPI_TABLES)}) have no months: nothing to show")
    return month


def _sort_segments(pairs: set[tuple[str, str]]) -> dict[str, list[str]]:
    def dimension_rank(dimension: str) -> tuple[int, str]:
        known = dimension in DIMENSION_ORDER
        return (DIMENSION_ORDER.index(dimension) if known else len(DIMENSION_ORDER), dimension)

    def value_rank(dimension: str, value: str) -> tuple[int, int, str]:
        order = VALUE_ORDER.get(dimension, ())
        return (value == "unknown", order.index(value) if value in order else len(order), value)

    segments: dict[str, list[str]] = {}
    for dimension in sorted({d for d, _ in pairs}, key=dimension_rank):
        values = {v for d, v in pairs if d == dimension}
        segments[dimension] = sorted(values, key=lambda value, d=dimension: value_rank(d, value))
    return segments


def _series(conn, table: str, columns: list[str], last_month: dt.date) -> dict[tuple, dict[str, Any]]:
    """(month, dimension, value) -> {column: value} for the months up to the as-of month."""
    rows = _rows(
        conn,
        f"select month, segment_dimension, segment_value, {', '.join(columns)} from {table} where month <= ?",
        [last_month],
    )
    return {(row["month"], row["segment_dimension"], row["segment_value"]): row for row in rows}


def _change(value: float | None, previous: float | None) -> tuple[float | None, float | None]:
    """(value - previous, that change relative to |previous|); None where a side is missing."""
    if value is None or previous is None:
        return None, None
    change = value - previous
    return change, (change / abs(previous) if previous else None)


def build_kpis(conn: duckdb.DuckDBPyConnection, as_of: dt.date) -> dict[str, Any]:
    """Tiles (segment `all`, as-of month vs the calendar month before) and monthly trends per segment."""
    previous_month = add_months(as_of, -1)
    by_table: dict[str, dict[tuple, dict[str, Any]]] = {}
    for table in KPI_TABLES:
        columns = [metric.column for metric in METRICS if metric.table == table]
        by_table[table] = _series(conn, table, columns, as_of)

    months = sorted({key[0] for series in by_table.values() for key in series})
    segments = _sort_segments({(key[1], key[2]) for series in by_table.values() for key in series})

    tiles = []
    trends = {}
    for metric in METRICS:
        series = by_table[metric.table]

        def value_at(month, dimension, value, series=series, column=metric.column):
            row = series.get((month, dimension, value))
            return None if row is None else _plain(row[column])

        value = value_at(as_of, "all", "all")
        previous = value_at(previous_month, "all", "all")
        change, relative_change = _change(value, previous)
        tiles.append(
            {
                "key": metric.key,
                "label": metric.label,
                "unit": metric.unit,
                "better": metric.better,
                "description": metric.description,
                "source": f"{metric.table}.{metric.column}",
                "value": value,
                "previous": previous,
                "change": change,
                "relative_change": relative_change,
            }
        )
        trends[metric.key] = {
            "label": metric.label,
            "unit": metric.unit,
            "source": f"{metric.table}.{metric.column}",
            "by_segment": {
                dimension: {value: [value_at(month, dimension, value) for month in months] for value in values}
                for dimension, values in segments.items()
            },
        }
    return {
        "previous_month": previous_month.isoformat(),
        "months": [month.isoformat() for month in months],
        "segments": segments,
        "tiles": tiles,
        "trends": trends,
    }


def build_ar_aging(conn: duckdb.DuckDBPyConnection, as_of: dt.date, months: list[str], segments) -> dict[str, Any]:
    """AR at each month end by aging bucket, and the share of it overdue, per segment (marts.kpi_dso)."""
    columns = [column for column, _ in AR_BUCKETS]
    series = _series(conn, "marts.kpi_dso", ["ar_end_usd", *columns], as_of)
    month_dates = [dt.date.fromisoformat(month) for month in months]

    def values(dimension: str, value: str, column: str) -> list[float | None]:
        out = []
        for month in month_dates:
            row = series.get((month, dimension, value))
            out.append(None if row is None else _plain(row[column]))
        return out

    def overdue_share(dimension: str, value: str) -> list[float | None]:
        ar_end = values(dimension, value, "ar_end_usd")
        overdue = [values(dimension, value, column) for column in columns if column != "ar_current_usd"]
        return [sum(bucket[i] or 0 for bucket in overdue) / total if total else None for i, total in enumerate(ar_end)]

    return {
        "month": as_of.isoformat(),
        "buckets": [{"column": column, "label": label} for column, label in AR_BUCKETS],
        "by_segment": {
            dimension: {
                value: {
                    **{column: values(dimension, value, column) for column in ["ar_end_usd", *columns]},
                    "overdue_share": overdue_share(dimension, value),
                }
                for value in segment_values
            }
            for dimension, segment_values in segments.items()
        },
    }


def build_anomalies(conn: duckdb.DuckDBPyConnection, as_of: dt.date) -> dict[str, Any]:
    """marts.billing_anomalies: the as-of month by type and severity, the monthly trend by
    severity, and the invoices with the most USD at stake in the as-of month."""
    _require(conn, ("marts.billing_anomalies",))
    month_end = add_months(as_of, 1)
    by_type = _rows(
        conn,
        """
        select
            anomaly_type,
            severity,
            count(*) as anomalies,
            count(distinct invoice_id) as invoices,
            sum(amount_at_stake_usd) as amount_at_stake_usd
        from marts.billing_anomalies
        where detected_at >= ? and detected_at < ?
        group by anomaly_type, severity
        order by amount_at_stake_usd desc, anomaly_type
        """,
        [as_of, month_end],
    )
    trend = _rows(
        conn,
        """
        select
            cast(date_trunc('month', detected_at) as date) as month,
            severity,
            count(*) as anomalies,
            sum(amount_at_stake_usd) as amount_at_stake_usd
        from marts.billing_anomalies
        where detected_at < ?
        group by all
        order by month, severity
        """,
        [month_end],
    )
    top_invoices = _rows(
        conn,
        f"""
        select
            invoice_id,
            min(customer_id) as customer_id,
            min(detected_at) as detected_at,
            list_sort(list_distinct(list(anomaly_type))) as anomaly_types,
            case when bool_or(severity = 'block') then 'block' else 'warn' end as severity,
            count(*) as anomalies,
            sum(amount_at_stake_usd) as amount_at_stake_usd
        from marts.billing_anomalies
        -- invoices only: a missed invoice has none (it counts in by_type)
        where detected_at >= ? and detected_at < ? and invoice_id is not null
        group by invoice_id
        order by amount_at_stake_usd desc, invoice_id
        limit {TOP_INVOICES}
        """,
        [as_of, month_end],
    )
    totals = {
        severity: {
            "anomalies": sum(row["anomalies"] for row in by_type if row["severity"] == severity),
            "amount_at_stake_usd": float(
                sum(row["amount_at_stake_usd"] for row in by_type if row["severity"] == severity)
            ),
        }
        for severity in ("block", "warn")
    }
    return {
        "month": as_of.isoformat(),
        "by_type": [{key: _plain(value) for key, value in row.items()} for row in by_type],
        "totals": totals,
        "trend": [{key: _plain(value) for key, value in row.items()} for row in trend],
        "top_invoices": [{key: _plain(value) for key, value in row.items()} for row in top_invoices],
    }


def build_quality(conn: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Freshness (raw._load_manifest) and the checks of the latest check run (quality.check_runs)."""
    loads: dict[str, Any] = {"available": table_exists(conn, "raw._load_manifest")}
    if loads["available"]:
        loads.update(
            {
                key: _plain(value)
                for key, value in _rows(
                    conn,
                    """
                    select
                        max(loaded_at) as last_load_at,
                        count(*) filter (where status = 'loaded') as batches_loaded,
                        coalesce(sum(rows_loaded), 0) as rows_loaded,
                        coalesce(sum(rows_quarantined), 0) as rows_quarantined,
                        count(*) filter (where status = 'unreadable') as unreadable_files
                    from raw._load_manifest
                    """,
                )[0].items()
            }
        )
    checks: dict[str, Any] = {"available": table_exists(conn, "quality.check_runs")}
    if checks["available"]:
        runs = _rows(
            conn,
            """
            with latest as (
                select run_id from quality.check_runs order by checked_at desc, run_id desc limit 1
            )
            select layer, asset, check_name, target, passed, severity, failing_rows, message, checked_at
            from quality.check_runs
            where run_id = (select run_id from latest)
            order by passed, severity, layer, asset, check_name
            """,
        )
        failed = [run for run in runs if not run["passed"]]
        checks.update(
            {
                "last_checked_at": _plain(max((run["checked_at"] for run in runs), default=None)),
                "checks_run": len(runs),
                "passed": len(runs) - len(failed),
                "failed": len(failed),
                "blocking_failed": sum(1 for run in failed if run["severity"] == "block"),
                "failures": [
                    {key: _plain(run[key]) for key in ("layer", "asset", "check_name", "target", "severity", "message")}
                    for run in failed[:10]
                ],
                "anomaly_gate": next(
                    (
                        {key: _plain(run[key]) for key in ("passed", "message")}
                        for run in runs
                        if run["layer"] == "anomaly_gate"
                    ),
                    None,
                ),
            }
        )
    return {"loads": loads, "checks": checks}


def build_dashboard_data(conn: duckdb.DuckDBPyConnection, generated_at: dt.datetime | None = None) -> dict[str, Any]:
    """Every number of the dashboard, as plain JSON types."""
    as_of = as_of_month(conn)
    kpis = build_kpis(conn, as_of)
    generated_at = generated_at or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return {
        "generated_at": generated_at.isoformat(sep=" ", timespec="seconds"),
        "as_of_month": as_of.isoformat(),
        **kpis,
        "ar_aging": build_ar_aging(conn, as_of, kpis["months"], kpis["segments"]),
        "anomalies": build_anomalies(conn, as_of),
        "quality": build_quality(conn),
    }
