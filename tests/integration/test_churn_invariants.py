"""marts.kpi_churn on a generated world: the MRR bridge closes, segments add
up to `all`, and logo churn agrees with the generator's ground truth.

One world (~300 customers x 18 months) is generated and run through the whole
pipeline once per module. Expectations come from `_truth/churn_events.csv`
and the clean simulated events, never from the pipeline's own output.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from decimal import Decimal

import duckdb
import polars as pl
import pytest

pytestmark = pytest.mark.integration

KEY = ("month", "segment_dimension", "segment_value")
PARTITIONS = ("company_size", "region", "tier", "billing_period", "acquisition_channel", "tenure_band")
COUNTS = ("customers_start", "churned", "churned_voluntary", "churned_involuntary", "new_customers")
MRR = (
    "mrr_start_usd",
    "new_mrr_usd",
    "expansion_mrr_usd",
    "contraction_mrr_usd",
    "churned_mrr_usd",
    "reactivation_mrr_usd",
    "mrr_end_usd",
)


@pytest.fixture(scope="module")
def world(kpi_world):
    """kpi_churn of the shared KPI world, its churn truth and the clean events."""
    settings = kpi_world["settings"]
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as conn:
        kpi = conn.sql("select * from marts.kpi_churn").pl()
    return {
        "ok": kpi_world["ok"],
        "kpi": kpi,
        "truth": pl.read_csv(settings.landing_dir / "_truth" / "churn_events.csv", try_parse_dates=True),
        "events": kpi_world["simulated"].tables["subscription_events"],
    }


def _rows(kpi: pl.DataFrame, dimension: str) -> dict:
    return {row["month"]: row for row in kpi.filter(pl.col("segment_dimension") == dimension).iter_rows(named=True)}


def _first_instant(month: dt.date) -> dt.datetime:
    return dt.datetime(month.year, month.month, 1)


def _next_first_instant(month: dt.date) -> dt.datetime:
    return dt.datetime(month.year + month.month // 12, month.month % 12 + 1, 1)


def _flow_month(instant: dt.datetime) -> dt.date:
    """The month whose flows hold an instant: an end at 00:00 on the 1st is the
    month before's churn (the customer is not active at that first instant)."""
    month = instant.date().replace(day=1)
    if instant == _first_instant(month):
        month = (month - dt.timedelta(days=1)).replace(day=1)
    return month


def test_the_pipeline_run_succeeds(world):
    assert world["ok"] is True


def test_kpi_churn_has_one_row_per_month_and_segment_with_every_value_in_every_month(world):
    kpi = world["kpi"]
    assert kpi.height > 0
    assert kpi.select(KEY).is_unique().all()
    months = kpi["month"].n_unique()
    per_value = kpi.group_by("segment_dimension", "segment_value").len()
    assert (per_value["len"] == months).all()
    assert set(kpi["segment_dimension"]) == {"all", *PARTITIONS}


def test_the_mrr_bridge_closes_exactly_on_every_row(world):
    for row in world["kpi"].iter_rows(named=True):
        bridged = (
            row["mrr_start_usd"]
            + row["new_mrr_usd"]
            + row["expansion_mrr_usd"]
            + row["reactivation_mrr_usd"]
            - row["contraction_mrr_usd"]
            - row["churned_mrr_usd"]
        )
        assert bridged == row["mrr_end_usd"], (row["month"], row["segment_dimension"], row["segment_value"])


def test_movements_are_never_negative_and_churn_never_exceeds_the_start(world):
    for row in world["kpi"].iter_rows(named=True):
        assert all(row[column] >= 0 for column in (*COUNTS, *MRR)), row
        assert row["churned"] <= row["customers_start"], row
        assert row["churned_voluntary"] + row["churned_involuntary"] == row["churned"], row
        assert row["customers_up_for_renewal"] <= row["customers_start"], row


def test_each_dimension_partitions_the_customers_so_its_values_add_up_to_all(world):
    kpi = world["kpi"]
    everyone = _rows(kpi, "all")
    for dimension in PARTITIONS:
        sums = (
            kpi.filter(pl.col("segment_dimension") == dimension)
            .group_by("month")
            .agg(pl.col(column).sum() for column in (*COUNTS, *MRR))
        )
        for row in sums.iter_rows(named=True):
            expected = everyone[row["month"]]
            for column in (*COUNTS, *MRR):
                assert Decimal(row[column]) == Decimal(expected[column]), (dimension, row["month"], column)


def test_rates_follow_their_definitions(world):
    for row in world["kpi"].iter_rows(named=True):
        if row["customers_start"] == 0:
            assert row["logo_churn_rate"] is None
        else:
            assert row["logo_churn_rate"] == pytest.approx(row["churned"] / row["customers_start"])
        if row["mrr_start_usd"] == 0:
            assert row["gross_revenue_retention"] is None and row["net_revenue_retention"] is None
        else:
            kept = row["mrr_start_usd"] - row["contraction_mrr_usd"] - row["churned_mrr_usd"]
            assert row["gross_revenue_retention"] == pytest.approx(float(kept / row["mrr_start_usd"]))
            assert row["net_revenue_retention"] == pytest.approx(
                float((kept + row["expansion_mrr_usd"]) / row["mrr_start_usd"])
            )


def _true_churns(truth: pl.DataFrame, events: pl.DataFrame) -> Counter[tuple[dt.date, str]]:
    """(month, event type) of every true churn event that is a logo churn: one
    at t is month m's when t is after m's first instant and at or before the
    next month's first instant (00:00 UTC on the 1st belongs to the month
    before), the life it ends had started by m's first instant (a life that
    starts and ends inside one month is never counted at a month start), and
    the customer has not come back by the next month's first instant."""
    starts = (
        events.filter(pl.col("event_type").is_in(["created", "reactivated"]))
        .group_by("customer_id")
        .agg(pl.col("effective_at").sort())
    )
    starts_of = dict(zip(starts["customer_id"], starts["effective_at"], strict=True))
    churns: Counter[tuple[dt.date, str]] = Counter()
    for customer, kind, ended_at in truth.select("customer_id", "event_type", "effective_at").iter_rows():
        month = _flow_month(ended_at)
        life_start = max(start for start in starts_of[customer] if start < ended_at)
        came_back = any(ended_at <= start <= _next_first_instant(month) for start in starts_of[customer])
        if life_start <= _first_instant(month) and not came_back:
            churns[month, kind] += 1
    return churns


def test_logo_churn_of_every_month_equals_the_true_churn_events(world):
    churns = _true_churns(world["truth"], world["events"])
    everyone = _rows(world["kpi"], "all")
    assert sum(churns.values()) > 0
    assert {month for month, _ in churns} <= set(everyone)
    for month, row in everyone.items():
        voluntary, involuntary = churns[month, "cancelled"], churns[month, "lapsed"]
        assert (row["churned"], row["churned_voluntary"], row["churned_involuntary"]) == (
            voluntary + involuntary,
            voluntary,
            involuntary,
        ), month
