"""Validation: typed rows out, every bad row quarantined once with all its problems named."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestration.lib.readers import ROW_NUMBER
from orchestration.lib.validation import EXTRA_COLUMN, validate_batch

PAYMENT = {
    "payment_id": "pay_1",
    "invoice_id": "inv_1",
    "customer_id": "cus_1",
    "attempted_at": "2024-03-01T10:00:00+02:00",
    "amount": "1200",
    "currency": "JPY",
    "status": "succeeded",
    "attempt_number": "2",
}


def batch(*records: dict) -> pl.DataFrame:
    """A reader-shaped frame: string columns in first-seen order plus the record number."""
    columns = list(dict.fromkeys(k for r in records for k in r))
    frame = pl.DataFrame([{c: r.get(c) for c in columns} for r in records], schema=dict.fromkeys(columns, pl.String))
    return frame.with_columns(pl.Series(ROW_NUMBER, range(1, len(records) + 1), dtype=pl.Int64))


def payment(**changes: str | None) -> dict:
    return PAYMENT | changes


def quarantined(result) -> list[tuple]:
    return result.quarantine.select("row_number", "column_name", "reason").rows()


def test_a_valid_payment_is_typed_per_the_contract_with_offsets_applied():
    result = validate_batch(batch(payment()), "payments")
    assert result.quarantine.is_empty()
    row = result.valid.row(0, named=True)
    assert row["attempted_at"] == datetime(2024, 3, 1, 8, 0)  # +02:00 -> UTC
    assert row["amount"] == Decimal("1200")  # JPY in major units, never /100
    assert row["attempt_number"] == 2
    assert row["method"] is None  # optional column not delivered
    assert row[EXTRA_COLUMN] is None
    assert result.valid.columns[-2:] == [EXTRA_COLUMN, ROW_NUMBER]


def test_timestamps_without_offset_are_utc_and_keep_their_fraction():
    frame = batch(
        payment(payment_id="a", attempted_at="2024-03-01 10:00:00.123456"),
        payment(payment_id="b", attempted_at="2024-03-01T10:00:00Z"),
        payment(payment_id="c", attempted_at="2024-03-01T23:30:00-05:00"),
        payment(payment_id="d", attempted_at="2024-03-01"),
    )
    assert validate_batch(frame, "payments").valid["attempted_at"].to_list() == [
        datetime(2024, 3, 1, 10, 0, 0, 123456),
        datetime(2024, 3, 1, 10, 0),
        datetime(2024, 3, 2, 4, 30),
        datetime(2024, 3, 1, 0, 0),
    ]


def test_each_kind_of_bad_value_is_quarantined_with_its_row_column_and_reason():
    frame = batch(
        payment(payment_id="ok"),
        payment(payment_id="p2", amount="12,50"),
        payment(payment_id="p3", attempted_at="31/12/2023 10:00"),
        payment(payment_id="p4", currency="eur"),
        payment(payment_id="p5", status="paied"),
        payment(payment_id="p6", amount="-5.00"),
        payment(payment_id="p7", attempt_number="1.5"),
        payment(payment_id="p8", customer_id=None),
        payment(payment_id=None),
        payment(payment_id="p10", customer_id="   "),
        payment(payment_id="p11", amount="12.34567"),
        payment(payment_id="p12", attempted_at="2024-02-30T10:00:00Z"),
    )
    result = validate_batch(frame, "payments")
    assert result.valid["payment_id"].to_list() == ["ok"]
    assert quarantined(result) == [
        (2, "amount", "amount: not a decimal number ('12,50')"),
        (3, "attempted_at", "attempted_at: not an ISO-8601 timestamp ('31/12/2023 10:00')"),
        (4, "currency", "currency: not an ISO-4217 upper-case code ('eur')"),
        (5, "status", "status: unknown value 'paied' (expected one of succeeded, failed, pending)"),
        (6, "amount", "amount: negative value ('-5.00')"),
        (7, "attempt_number", "attempt_number: not an integer ('1.5')"),
        (8, "customer_id", "customer_id: required value missing"),
        (9, "payment_id", "payment_id: required value missing"),
        (10, "customer_id", "customer_id: required value missing"),
        (11, "amount", "amount: more than 4 decimal places ('12.34567')"),
        (12, "attempted_at", "attempted_at: not an ISO-8601 timestamp ('2024-02-30T10:00:00Z')"),
    ]


def test_every_problem_of_a_row_is_named_and_the_first_column_is_reported():
    result = validate_batch(batch(payment(amount="abc", currency=None, status="x")), "payments")
    assert quarantined(result) == [
        (
            1,
            "amount",
            "amount: not a decimal number ('abc'); currency: required value missing; "
            "status: unknown value 'x' (expected one of succeeded, failed, pending)",
        )
    ]


def test_the_record_keeps_the_delivered_strings_extra_columns_included():
    result = validate_batch(batch({**payment(amount="12,50"), "note": "hi"}), "payments")
    assert result.quarantine["record"].to_list() == [
        '{"payment_id":"pay_1","invoice_id":"inv_1","customer_id":"cus_1",'
        '"attempted_at":"2024-03-01T10:00:00+02:00","amount":"12,50","currency":"JPY",'
        '"status":"succeeded","attempt_number":"2","note":"hi"}'
    ]


def test_a_missing_required_column_quarantines_every_row_and_names_the_column():
    frame = batch(*[{k: v for k, v in payment(payment_id=f"p{i}").items() if k != "amount"} for i in (1, 2)])
    result = validate_batch(frame, "payments")
    assert result.valid.is_empty()
    assert quarantined(result) == [
        (1, "amount", "missing required column amount"),
        (2, "amount", "missing required column amount"),
    ]


def test_exact_duplicate_rows_keep_the_first_and_quarantine_the_rest():
    frame = batch(payment(), payment(payment_id="other"), payment(), payment())
    result = validate_batch(frame, "payments")
    assert result.valid[ROW_NUMBER].to_list() == [1, 2]
    assert quarantined(result) == [
        (3, "payment_id", "payment_id: exact duplicate of row 1"),
        (4, "payment_id", "payment_id: exact duplicate of row 1"),
    ]


def test_conflicting_duplicates_are_all_quarantined():
    frame = batch(payment(), payment(payment_id="other"), payment(amount="1300"))
    result = validate_batch(frame, "payments")
    assert result.valid[ROW_NUMBER].to_list() == [2]
    reason = "payment_id: duplicate key with different values (2 rows in this batch, first at row 1)"
    assert quarantined(result) == [(1, "payment_id", reason), (3, "payment_id", reason)]


def test_a_composite_key_is_duplicate_only_when_all_its_parts_repeat():
    product = {
        "product_id": "prod_pro",
        "name": "Pro plan",
        "product_type": "plan",
        "billing_period": "month",
        "currency": "EUR",
        "unit_amount": "27.99",
        "valid_from": "2024-01-01",
    }
    frame = batch(product, product | {"currency": "USD"}, product | {"unit_amount": "29.99"})
    result = validate_batch(frame, "products")
    assert result.valid[ROW_NUMBER].to_list() == [2]
    label = "product_id, currency, valid_from"
    assert quarantined(result) == [
        (1, label, f"{label}: duplicate key with different values (2 rows in this batch, first at row 1)"),
        (3, label, f"{label}: duplicate key with different values (2 rows in this batch, first at row 1)"),
    ]


def test_dates_must_be_yyyy_mm_dd_and_exist():
    product = {
        "product_id": "p",
        "name": "n",
        "product_type": "plan",
        "billing_period": "month",
        "currency": "EUR",
        "unit_amount": "1",
    }
    frame = batch(
        product | {"valid_from": "2024-02-29"},
        product | {"product_id": "q", "valid_from": "2023-02-29"},
        product | {"product_id": "r", "valid_from": "2024/01/01"},
    )
    result = validate_batch(frame, "products")
    assert result.valid["valid_from"].to_list() == [date(2024, 2, 29)]
    assert [r[2] for r in quarantined(result)] == [
        "valid_from: not a YYYY-MM-DD date ('2023-02-29')",
        "valid_from: not a YYYY-MM-DD date ('2024/01/01')",
    ]


LINE = {
    "line_id": "l1",
    "invoice_id": "i1",
    "description": "Pro plan",
    "quantity": "3",
    "unit_amount": "10.00",
    "amount": "30.00",
    "proration": "false",
    "period_start": "2024-01-01T00:00:00Z",
    "period_end": "2024-02-01T00:00:00Z",
}


def test_booleans_are_true_false_in_any_case_or_1_0_and_nothing_else():
    texts = ["true", "FALSE", "True", "1", "0", "yes", "t", "maybe"]
    frame = batch(*[LINE | {"line_id": f"l{i}", "proration": t} for i, t in enumerate(texts)])
    result = validate_batch(frame, "invoice_lines")
    assert result.valid["proration"].to_list() == [True, False, True, True, False]
    assert [r[2] for r in quarantined(result)] == [
        f"proration: not a boolean (true/false/1/0) ('{t}')" for t in ("yes", "t", "maybe")
    ]


def test_numbers_accept_float_text_and_integers_accept_whole_float_text():
    lines = batch(LINE | {"quantity": "2.5", "tax_rate": "0.19"}, LINE | {"line_id": "l2", "quantity": "1e3"})
    assert validate_batch(lines, "invoice_lines").valid["quantity"].to_list() == [2.5, 1000.0]
    payments = batch(payment(attempt_number="3.0"), payment(payment_id="p2", attempt_number="0x10"))
    result = validate_batch(payments, "payments")
    assert result.valid["attempt_number"].to_list() == [3]
    assert [r[2] for r in quarantined(result)] == ["attempt_number: not an integer ('0x10')"]


def test_money_float_noise_is_rounded_but_real_extra_digits_are_not():
    frame = batch(
        payment(amount="0.30000000000000004", currency="USD"),
        payment(payment_id="p2", amount="0.00001", currency="USD"),
        # a fifth decimal on a large amount is real, not noise
        payment(payment_id="p3", amount="100000.00001", currency="USD"),
    )
    result = validate_batch(frame, "payments")
    assert result.valid["amount"].to_list() == [Decimal("0.3")]
    assert [r[2] for r in quarantined(result)] == [
        "amount: more than 4 decimal places ('0.00001')",
        "amount: more than 4 decimal places ('100000.00001')",
    ]


def test_money_is_rounded_to_the_minor_unit_of_the_row_currency():
    frame = batch(
        payment(payment_id="p1", amount="1200", currency="JPY"),
        payment(payment_id="p2", amount="1200.5", currency="JPY"),
        payment(payment_id="p3", amount="12.50", currency="USD"),
        payment(payment_id="p4", amount="12.345", currency="USD"),
    )
    result = validate_batch(frame, "payments")
    assert result.valid["payment_id"].to_list() == ["p1", "p3"]
    assert [r[2] for r in quarantined(result)] == [
        "amount: more decimals than the currency's minor unit ('1200.5')",
        "amount: more decimals than the currency's minor unit ('12.345')",
    ]


def test_a_negative_quantity_on_an_invoice_line_is_quarantined():
    result = validate_batch(batch(LINE | {"quantity": "-1"}), "invoice_lines")
    assert quarantined(result) == [(1, "quantity", "quantity: negative value ('-1')")]


def test_survey_scores_must_lie_in_their_survey_range():
    base = {"customer_id": "c", "responded_at": "2024-01-01T00:00:00Z"}
    frame = batch(
        base | {"response_id": "r1", "survey": "nps", "score": "0"},
        base | {"response_id": "r2", "survey": "nps", "score": "11"},
        base | {"response_id": "r3", "survey": "csat", "score": "6"},
        base | {"response_id": "r4", "survey": "invoice_clarity", "score": "5"},
        base | {"response_id": "r5", "survey": "ces", "score": "5"},
    )
    result = validate_batch(frame, "survey_responses")
    assert result.valid["response_id"].to_list() == ["r1", "r4"]
    assert quarantined(result) == [
        (2, "score", "score: 11 outside 0-10 for survey nps"),
        (3, "score", "score: 6 outside 1-5 for survey csat"),
        (5, "survey", "survey: unknown value 'ces' (expected one of invoice_clarity, csat, nps)"),
    ]


def test_country_codes_must_be_two_upper_case_letters():
    customer = {
        "customer_id": "c1",
        "country": "DE",
        "currency": "EUR",
        "company_size": "smb",
        "created_at": "2024-01-01T00:00:00Z",
    }
    result = validate_batch(batch(customer, customer | {"customer_id": "c2", "country": "DEU"}), "customers")
    assert result.valid["country"].to_list() == ["DE"]
    assert [r[2] for r in quarantined(result)] == ["country: not an ISO-3166 alpha-2 upper-case code ('DEU')"]


def test_extra_columns_are_kept_as_a_json_object_and_null_when_empty():
    frame = batch({**payment(), "note": "hi", "source system": "x"}, {**payment(payment_id="p2")})
    assert validate_batch(frame, "payments").valid[EXTRA_COLUMN].to_list() == [
        '{"note":"hi","source system":"x"}',
        None,
    ]


def test_a_long_bad_value_is_cut_short_in_the_reason():
    result = validate_batch(batch(payment(amount="9" * 100 + "x")), "payments")
    assert quarantined(result)[0][2] == "amount: not a decimal number ('" + "9" * 57 + "...')"


_CELLS = {
    "payment_id": st.sampled_from(["p1", "p2", "p3", None, "", " "]),
    "invoice_id": st.one_of(st.none(), st.text(max_size=4)),
    "customer_id": st.sampled_from(["c1", None]),
    "attempted_at": st.sampled_from(["2024-01-01T00:00:00Z", "2024-13-01", "x", None]),
    "amount": st.one_of(st.sampled_from(["1.50", "-1", "1e3", "0.000001", None]), st.text(max_size=6)),
    "currency": st.sampled_from(["EUR", "eur", "EURO", None]),
    "status": st.one_of(st.sampled_from(["succeeded", "failed", "pending"]), st.text(max_size=3)),
    "attempt_number": st.one_of(st.none(), st.text(max_size=4), st.integers().map(str)),
    "note": st.one_of(st.none(), st.text(max_size=5)),
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.fixed_dictionaries(_CELLS), min_size=0, max_size=25))
def test_every_input_row_is_either_loaded_or_quarantined_exactly_once(records):
    frame = batch(*records) if records else pl.DataFrame(schema={"payment_id": pl.String, ROW_NUMBER: pl.Int64})
    result = validate_batch(frame, "payments")
    loaded, bad = result.valid[ROW_NUMBER].to_list(), result.quarantine["row_number"].to_list()
    assert len(loaded) + len(bad) == len(records)
    assert sorted(loaded + bad) == list(range(1, len(records) + 1))
    assert result.quarantine["reason"].null_count() == 0


def test_a_blank_value_is_a_missing_value_in_every_kind_of_column():
    frame = batch(payment(method="  ", gateway="\t", attempt_number=" "), payment(payment_id="p2", status=" "))
    result = validate_batch(frame, "payments")
    assert result.valid.select("method", "gateway", "attempt_number").rows() == [(None, None, None)]
    assert quarantined(result) == [(2, "status", "status: required value missing")]


def test_keys_are_compared_as_typed_values_so_padding_does_not_make_a_new_key():
    frame = batch(
        payment(payment_id="p1", amount="10"),
        payment(payment_id=" p1 ", amount="11"),
        payment(payment_id="p2", amount="10"),
    )
    result = validate_batch(frame, "payments")
    assert result.valid["payment_id"].to_list() == ["p2"]
    assert [(r[0], r[1]) for r in quarantined(result)] == [(1, "payment_id"), (2, "payment_id")]
    assert "duplicate key with different values (2 rows in this batch, first at row 1)" in quarantined(result)[0][2]


def test_a_well_formed_code_that_is_no_iso_4217_currency_is_quarantined_while_chf_loads():
    result = validate_batch(batch(payment(currency="ABC"), payment(payment_id="p2", currency="CHF")), "payments")
    assert result.valid["payment_id"].to_list() == ["p2"]
    assert quarantined(result) == [(1, "currency", "currency: not an ISO-4217 currency ('ABC')")]


def test_a_well_formed_number_too_large_for_its_column_is_out_of_range_not_malformed():
    result = validate_batch(
        batch(payment(amount="1e20"), payment(payment_id="p2", attempt_number="99999999999999999999")), "payments"
    )
    assert quarantined(result) == [
        (1, "amount", "amount: out of range, at most 14 digits before the point ('1e20')"),
        (2, "attempt_number", "attempt_number: out of range for a 64-bit integer ('99999999999999999999')"),
    ]


CUSTOMER = {
    "customer_id": "c1",
    "country": "DE",
    "currency": "EUR",
    "company_size": "smb",
    "created_at": "2024-01-01T00:00:00Z",
}


def test_versions_of_one_key_in_one_batch_keep_the_latest_updated_at_and_quarantine_the_older():
    frame = batch(
        CUSTOMER | {"updated_at": "2024-02-01T00:00:00Z"},
        CUSTOMER | {"company_size": "enterprise", "updated_at": "2024-03-01T00:00:00Z"},
        CUSTOMER | {"company_size": "mid_market"},  # no updated_at: loses to any version that has one
        CUSTOMER | {"customer_id": "c2", "updated_at": "2024-02-01T00:00:00Z"},
        CUSTOMER | {"customer_id": "c2", "updated_at": "2024-02-01T00:00:00Z"},
        CUSTOMER | {"customer_id": "c3", "updated_at": "2024-01-01T00:00:00Z"},
        CUSTOMER | {"customer_id": "c3", "company_size": "enterprise", "updated_at": "2024-03-01T00:00:00Z"},
        CUSTOMER | {"customer_id": "c3", "company_size": "mid_market", "updated_at": "2024-03-01T00:00:00Z"},
    )
    result = validate_batch(frame, "customers")
    assert result.valid.select("customer_id", "company_size", ROW_NUMBER).rows() == [
        ("c1", "enterprise", 2),
        ("c2", "smb", 4),
    ]
    superseded = "customer_id: superseded by row 2 of this batch (later updated_at)"
    conflict = "customer_id: duplicate key with different values (2 rows in this batch, first at row 7)"
    assert quarantined(result) == [
        (1, "customer_id", superseded),
        (3, "customer_id", superseded),
        (5, "customer_id", "customer_id: exact duplicate of row 4"),
        (6, "customer_id", "customer_id: superseded by row 7 of this batch (later updated_at)"),
        (7, "customer_id", conflict),
        (8, "customer_id", conflict),
    ]
