"""marts.customer_risk end to end: a generated world through ingestion, dbt
(int_customer_risk_monthly), the sBG fit and its residual-lifetime table, and the mart.

The score is checked on churn it never saw. The generator makes churn more likely
after a billing anomaly (x2.5) or a failed payment (x1.5) in the last three billing
periods; the score only sees the traces a customer would leave (failed attempts,
overdue invoices, tickets, credit notes, survey answers, downgrades). Snapshots are
the month starts 6, 5, 4 and 3 months before the data end, so the 90 days after each
are observed; the score at a snapshot uses nothing from it on, and its weights
(config/billing_policy.yml) were set before any world was evaluated.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import polars as pl
import pytest

from billing_world.deliver import DeliveryConfig
from billing_world.simulate import WorldConfig
from orchestration.lib.policy import load_policy
from tests.integration.conftest import generate_and_run

pytestmark = pytest.mark.integration

# The default anomaly rate (1 % of eligible documents per anomaly type).
WORLD = WorldConfig(customers=3000, months=36, start=dt.date(2024, 1, 1), seed=41)
DELIVERY = DeliveryConfig(batches_per_source=2, seed=41)
DATA_END = dt.datetime(2027, 1, 1)  # start + 36 months
HELD_OUT_SNAPSHOTS = [dt.datetime(2026, month, 1) for month in (7, 8, 9, 10)]  # 6..3 months before the end
HORIZON = dt.timedelta(days=90)
# Top risk decile vs the rest, 90-day churn, pooled over the four held-out snapshots.
# Measured with the default weights (fixed before any of these worlds was run) on nine
# seeds of 3,000 customers x 36 months: 1.44 to 2.11, median 1.83; this seed (41),
# chosen before its result was seen: 24.1 % of 552 top-decile snapshots churned vs 13.8 % of
# 4,966 others, 1.75 (1.82 with another draw of the random tie-break at the decile
# boundary). Part of the lift is the billing-period mix (the drivers are more
# frequent on monthly plans, which can churn at every month end); within monthly
# customers the top decile's lift was 1.2-1.55. The world bounds it: churn is mostly
# the unobserved Beta-distributed propensity, and even the generator's own record of
# a recent anomaly lifts monthly customers' 90-day churn only 1.3-1.7x. A bar of 1.4
# sits below every seed measured.
MIN_LIFT = 1.4


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    settings, ok = generate_and_run(tmp_path_factory.mktemp("risk_world"), WORLD, DELIVERY)
    conn = duckdb.connect(str(settings.warehouse_path), read_only=True)
    churn_events = pl.read_csv(settings.landing_dir / "_truth" / "churn_events.csv", try_parse_dates=True)
    yield {"ok": ok, "conn": conn, "churn_events": churn_events}
    conn.close()


def _frame(conn, sql: str) -> pl.DataFrame:
    return conn.sql(sql).pl()


def _held_out(world) -> pl.DataFrame:
    """One row per customer and held-out snapshot: score, whether the customer churned in
    the 90 days after, and whether it is in that snapshot's top risk decile."""
    scores = _frame(
        world["conn"],
        "select customer_id, snapshot_at, risk_score from intermediate.int_customer_risk_monthly",
    ).filter(pl.col("snapshot_at").is_in(HELD_OUT_SNAPSHOTS))
    churn = world["churn_events"].select("customer_id", pl.col("effective_at").cast(pl.Datetime("us")))
    churned = (
        scores.join(churn, on="customer_id")
        .filter(
            (pl.col("effective_at") > pl.col("snapshot_at"))
            & (pl.col("effective_at") <= pl.col("snapshot_at") + HORIZON)
        )
        .select("customer_id", "snapshot_at")
        .unique()
        .with_columns(churned_90d=pl.lit(True))
    )
    # Ties in the score (most customers score 0) are broken at random, so the decile
    # boundary favours no segment; sorted first, so the draw does not depend on the
    # order the warehouse returned the rows in.
    return (
        scores.join(churned, on=["customer_id", "snapshot_at"], how="left")
        .with_columns(pl.col("churned_90d").fill_null(False))
        .sort("snapshot_at", "customer_id")
        .sample(fraction=1.0, shuffle=True, seed=41)
        .sort("snapshot_at", "risk_score", descending=[False, True], maintain_order=True)
        .with_columns(
            is_top_decile=pl.int_range(pl.len()).over("snapshot_at") < (pl.len().over("snapshot_at") / 10).round()
        )
    )


def test_the_run_builds_the_risk_mart_after_the_fit(world):
    assert world["ok"] is True
    residuals = _frame(world["conn"], "select * from marts.sbg_residual_lifetimes")
    fitted = _frame(world["conn"], "select * from marts.sbg_parameters where status = 'fitted'")
    assert residuals.height == fitted.height * 121
    assert _frame(world["conn"], "select count(*) as n from marts.customer_risk")["n"][0] > 0


def test_the_top_risk_decile_churns_more_in_the_next_90_days_on_held_out_months(world):
    held_out = _held_out(world)
    assert held_out["snapshot_at"].n_unique() == len(HELD_OUT_SNAPSHOTS)
    assert max(HELD_OUT_SNAPSHOTS) + HORIZON <= DATA_END  # every horizon is observed
    rates = dict(held_out.group_by("is_top_decile").agg(pl.col("churned_90d").mean()).iter_rows())
    lift = rates[True] / rates[False]
    # seed 41: see the module docstring and MIN_LIFT for the figures
    assert lift >= MIN_LIFT, f"top decile {rates[True]:.3f} vs rest {rates[False]:.3f}: lift {lift:.2f}"
    # and customers with no driver at all churn less than those with some
    by_presence = dict(held_out.group_by(pl.col("risk_score") > 0).agg(pl.col("churned_90d").mean()).iter_rows())
    assert by_presence[True] > by_presence[False]


def test_customer_risk_has_one_row_per_customer_active_at_the_latest_month_start_and_end(world):
    conn = world["conn"]
    risk = _frame(conn, "select * from marts.customer_risk")
    active = _frame(
        conn,
        """
        select customer_id
        from intermediate.int_customer_months
        where is_active_start and is_active_end and month = (select max(month) from intermediate.int_customer_months)
        """,
    )
    assert risk["customer_id"].is_unique().all()
    assert set(risk["customer_id"]) == set(active["customer_id"])
    assert risk["as_of_month"].n_unique() == 1
    # segment attributes, never names or emails
    assert not {"name", "email", "customer_name"} & set(risk.columns)


def test_scores_lie_in_0_1_and_are_the_sum_of_the_driver_contributions(world):
    conn = world["conn"]
    for table in ("intermediate.int_customer_risk_monthly", "marts.customer_risk"):
        risk = _frame(conn, f"select * from {table}")
        contributions = [column for column in risk.columns if column.endswith("_contribution")]
        assert len(contributions) == len(load_policy()["risk"]["drivers"])
        assert risk["risk_score"].is_between(0.0, 1.0).all()
        summed = risk.select(pl.sum_horizontal(contributions) - pl.col("risk_score")).to_series().abs()
        assert (summed <= len(contributions) * 0.00005 + 1e-9).all()
        # a score above 0 names its drivers; a score of 0 has none
        assert (risk.filter(pl.col("risk_score") == 0)["risk_drivers"] == "none").all()
        assert (risk.filter(pl.col("risk_score") > 0)["risk_drivers"] != "none").all()


def test_value_at_risk_is_the_score_times_the_residual_lifetime_value(world):
    conn = world["conn"]
    risk = _frame(conn, "select * from marts.customer_risk")
    valued = risk.filter(pl.col("expected_residual_lifetime_usd").is_not_null())
    assert valued.height >= 0.9 * risk.height
    # a value, or a reason why not
    has_reason = risk["residual_lifetime_null_reason"].is_not_null()
    assert (risk["expected_residual_lifetime_usd"].is_null() == has_reason).all()
    gap = valued.select(
        (
            pl.col("value_at_risk_usd").cast(pl.Float64)
            - pl.col("risk_score") * pl.col("expected_residual_lifetime_usd").cast(pl.Float64)
        ).abs()
    ).to_series()
    assert (gap <= 0.005 + 1e-9).all()
    # the residual value from the fit the mart says it used, recomputed here
    residuals = _frame(conn, "select * from marts.sbg_residual_lifetimes")
    months = {"month": 1, "quarter": 3, "year": 12}
    margin = load_policy()["reporting"]["gross_margin"]
    recomputed = (
        valued.with_columns(
            segment_dimension=pl.col("residual_lifetime_basis"),
            segment_value=pl.when(pl.col("residual_lifetime_basis") == "all")
            .then(pl.lit("all"))
            .otherwise(pl.col("company_size")),
        )
        .join(
            residuals,
            left_on=["segment_dimension", "segment_value", "billing_period", "renewals_valued"],
            right_on=["segment_dimension", "segment_value", "billing_period", "renewals_survived"],
        )
        .with_columns(
            expected=margin
            * pl.col("current_mrr_usd").cast(pl.Float64)
            * pl.col("billing_period").replace_strict(months)
            * pl.col("discounted_expected_residual_lifetime_right")
        )
    )
    assert recomputed.height == valued.height
    assert (
        (recomputed["expected"] - recomputed["expected_residual_lifetime_usd"].cast(pl.Float64)).abs() <= 0.005 + 1e-6
    ).all()
    # the company_size fit where it exists, the all fit only when it does not
    size_fitted = set(
        residuals.filter(pl.col("segment_dimension") == "company_size")
        .select("segment_value", "billing_period")
        .unique()
        .iter_rows()
    )
    expected_basis = valued.select(
        pl.struct("company_size", "billing_period")
        .map_elements(lambda row: (row["company_size"], row["billing_period"]) in size_fitted, return_dtype=pl.Boolean)
        .alias("has_size_fit"),
        "residual_lifetime_basis",
    )
    assert ((expected_basis["residual_lifetime_basis"] == "company_size") == expected_basis["has_size_fit"]).all()
