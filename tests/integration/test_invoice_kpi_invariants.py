"""Invoice KPI marts on a generated world: invariants of the long segment grain,
and agreement with the generator's ground truth and clean tables.

One world (~300 customers x 18 months) is generated and run through the whole
pipeline once per module. Expectations come from `_truth/` and from the clean
simulated tables, never from the pipeline's own output.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import duckdb
import polars as pl
import pytest

from tests.integration.conftest import KPI_WORLD

pytestmark = pytest.mark.integration

KEY = ("month", "segment_dimension", "segment_value")
DIMENSIONS = {"all", "company_size", "region", "tier", "billing_period", "acquisition_channel", "tenure_band"}
# mart -> columns that add up across the values of a dimension
ADDITIVE = {
    "kpi_invoice_error_rate": (
        "invoices_issued",
        "invoices_with_error",
        "invoices_with_error_credit_note",
        "invoices_with_error_ticket",
        "invoiced_usd",
    ),
    "kpi_dso": (
        "credit_sales_usd",
        "ar_end_usd",
        "ar_current_usd",
        "overdue_ar_usd",
        "ar_1_30_usd",
        "ar_31_60_usd",
        "ar_61_90_usd",
        "ar_90_plus_usd",
        "open_invoices",
    ),
    "kpi_collections": (
        "invoices_with_attempt",
        "invoices_first_attempt_failed",
        "invoices_recovered",
        "recovered_usd",
        "invoices_paid",
        "invoices_uncollectible",
        "involuntary_churn_usd",
        "overdue_ar_usd",
    ),
}
ERROR_CREDIT_REASONS = ("billing_error", "duplicate_charge")
ERROR_TICKET_SUBCATEGORIES = ("duplicate_charge", "wrong_amount", "missing_discount", "wrong_tax")
# USD is rounded to 4 decimals per invoice in the warehouse and here; a month
# sums a few hundred invoices at most
USD_TOLERANCE = 0.01


@pytest.fixture(scope="module")
def world(kpi_world):
    """The shared KPI world's warehouse, truth and clean tables."""
    conn = duckdb.connect(str(kpi_world["settings"].warehouse_path), read_only=True)
    simulated = kpi_world["simulated"]
    yield {"ok": kpi_world["ok"], "conn": conn, "truth": simulated.truth, "clean": simulated.tables}
    conn.close()


def _mart(world, name: str) -> pl.DataFrame:
    return world["conn"].sql(f"select * from marts.{name}").pl()


def _all_rows(world, name: str) -> pl.DataFrame:
    return _mart(world, name).filter(pl.col("segment_dimension") == "all").sort("month")


def _month(column: str) -> pl.Expr:
    return pl.col(column).dt.truncate("1mo").cast(pl.Date)


def _world_months() -> list[dt.date]:
    return [
        dt.date(
            KPI_WORLD.start.year + (KPI_WORLD.start.month - 1 + i) // 12, (KPI_WORLD.start.month - 1 + i) % 12 + 1, 1
        )
        for i in range(KPI_WORLD.months)
    ]


def _invoice_rates(clean) -> pl.DataFrame:
    """USD per unit of each invoice at its issue date, or the latest earlier rate (the contract's FX rule)."""
    rates = clean["fx_rates"].sort("currency", "rate_date")
    invoices = clean["invoices"].with_columns(issued_date=pl.col("issued_at").cast(pl.Date))
    joined = invoices.sort("currency", "issued_date").join_asof(
        rates,
        left_on="issued_date",
        right_on="rate_date",
        by="currency",
        strategy="backward",
        check_sortedness=False,  # sorted within each currency above
    )
    return joined.select(
        "invoice_id",
        usd_per_unit=pl.when(pl.col("currency") == "USD").then(1.0).otherwise(pl.col("usd_per_unit")),
    )


def test_the_whole_pipeline_run_succeeds(world):
    """Builds every dbt model, other marts included: a failure here may come from outside the invoice KPIs."""
    assert world["ok"] is True


@pytest.mark.parametrize("mart", sorted(ADDITIVE))
def test_every_segment_value_appears_once_in_every_month(world, mart):
    frame = _mart(world, mart)
    assert frame.height > 0
    assert frame.select(KEY).is_unique().all()
    assert set(frame["segment_dimension"]) == DIMENSIONS
    months = frame["month"].n_unique()
    per_value = frame.group_by("segment_dimension", "segment_value").len()
    assert (per_value["len"] == months).all(), per_value.filter(pl.col("len") != months)
    assert sorted(frame["month"].unique()) == _world_months()


@pytest.mark.parametrize("mart", sorted(ADDITIVE))
def test_segment_rows_add_up_to_all_in_every_dimension(world, mart):
    frame = _mart(world, mart)
    columns = ADDITIVE[mart]
    totals = frame.filter(pl.col("segment_dimension") == "all").select("month", *columns)
    sums = frame.group_by("month", "segment_dimension").agg(pl.col(c).sum() for c in columns)
    joined = sums.join(totals, on="month", suffix="_all")
    assert joined.height == len(DIMENSIONS) * totals.height
    for column in columns:
        mismatched = joined.filter(pl.col(column) != pl.col(f"{column}_all"))
        assert mismatched.is_empty(), (column, mismatched.select("month", "segment_dimension", column, f"{column}_all"))


def test_dso_days_is_null_exactly_when_there_are_no_credit_sales(world):
    frame = _mart(world, "kpi_dso")
    assert (frame["dso_days"].is_null() == (frame["credit_sales_usd"] == 0)).all()
    assert frame["dso_days"].is_not_null().any()


def test_countback_dso_is_zero_without_ar_and_never_beyond_the_history(world):
    frame = _mart(world, "kpi_dso")
    assert (frame.filter(pl.col("ar_end_usd") == 0)["dso_countback_days"] == 0).all()
    first = frame["month"].min()
    counted = frame.filter(pl.col("dso_countback_days").is_not_null()).with_columns(
        history_days=(pl.col("month").dt.month_end() - pl.lit(first)).dt.total_days() + 1
    )
    assert (counted["dso_countback_days"] <= counted["history_days"]).all()


def test_ar_buckets_add_up_to_ar_end_and_overdue_is_the_past_due_buckets(world):
    frame = _mart(world, "kpi_dso")
    past_due = pl.col("ar_1_30_usd") + pl.col("ar_31_60_usd") + pl.col("ar_61_90_usd") + pl.col("ar_90_plus_usd")
    assert (frame["ar_end_usd"] == frame.select(pl.col("ar_current_usd") + past_due).to_series()).all()
    assert (frame["overdue_ar_usd"] == frame.select(past_due).to_series()).all()
    assert frame["overdue_ar_usd"].sum() > 0


def test_collections_and_dso_agree_on_overdue_ar(world):
    dso = _mart(world, "kpi_dso").select(*KEY, "overdue_ar_usd")
    collections = _mart(world, "kpi_collections").select(*KEY, "overdue_ar_usd")
    joined = dso.join(collections, on=KEY, how="full", coalesce=True, suffix="_collections")
    assert joined.height == dso.height == collections.height
    assert (joined["overdue_ar_usd"] == joined["overdue_ar_usd_collections"]).all()


def _error_document_invoices(clean) -> set[str]:
    credit = clean["credit_notes"].filter(pl.col("reason").is_in(ERROR_CREDIT_REASONS))["invoice_id"]
    tickets = clean["support_tickets"].filter(
        pl.col("subcategory").is_in(ERROR_TICKET_SUBCATEGORIES) & pl.col("invoice_id").is_not_null()
    )["invoice_id"]
    return set(credit) | set(tickets)


def test_flagged_error_invoices_are_the_true_errors_that_got_an_error_credit_note_or_ticket(world):
    truth = set(world["truth"]["error_invoices"]["invoice_id"])
    flagged = set(
        world["conn"].sql("select invoice_id from marts.fct_invoices where is_error_invoice").pl()["invoice_id"]
    )
    documented = _error_document_invoices(world["clean"])
    assert flagged, "the world should have some error invoices"
    # the generator only files error credit notes and tickets against truly wrong invoices ...
    assert documented <= truth
    # ... so the flag finds exactly those, and never a clean invoice
    assert flagged == truth & documented
    assert flagged <= truth
    # some true errors go unnoticed: the flag is a lower bound of the truth
    assert len(flagged) < len(truth)


def test_monthly_invoices_issued_and_with_error_for_all_match_the_generator(world):
    invoices = world["clean"]["invoices"].filter(pl.col("status") != "draft")
    errors = set(world["truth"]["error_invoices"]["invoice_id"]) & _error_document_invoices(world["clean"])
    expected = (
        invoices.group_by(month=_month("issued_at"))
        .agg(
            invoices_issued=pl.len(),
            invoices_with_error=pl.col("invoice_id").is_in(list(errors)).sum(),
        )
        .sort("month")
    )
    actual = _all_rows(world, "kpi_invoice_error_rate").select("month", "invoices_issued", "invoices_with_error")
    assert actual.height == expected.height
    assert actual["month"].to_list() == expected["month"].to_list()
    assert actual["invoices_issued"].to_list() == expected["invoices_issued"].to_list()
    assert actual["invoices_with_error"].to_list() == expected["invoices_with_error"].to_list()


def test_ar_at_every_month_end_matches_a_computation_from_the_clean_world(world):
    """total - succeeded payments - credit notes at each month end, in the invoice currency,
    converted at the invoice's own rate: computed here from the clean tables."""
    clean = world["clean"]
    rates = _invoice_rates(clean)
    invoices = clean["invoices"].filter(pl.col("status") != "draft").join(rates, on="invoice_id")
    settlements = pl.concat(
        [
            clean["payments"]
            .filter(pl.col("status") == "succeeded")
            .select("invoice_id", at=pl.col("attempted_at"), amount=pl.col("amount")),
            clean["credit_notes"].select("invoice_id", at=pl.col("issued_at"), amount=pl.col("amount")),
        ]
    )
    expected = []
    for month in _world_months():
        end = dt.datetime(month.year + month.month // 12, month.month % 12 + 1, 1)
        counted = invoices.filter(
            (pl.col("issued_at") < end)
            & (pl.col("voided_at").is_null() | (pl.col("voided_at") >= end))
            & (pl.col("uncollectible_at").is_null() | (pl.col("uncollectible_at") >= end))
        )
        settled = settlements.filter(pl.col("at") < end).group_by("invoice_id").agg(settled=pl.col("amount").sum())
        balances = counted.join(settled, on="invoice_id", how="left").with_columns(
            balance=(pl.col("total") - pl.col("settled").fill_null(Decimal(0))).cast(pl.Float64)
        )
        open_balances = balances.filter(pl.col("balance") > 0)
        usd = (open_balances["balance"] * open_balances["usd_per_unit"]).round(4).sum()
        expected.append((month, usd, open_balances.height))
    actual = _all_rows(world, "kpi_dso")
    assert actual["month"].to_list() == [m for m, _, _ in expected]
    for (month, usd, count), ar, open_invoices in zip(
        expected, actual["ar_end_usd"].cast(pl.Float64), actual["open_invoices"], strict=True
    ):
        assert abs(ar - usd) <= USD_TOLERANCE, month
        assert open_invoices == count, month


def test_credit_sales_match_the_clean_world(world):
    clean = world["clean"]
    sold = (
        clean["invoices"]
        .filter(~pl.col("status").is_in(["draft", "void"]))
        .join(_invoice_rates(clean), on="invoice_id")
    )
    expected = (
        sold.group_by(month=_month("issued_at"))
        .agg(usd=(pl.col("total").cast(pl.Float64) * pl.col("usd_per_unit")).round(4).sum())
        .sort("month")
    )
    actual = _all_rows(world, "kpi_dso")
    assert actual["month"].to_list() == expected["month"].to_list()
    differences = (actual["credit_sales_usd"].cast(pl.Float64) - expected["usd"]).abs()
    assert (differences <= USD_TOLERANCE).all()


def test_a_paid_invoice_has_no_balance_at_any_month_end_after_it_was_paid(world):
    """No FX residue: once paid in its own currency, an invoice is out of AR whatever the rates did."""
    paid = world["clean"]["invoices"].filter(pl.col("status") == "paid").select("invoice_id", "paid_at")
    balances = world["conn"].sql("select invoice_id, month from intermediate.int_invoice_balances").pl()
    after = balances.join(paid, on="invoice_id").filter(pl.col("month").dt.offset_by("1mo") > pl.col("paid_at"))
    assert after.is_empty(), after


def test_every_write_off_is_a_lapse_of_the_same_customer_at_the_same_instant(world):
    churn = world["truth"]["churn_events"].filter(pl.col("event_type") == "lapsed")
    lapses = set(zip(churn["customer_id"], churn["effective_at"], strict=True))
    written_off = (
        world["conn"]
        .sql("select customer_id, uncollectible_at from marts.fct_invoices where uncollectible_at is not null")
        .pl()
    )
    assert written_off.height > 0
    assert set(zip(written_off["customer_id"], written_off["uncollectible_at"], strict=True)) <= lapses
    total = _all_rows(world, "kpi_collections")["invoices_uncollectible"].sum()
    assert total == written_off.height


def test_first_attempt_failures_per_issue_month_match_the_clean_payments(world):
    clean = world["clean"]
    first = (
        clean["payments"]
        .sort("attempted_at", "payment_id")
        .group_by("invoice_id", maintain_order=True)
        .first()
        .select("invoice_id", first_failed=pl.col("status") == "failed")
    )
    invoices = clean["invoices"].filter(pl.col("status") != "draft").join(first, on="invoice_id")
    expected = (
        invoices.group_by(month=_month("issued_at"))
        .agg(with_attempt=pl.len(), first_failed=pl.col("first_failed").sum())
        .sort("month")
    )
    actual = _all_rows(world, "kpi_collections").join(expected, on="month", how="left")
    assert (actual["invoices_with_attempt"] == actual["with_attempt"].fill_null(0)).all()
    assert (actual["invoices_first_attempt_failed"] == actual["first_failed"].fill_null(0)).all()
    assert actual["invoices_first_attempt_failed"].sum() > 0
