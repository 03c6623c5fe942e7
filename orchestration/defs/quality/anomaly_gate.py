"""The billing-anomaly gate: a blocking check on marts.billing_anomalies.

Nothing wrong may reach a dashboard unflagged, but a handful of small errors
should not stop it either. The gate fails, and so stops publication (the
dashboard and anything else downstream of the mart), when

    share = USD at stake of `block`-severity anomalies detected in the as-of month
            / revenue of the as-of month
    share > anomalies.gate.max_block_share_of_revenue (config/billing_policy.yml)

- as-of month: the latest month the KPI marts report (dashboards.data.as_of_month),
  the month the dashboard headlines;
- detected in it: detected_at (the invoice's issue or the payment's attempt)
  in that calendar month, UTC;
- revenue: kpi_dso.credit_sales_usd of segment `all`, i.e. the USD total of the
  invoices issued in the month, status not draft / void (metrics.md);
- a share equal to the limit passes ("exceeds" blocks); block anomalies against no
  revenue at all are an infinite share (fails), no block anomalies a share of 0.

Each evaluation is also recorded in quality.check_runs (layer anomaly_gate).
"""

import datetime as dt
import math
import time
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import duckdb

from dashboards.data import KPI_TABLES, add_months, as_of_month
from orchestration.defs.resources import WAREHOUSE_POOL, WarehouseResource
from orchestration.lib.check_runs import CheckRun, record_check_runs
from orchestration.lib.policy import load_policy, policy_path

BILLING_ANOMALIES_KEY = dg.AssetKey(["marts", "billing_anomalies"])
GATE_CHECK_NAME = "block_anomalies_within_revenue_share"
TOP_ANOMALIES = 10


def kpi_asset_key(table: str) -> dg.AssetKey:
    """marts.kpi_dso -> marts/kpi_dso, the key dagster-dbt gives the model."""
    return dg.AssetKey(table.split("."))


def max_block_share(policy: dict[str, Any], source: str = "config/billing_policy.yml") -> float:
    """The configured limit, refused with a message naming the key when missing or not a share >= 0."""
    key = "anomalies.gate.max_block_share_of_revenue"
    try:
        value = policy["anomalies"]["gate"]["max_block_share_of_revenue"]
    except (KeyError, TypeError):
        raise ValueError(f"{source} has no {key}: set it to the share of revenue (e.g. 0.05)") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{key} in {source} is {value!r}; expected a share of revenue >= 0, e.g. 0.05 for 5 %")
    return float(value)


def block_share_of_revenue(block_amount_usd: float, revenue_usd: float) -> float:
    """USD at stake of block anomalies / revenue; 0 without block anomalies, infinite without revenue."""
    if block_amount_usd <= 0:
        return 0.0
    if revenue_usd <= 0:
        return math.inf
    return block_amount_usd / revenue_usd


def gate_passes(share: float, limit: float) -> bool:
    """Publication stops only when the share exceeds the limit; equal passes."""
    return share <= limit


@dataclass(frozen=True)
class GateMeasurement:
    """What the gate saw in the as-of month."""

    month: dt.date
    block_anomalies: int
    block_amount_usd: float
    revenue_usd: float
    limit: float
    top_anomalies: list[dict[str, Any]] = field(default_factory=list)

    @property
    def share(self) -> float:
        return block_share_of_revenue(self.block_amount_usd, self.revenue_usd)

    @property
    def passed(self) -> bool:
        return gate_passes(self.share, self.limit)

    def message(self) -> str:
        share = "infinite (no revenue)" if math.isinf(self.share) else f"{self.share:.2%}"
        verdict = "within" if self.passed else "ABOVE"
        return (
            f"{self.block_anomalies} block anomalies detected in {self.month:%Y-%m} put "
            f"${self.block_amount_usd:,.2f} at stake: {share} of the month's revenue ${self.revenue_usd:,.2f}, "
            f"{verdict} the limit of {self.limit:.2%} (anomalies.gate.max_block_share_of_revenue)"
        )


def measure_gate(conn: duckdb.DuckDBPyConnection, limit: float) -> GateMeasurement:
    """Block anomalies and revenue of the as-of month, read from the marts."""
    month = as_of_month(conn)
    window = [month, add_months(month, 1)]
    count, amount = conn.execute(
        """
        select count(*), coalesce(sum(amount_at_stake_usd), 0)
        from marts.billing_anomalies
        where severity = 'block' and detected_at >= ? and detected_at < ?
        """,
        window,
    ).fetchall()[0]
    revenue = conn.execute(
        """
        select coalesce(sum(credit_sales_usd), 0)
        from marts.kpi_dso
        where month = ? and segment_dimension = 'all'
        """,
        [month],
    ).fetchall()[0][0]
    cursor = conn.execute(
        f"""
        select anomaly_id, anomaly_type, invoice_id, payment_id, customer_id, expected, actual,
               amount_at_stake_usd, detected_at
        from marts.billing_anomalies
        where severity = 'block' and detected_at >= ? and detected_at < ?
        order by amount_at_stake_usd desc, anomaly_id
        limit {TOP_ANOMALIES}
        """,
        window,
    )
    names = [column[0] for column in cursor.description]
    top = [
        {
            name: float(value) if name == "amount_at_stake_usd" else (str(value) if value is not None else None)
            for name, value in zip(names, row, strict=True)
        }
        for row in cursor.fetchall()
    ]
    return GateMeasurement(month, int(count), float(amount), float(revenue), limit, top)


def _top_table(top: list[dict[str, Any]]) -> str:
    lines = ["| type | invoice | payment | expected | actual | USD at stake |", "|---|---|---|---|---|---:|"]
    for row in top:
        lines.append(
            f"| {row['anomaly_type']} | {row['invoice_id'] or ''} | {row['payment_id'] or ''} | {row['expected']} "
            f"| {row['actual']} | {row['amount_at_stake_usd']:,.2f} |"
        )
    return "\n".join(lines)


@dg.asset_check(
    asset=BILLING_ANOMALIES_KEY,
    name=GATE_CHECK_NAME,
    blocking=True,
    # the as-of month and the revenue come from the KPI marts
    additional_deps=[kpi_asset_key(table) for table in KPI_TABLES],
    pool=WAREHOUSE_POOL,
    description=(
        "Blocks publication when the USD at stake of block-severity anomalies detected in the as-of month "
        "exceeds anomalies.gate.max_block_share_of_revenue (config/billing_policy.yml) of that month's revenue "
        "(kpi_dso.credit_sales_usd, segment all). Recorded in quality.check_runs (layer anomaly_gate)."
    ),
)
def billing_anomaly_gate(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    started = time.perf_counter()
    source = policy_path()
    limit = max_block_share(load_policy(source), str(source))
    with warehouse.connect() as conn:
        measurement = measure_gate(conn, limit)
        message = measurement.message()
        record_check_runs(
            conn,
            context.run.run_id,
            [
                CheckRun(
                    layer="anomaly_gate",
                    asset=BILLING_ANOMALIES_KEY.to_user_string(),
                    check_name=GATE_CHECK_NAME,
                    target=f"month {measurement.month:%Y-%m}",
                    passed=measurement.passed,
                    severity="block",
                    rows_checked=measurement.block_anomalies,
                    failing_rows=0 if measurement.passed else measurement.block_anomalies,
                    examples=measurement.top_anomalies,
                    message=message,
                    duration_ms=(time.perf_counter() - started) * 1000,
                )
            ],
        )
    (context.log.info if measurement.passed else context.log.error)(f"Billing-anomaly gate: {message}")
    share = measurement.share
    return dg.AssetCheckResult(
        passed=measurement.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=message,
        metadata={
            "month": measurement.month.isoformat(),
            "block_anomalies": measurement.block_anomalies,
            "block_amount_at_stake_usd": dg.MetadataValue.float(measurement.block_amount_usd),
            "revenue_usd": dg.MetadataValue.float(measurement.revenue_usd),
            # JSON has no infinity: no revenue with block anomalies shows as null plus the message
            "share_of_revenue": None if math.isinf(share) else dg.MetadataValue.float(share),
            "max_block_share_of_revenue": dg.MetadataValue.float(limit),
            "policy_file": dg.MetadataValue.path(str(source)),
            "top_block_anomalies": dg.MetadataValue.md(_top_table(measurement.top_anomalies)),
        },
    )
