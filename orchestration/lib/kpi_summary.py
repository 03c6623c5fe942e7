"""The latest month's headline KPIs, for the console after a run."""

from __future__ import annotations

from pathlib import Path

import duckdb

from orchestration.lib.warehouse import fetch_scalar, open_warehouse

HEADLINE_SQL = """
with latest as (select max(month) as latest_month from marts.kpi_churn)
select
    churn.segment_dimension,
    churn.segment_value,
    churn.customers_start,
    churn.logo_churn_rate,
    churn.mrr_end_usd,
    churn.net_revenue_retention,
    errors.error_rate_per_100,
    dso.dso_days,
    clv.clv_simple_usd,
    clv.clv_sbg_usd
from marts.kpi_churn as churn
inner join latest on churn.month = latest.latest_month
left join marts.kpi_invoice_error_rate as errors using (month, segment_dimension, segment_value)
left join marts.kpi_dso as dso using (month, segment_dimension, segment_value)
left join marts.kpi_clv as clv using (month, segment_dimension, segment_value)
where churn.segment_dimension in ('all', 'company_size')
order by churn.segment_dimension, churn.segment_value
"""

COLUMNS = (
    "segment",
    "customers",
    "logo churn",
    "MRR end (USD)",
    "NRR",
    "errors/100",
    "DSO days",
    "CLV simple",
    "CLV sBG",
)


def _fmt(value, kind: str) -> str:
    if value is None:
        return "-"
    return {
        "int": f"{value:,}",
        "pct": f"{100 * value:.1f}%",
        "usd": f"{value:,.0f}",
        "num": f"{value:.2f}",
        "days": f"{value:.1f}",
    }[kind]


def render_headline(conn: duckdb.DuckDBPyConnection) -> str:
    month = fetch_scalar(conn, "select max(month) from marts.kpi_churn")
    rows = conn.execute(HEADLINE_SQL).fetchall()
    kinds = ("int", "pct", "usd", "pct", "num", "days", "usd", "usd")
    lines = [f"Latest month {month}:", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for dimension, value, *metrics in rows:
        label = "all" if dimension == "all" else value
        lines.append("| " + " | ".join([label, *(_fmt(m, k) for m, k in zip(metrics, kinds, strict=True))]) + " |")
    return "\n".join(lines)


def print_headline(warehouse_path: Path) -> None:
    if not warehouse_path.exists():
        return
    with open_warehouse(warehouse_path, read_only=True) as conn:
        built = fetch_scalar(
            conn,
            "select count(*) from information_schema.tables where table_schema = 'marts' and table_name = 'kpi_clv'",
        )
        if built:
            print(render_headline(conn))
