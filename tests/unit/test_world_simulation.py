"""The simulated world obeys the billing policy exactly, except where truth says it doesn't.

Every invariant is recomputed here from the output frames, the country seed
and the policy file, never taken from the generator: the sets of documents
breaking a rule must equal the injected anomalies of that type, and a clean
world (anomaly_rate=0) must break nothing.
"""

from __future__ import annotations

import csv
from datetime import date
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
import yaml

from billing_world.simulate import WorldConfig, simulate_world
from orchestration.lib.contract import SOURCES, SURVEY_SCORE_RANGES, ZERO_DECIMAL_CURRENCIES

ROOT = Path(__file__).resolve().parents[2]
POLICY = yaml.safe_load((ROOT / "config" / "billing_policy.yml").read_text())
with open(ROOT / "dbt_project" / "seeds" / "ref_countries.csv", newline="") as handle:
    TAX_BP = {row["country"]: round(Decimal(row["tax_rate"]) * 10_000) for row in csv.DictReader(handle)}
LOYALTY_BP = round(Decimal(str(POLICY["loyalty_discount"]["rate"])) * 10_000)
LOYALTY_MONTHS = POLICY["loyalty_discount"]["after_months"]
TERMS_DAYS = POLICY["payment_terms_days"]
RETRY_DAYS = POLICY["dunning"]["retry_days_after_first_failure"]
START, MONTHS = date(2024, 1, 1), 18
WINDOW_END = date(2025, 7, 1)
MONTHS_PER_PERIOD = POLICY["billing"]["months_per_period"]
RECURRING = ["subscription_create", "subscription_cycle"]


def world(seed: int = 11, rate: float = 0.02, customers: int = 300):
    return simulate_world(WorldConfig(customers=customers, months=MONTHS, start=START, seed=seed, anomaly_rate=rate))


@pytest.fixture(scope="module")
def dirty():
    # Large enough that 2 % of the ~100 proration invoices is at least one (quotas floor a running sum).
    return world(customers=800)


@pytest.fixture(scope="module")
def clean():
    return world(rate=0.0)


@pytest.fixture(params=["clean", "dirty"])
def any_world(request, clean, dirty):
    return {"clean": clean, "dirty": dirty}[request.param]


# --- independent recomputation helpers ---------------------------------------------


def minor(column: str, currency: str = "currency") -> pl.Expr:
    """Decimal major units -> exact integer minor units of the row's currency."""
    scale = pl.when(pl.col(currency).is_in(ZERO_DECIMAL_CURRENCIES)).then(1).otherwise(100)
    return (pl.col(column) * scale).cast(pl.Int64)


def half_up(numerator: pl.Expr, denominator: pl.Expr | int) -> pl.Expr:
    return (2 * numerator + denominator) // (2 * denominator)


def injected(w, anomaly_type: str, column: str = "invoice_id") -> set:
    truth = w.truth["anomalies"]
    return set(truth.filter(pl.col("anomaly_type") == anomaly_type)[column].to_list())


def lines_with_invoice(w) -> pl.DataFrame:
    invoices = w.tables["invoices"].select(
        "invoice_id",
        "customer_id",
        "subscription_id",
        "currency",
        "billing_reason",
        invoice_start="period_start",
        invoice_end="period_end",
    )
    customers = w.tables["customers"].select("customer_id", "country")
    return w.tables["invoice_lines"].join(invoices, on="invoice_id").join(customers, on="customer_id")


def header_violations(w) -> set:
    sums = (
        lines_with_invoice(w)
        .group_by("invoice_id")
        .agg(
            lines_subtotal=minor("amount").sum(),
            lines_discount=minor("discount_amount").sum(),
            lines_tax=minor("tax_amount").sum(),
        )
    )
    bad = (
        w.tables["invoices"]
        .join(sums, on="invoice_id", how="left")
        .filter(
            (minor("subtotal") != pl.col("lines_subtotal"))
            | (minor("discount_amount") != pl.col("lines_discount"))
            | (minor("tax_amount") != pl.col("lines_tax"))
            | (minor("total") != pl.col("lines_subtotal") - pl.col("lines_discount") + pl.col("lines_tax"))
            | pl.col("lines_subtotal").is_null()
        )
    )
    return set(bad["invoice_id"].to_list())


def price_violations(w) -> set:
    book = w.tables["products"].select("product_id", "currency", "valid_from", "valid_to", book_unit="unit_amount")
    lines = lines_with_invoice(w).filter(~pl.col("proration")).with_row_index("row")
    priced = lines.join(book, on=["product_id", "currency"], how="left").filter(
        (pl.col("valid_from") <= pl.col("invoice_start").dt.date())
        & (pl.col("valid_to").is_null() | (pl.col("invoice_start").dt.date() < pl.col("valid_to")))
    )
    assert priced["row"].n_unique() == len(lines) == len(priced), "every line has exactly one valid book row"
    return set(priced.filter(pl.col("unit_amount") != pl.col("book_unit"))["invoice_id"].to_list())


def tax_violations(w) -> set:
    lines = lines_with_invoice(w).with_columns(
        rate_bp=pl.col("country").replace_strict(TAX_BP, return_dtype=pl.Int64),
        net=minor("amount") - minor("discount_amount"),
    )
    bad = lines.filter(minor("tax_amount") != half_up(pl.col("net") * pl.col("rate_bp"), 10_000))
    return set(bad["invoice_id"].to_list())


def first_starts(w) -> pl.DataFrame:
    return (
        w.tables["subscription_events"]
        .filter(pl.col("event_type") == "created")
        .group_by("subscription_id")
        .agg(first_start=pl.col("effective_at").min())
    )


def discount_violations(w) -> set:
    lines = (
        lines_with_invoice(w)
        .join(first_starts(w), on="subscription_id")
        .with_columns(
            due=(
                pl.col("billing_reason").is_in(RECURRING)
                & ~pl.col("proration")
                & (pl.col("invoice_start") >= pl.col("first_start").dt.offset_by(f"{LOYALTY_MONTHS}mo"))
            )
        )
    )
    expected = pl.when(pl.col("due")).then(half_up(minor("amount") * LOYALTY_BP, 10_000)).otherwise(0)
    return set(lines.filter(minor("discount_amount") != expected)["invoice_id"].to_list())


def proration_violations(w) -> set:
    lines = lines_with_invoice(w)
    proration = lines.filter(pl.col("proration"))
    plan_lines = lines.filter(~pl.col("proration") & pl.col("product_id").str.starts_with("plan_")).select(
        "subscription_id",
        cycle_start="invoice_start",
        period_end="invoice_end",
        old_value=minor("unit_amount") * pl.col("quantity").cast(pl.Int64),
    )
    joined = proration.join(plan_lines, on=["subscription_id", "period_end"], how="left").filter(
        pl.col("cycle_start") <= pl.col("period_start")
    )
    assert len(joined) == len(proration), "every proration sits in a billed period"
    days = (pl.col("period_end") - pl.col("cycle_start")).dt.total_days()
    remaining = (pl.col("period_end") - pl.col("period_start")).dt.total_days()
    old = pl.when(pl.col("product_id").str.starts_with("plan_")).then(pl.col("old_value")).otherwise(0)
    new = minor("unit_amount") * pl.col("quantity").cast(pl.Int64)
    bad = joined.filter(minor("amount") != half_up((new - old) * remaining, days))
    return set(bad["invoice_id"].to_list())


def live_intervals(w) -> pl.DataFrame:
    """[start, end) per subscription from its events: created/reactivated until cancelled/lapsed."""
    events = (
        w.tables["subscription_events"]
        .filter(pl.col("event_type").is_in(["created", "reactivated", "cancelled", "lapsed"]))
        .sort("subscription_id", "effective_at")
    )
    starts = events.filter(pl.col("event_type").is_in(["created", "reactivated"])).with_columns(
        n=pl.int_range(pl.len()).over("subscription_id")
    )
    ends = events.filter(pl.col("event_type").is_in(["cancelled", "lapsed"])).with_columns(
        n=pl.int_range(pl.len()).over("subscription_id")
    )
    window_end = pl.lit(WINDOW_END).cast(pl.Datetime("us"))
    return (
        starts.select("subscription_id", "n", "product_id", start="effective_at")
        .join(ends.select("subscription_id", "n", end="effective_at"), on=["subscription_id", "n"], how="left")
        .with_columns(end=pl.coalesce("end", window_end))
    )


def expected_periods(w) -> pl.DataFrame:
    spans = live_intervals(w).with_columns(
        months=pl.col("product_id")
        .str.extract(r"_(month|quarter|year)$")
        .replace_strict(MONTHS_PER_PERIOD, return_dtype=pl.Int64)
    )
    periods = (
        spans.with_columns(k=pl.int_ranges(0, 40))
        .explode("k")
        .with_columns(period_start=pl.col("start").dt.offset_by(pl.format("{}mo", pl.col("k") * pl.col("months"))))
    )
    return periods.filter(pl.col("period_start") < pl.col("end")).select("subscription_id", "period_start")


def billed_periods(w) -> pl.DataFrame:
    return (
        w.tables["invoices"]
        .filter(pl.col("billing_reason").is_in(RECURRING))
        .select("invoice_id", "subscription_id", "period_start", "issued_at")
    )


# --- the tests ---------------------------------------------------------------------


def test_the_same_seed_gives_identical_frames_and_another_seed_does_not(dirty):
    again = world(customers=800)
    other = world(seed=12, customers=800)
    for name, frame in dirty.tables.items():
        assert frame.equals(again.tables[name]), name
    for name, frame in dirty.truth.items():
        assert frame.equals(again.truth[name]), name
    assert not dirty.tables["invoices"].equals(other.tables["invoices"])


def test_every_table_has_the_contract_columns_in_order_and_the_agreed_dtypes(any_world):
    dtypes = {
        "timestamp": pl.Datetime("us"),
        "date": pl.Date,
        "money": pl.Decimal(18, 2),
        "integer": pl.Int64,
        "number": pl.Float64,
        "boolean": pl.Boolean,
    }
    for name, source in SOURCES.items():
        frame = any_world.tables[name]
        assert frame.columns == list(source.column_names), name
        for column in source.columns:
            expected = dtypes.get(column.type, pl.String)
            assert frame.schema[column.name] == expected, f"{name}.{column.name}"
            if column.required:
                assert frame[column.name].null_count() == 0, f"{name}.{column.name} has nulls"


def test_primary_keys_are_unique(any_world):
    for name, source in SOURCES.items():
        frame = any_world.tables[name]
        assert frame.select(source.primary_key).is_duplicated().sum() == 0, name


def test_enum_values_and_survey_scores_stay_within_the_contract(any_world):
    for name, source in SOURCES.items():
        for column in source.columns:
            if column.enum:
                values = set(any_world.tables[name][column.name].drop_nulls().unique().to_list())
                assert values <= set(column.enum), f"{name}.{column.name}: {values - set(column.enum)}"
    surveys = any_world.tables["survey_responses"]
    for survey, (low, high) in SURVEY_SCORE_RANGES.items():
        scores = surveys.filter(pl.col("survey") == survey)["score"]
        assert scores.len() > 0 and scores.min() >= low and scores.max() <= high, survey


def test_foreign_keys_hold(any_world):
    t = any_world.tables

    def missing(child: str, column: str, parent: str, key: str) -> int:
        refs = t[child].filter(pl.col(column).is_not_null()).select(pl.col(column).alias(key))
        return len(refs.join(t[parent].select(key), on=key, how="anti"))

    assert missing("invoice_lines", "invoice_id", "invoices", "invoice_id") == 0
    assert missing("payments", "invoice_id", "invoices", "invoice_id") == 0
    assert missing("invoices", "customer_id", "customers", "customer_id") == 0
    assert missing("payments", "customer_id", "customers", "customer_id") == 0
    assert missing("credit_notes", "invoice_id", "invoices", "invoice_id") == 0
    assert missing("support_tickets", "invoice_id", "invoices", "invoice_id") == 0
    assert missing("survey_responses", "invoice_id", "invoices", "invoice_id") == 0
    assert missing("subscription_events", "customer_id", "customers", "customer_id") == 0
    assert missing("invoice_lines", "product_id", "products", "product_id") == 0
    assert missing("invoices", "subscription_id", "subscription_events", "subscription_id") == 0


def test_invoice_headers_equal_the_sum_of_their_lines_except_injected_total_mismatches(any_world):
    assert header_violations(any_world) == injected(any_world, "total_mismatch")


def test_cycle_line_prices_equal_the_price_book_at_period_start_except_injected_price_mismatches(any_world):
    assert price_violations(any_world) == injected(any_world, "price_mismatch")


def test_line_tax_is_the_country_rate_on_the_net_rounded_half_up_except_injected_tax_errors(any_world):
    assert tax_violations(any_world) == injected(any_world, "tax_error")
    lines = lines_with_invoice(any_world).with_columns(
        country_rate=pl.col("country").replace_strict(TAX_BP, return_dtype=pl.Int64) / 10_000
    )
    printed_wrong = set(lines.filter(pl.col("tax_rate") != pl.col("country_rate"))["invoice_id"])
    assert printed_wrong <= injected(any_world, "tax_error")


def test_loyalty_discount_is_given_exactly_when_due_except_injected_discount_errors(any_world):
    assert discount_violations(any_world) == injected(any_world, "discount_error")


def test_proration_lines_follow_the_policy_formula_except_injected_proration_errors(any_world):
    assert proration_violations(any_world) == injected(any_world, "proration_error")


def test_zero_decimal_currencies_have_whole_amounts(any_world):
    t = any_world.tables
    checks = {
        "invoices": (t["invoices"], ["subtotal", "discount_amount", "tax_amount", "total"]),
        "invoice_lines": (
            lines_with_invoice(any_world),
            ["unit_amount", "amount", "discount_amount", "tax_amount"],
        ),
        "payments": (t["payments"], ["amount"]),
        "credit_notes": (t["credit_notes"], ["amount"]),
        "products": (t["products"], ["unit_amount"]),
    }
    for name, (frame, columns) in checks.items():
        zero = frame.filter(pl.col("currency").is_in(ZERO_DECIMAL_CURRENCIES))
        assert len(zero) > 0 or name == "credit_notes", name
        for column in columns:
            fraction = zero.filter(pl.col(column).cast(pl.Float64) % 1 != 0)
            assert fraction.is_empty(), f"{name}.{column}"


def test_every_live_period_is_invoiced_exactly_once_except_injected_misses_and_duplicates(any_world):
    expected = expected_periods(any_world)
    billed = billed_periods(any_world)
    missing = expected.join(billed, on=["subscription_id", "period_start"], how="anti")
    truth_missed = any_world.truth["anomalies"].filter(pl.col("anomaly_type") == "missed_invoice")
    assert set(missing.iter_rows()) == set(truth_missed.select("subscription_id", "period_start").iter_rows())
    doubled = billed.filter(pl.len().over("subscription_id", "period_start") > 1).sort("issued_at")
    later_copies = set(
        doubled.filter(pl.int_range(pl.len()).over("subscription_id", "period_start") > 0)["invoice_id"].to_list()
    )
    duplicate_invoices = set(
        any_world.truth["anomalies"]
        .filter((pl.col("anomaly_type") == "duplicate_charge") & pl.col("payment_id").is_null())["invoice_id"]
        .to_list()
    )
    assert later_copies == duplicate_invoices


def test_no_invoice_covers_a_period_starting_after_the_subscription_ended_except_injected_ones(any_world):
    spans = live_intervals(any_world)
    invoices = any_world.tables["invoices"].select("invoice_id", "subscription_id", "period_start")
    inside = invoices.join(spans, on="subscription_id").filter(
        (pl.col("start") <= pl.col("period_start")) & (pl.col("period_start") < pl.col("end"))
    )
    outside = set(invoices["invoice_id"].to_list()) - set(inside["invoice_id"].to_list())
    assert outside == injected(any_world, "invoice_after_cancellation")


def test_paid_invoices_succeeded_payments_sum_to_the_total_except_duplicate_charges(any_world):
    paid = (
        any_world.tables["payments"]
        .filter(pl.col("status") == "succeeded")
        .group_by("invoice_id")
        .agg(paid=pl.col("amount").sum())
    )
    invoices = (
        any_world.tables["invoices"]
        .join(paid, on="invoice_id", how="left")
        .with_columns(paid=pl.col("paid").fill_null(0))
    )
    over = invoices.filter(pl.col("paid") > pl.col("total"))
    assert set(over["invoice_id"].to_list()) == injected(any_world, "duplicate_charge") - set(
        any_world.truth["anomalies"].filter(pl.col("payment_id").is_null())["invoice_id"].to_list()
    )
    settled = invoices.filter((pl.col("status") == "paid") & ~pl.col("invoice_id").is_in(list(over["invoice_id"])))
    assert (settled["paid"] == settled["total"]).all()
    unsettled = invoices.filter(pl.col("status") != "paid")
    assert (unsettled["paid"] < unsettled["total"]).all()


def test_payments_keep_to_terms_dunning_and_the_twenty_day_limit(any_world):
    t = any_world.tables
    invoices = t["invoices"].join(t["customers"].select("customer_id", "company_size"), on="customer_id")
    terms = invoices["company_size"].replace_strict(TERMS_DAYS, return_dtype=pl.Int64)
    assert ((invoices["due_at"] - invoices["issued_at"]).dt.total_days() == terms).all()
    paid = invoices.filter(pl.col("status") == "paid")
    assert ((paid["paid_at"] - paid["due_at"]).dt.total_days() <= 20).all()
    duplicates = injected(any_world, "duplicate_charge", "payment_id")
    payments = t["payments"].filter(~pl.col("payment_id").is_in(list(duplicates)))
    first = payments.filter(pl.col("attempt_number") == 1).select("invoice_id", first_at="attempted_at")
    retries = (
        payments.filter(pl.col("attempt_number").is_between(2, 1 + len(RETRY_DAYS)))
        .join(first, on="invoice_id")
        .join(
            payments.filter((pl.col("attempt_number") == 1) & (pl.col("status") == "failed")).select("invoice_id"),
            on="invoice_id",
        )
    )
    offsets = (retries["attempted_at"] - retries["first_at"]).dt.total_days()
    expected = retries["attempt_number"].map_elements(lambda n: RETRY_DAYS[n - 2], return_dtype=pl.Int64)
    assert len(retries) > 0 and (offsets == expected).all()


def test_currencies_differ_from_the_customers_only_where_injected(any_world):
    t = any_world.tables
    customers = t["customers"].select("customer_id", customer_currency="currency")
    invoices = t["invoices"].join(customers, on="customer_id")
    wrong_invoices = set(invoices.filter(pl.col("currency") != pl.col("customer_currency"))["invoice_id"])
    payments = t["payments"].join(invoices.select("invoice_id", invoice_currency="currency"), on="invoice_id")
    wrong_payments = set(payments.filter(pl.col("currency") != pl.col("invoice_currency"))["payment_id"])
    truth = any_world.truth["anomalies"].filter(pl.col("anomaly_type") == "currency_mismatch")
    assert wrong_invoices == set(truth.filter(pl.col("payment_id").is_null())["invoice_id"])
    assert wrong_payments == set(truth["payment_id"].drop_nulls())


def test_cycle_totals_jump_only_after_a_plan_change_or_where_a_spike_was_injected(any_world):
    cycles = any_world.tables["invoices"].filter(pl.col("billing_reason") == "subscription_cycle")
    cycles = cycles.join(
        any_world.tables["customers"].select("customer_id", cust_cur="currency"), on="customer_id"
    ).filter(pl.col("currency") == pl.col("cust_cur"))
    cycles = cycles.with_columns(value=minor("total")).sort("subscription_id", "period_start")
    changes = (
        any_world.tables["subscription_events"]
        .filter(pl.col("event_type").is_in(["plan_changed", "quantity_changed", "addon_added", "reactivated"]))
        .select("subscription_id", "effective_at")
    )
    recent = cycles.with_columns(
        previous=pl.col("value").shift(1).over("subscription_id"),
        previous_start=pl.col("period_start").shift(1).over("subscription_id"),
    )
    jumps = recent.filter(pl.col("value") > 3 * pl.col("previous"))
    explained = jumps.join(changes, on="subscription_id").filter(
        (pl.col("effective_at") > pl.col("previous_start")) & (pl.col("effective_at") <= pl.col("period_start"))
    )
    unexplained = set(jumps["invoice_id"]) - set(explained["invoice_id"])
    assert unexplained <= injected(any_world, "amount_spike") | injected(any_world, "total_mismatch") | injected(
        any_world, "price_mismatch"
    )
    assert injected(any_world, "amount_spike") <= set(jumps["invoice_id"])


def test_error_tickets_and_error_credits_point_only_at_truly_wrong_invoices(any_world):
    wrong = set(any_world.truth["error_invoices"]["invoice_id"])
    tickets = any_world.tables["support_tickets"].filter(
        pl.col("subcategory").is_in(["duplicate_charge", "wrong_amount", "missing_discount", "wrong_tax"])
    )
    credits = any_world.tables["credit_notes"].filter(pl.col("reason").is_in(["billing_error", "duplicate_charge"]))
    assert set(tickets["invoice_id"]) <= wrong
    assert set(credits["invoice_id"]) <= wrong
    if wrong:
        assert tickets.height > 0 and credits.height > 0


def test_credit_notes_never_exceed_the_invoice_total_and_share_its_currency(any_world):
    notes = any_world.tables["credit_notes"]
    invoices = any_world.tables["invoices"].select("invoice_id", "total", invoice_currency="currency")
    credited = notes.group_by("invoice_id").agg(credited=pl.col("amount").sum()).join(invoices, on="invoice_id")
    assert (credited["credited"] <= credited["total"]).all()
    with_invoice = notes.join(invoices, on="invoice_id")
    assert with_invoice.height == notes.height
    assert (with_invoice["currency"] == with_invoice["invoice_currency"]).all()


def test_churn_truth_lists_exactly_the_cancelled_and_lapsed_events(any_world):
    events = any_world.tables["subscription_events"].filter(pl.col("event_type").is_in(["cancelled", "lapsed"]))
    truth = any_world.truth["churn_events"]
    key = ["subscription_id", "event_type", "effective_at"]
    assert set(truth.select(key).iter_rows()) == set(events.select(key).iter_rows())
    assert {"cancelled", "lapsed"} <= set(truth["event_type"])


def test_a_clean_world_has_no_anomalies_and_breaks_no_rule(clean):
    assert clean.truth["anomalies"].is_empty()
    assert clean.truth["error_invoices"].is_empty()
    for check in (
        header_violations,
        price_violations,
        tax_violations,
        discount_violations,
        proration_violations,
    ):
        assert check(clean) == set(), check.__name__
    assert clean.tables["credit_notes"].filter(pl.col("reason").is_in(["billing_error", "duplicate_charge"])).is_empty()


def test_a_clean_world_still_has_the_legitimate_events_a_detector_must_not_flag(clean):
    events = set(clean.tables["subscription_events"]["event_type"])
    assert {"plan_changed", "quantity_changed", "addon_added", "cancelled", "lapsed", "reactivated"} <= events
    assert clean.tables["invoice_lines"]["proration"].any()
    assert (clean.tables["invoice_lines"]["discount_amount"] > 0).any()
    assert set(clean.tables["invoices"]["status"]) >= {"paid", "open", "uncollectible"}


def test_every_anomaly_type_is_injected_in_a_world_at_two_percent(dirty):
    found = set(dirty.truth["anomalies"]["anomaly_type"])
    expected = {
        "duplicate_charge",
        "price_mismatch",
        "proration_error",
        "discount_error",
        "tax_error",
        "total_mismatch",
        "currency_mismatch",
        "missed_invoice",
        "invoice_after_cancellation",
        "amount_spike",
    }
    assert found == expected
    document = ["anomaly_type", "invoice_id", "payment_id", "subscription_id", "period_start"]
    assert dirty.truth["anomalies"].select(document).is_duplicated().sum() == 0
    # One anomaly per document: no invoice carries two types.
    on_invoices = dirty.truth["anomalies"].filter(pl.col("invoice_id").is_not_null())
    assert on_invoices["invoice_id"].is_duplicated().sum() == 0


def test_per_type_rates_can_be_overridden_and_unknown_types_are_refused():
    only_tax = simulate_world(
        WorldConfig(customers=200, months=12, anomaly_rate=0.0, anomaly_rates={"tax_error": 0.05})
    )
    assert set(only_tax.truth["anomalies"]["anomaly_type"]) == {"tax_error"}
    with pytest.raises(ValueError, match="unknown anomaly types"):
        WorldConfig(anomaly_rates={"typo": 0.1})
    with pytest.raises(ValueError, match="within"):
        WorldConfig(anomaly_rate=1.5)
    with pytest.raises(ValueError, match="first of a month"):
        WorldConfig(start=date(2024, 1, 15))
