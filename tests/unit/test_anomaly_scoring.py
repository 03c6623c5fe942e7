"""Scoring flags against the generator's truth: which document each type is matched on."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestration.lib.anomaly_scoring import read_truth, score
from orchestration.lib.contract import ANOMALY_TYPES


def _by_type(scores):
    return {row.anomaly_type: row for row in scores}


def test_invoice_types_match_on_the_invoice_and_count_precision_and_recall():
    truth = [{"anomaly_type": "tax_error", "invoice_id": invoice} for invoice in ("in_1", "in_2", "in_3")]
    flags = [{"anomaly_type": "tax_error", "invoice_id": invoice} for invoice in ("in_1", "in_2", "in_9")]
    tax = _by_type(score(truth, flags))["tax_error"]
    # in_1 and in_2 found, in_3 missed, in_9 a false alarm: 2 of 3 either way
    assert (tax.truth, tax.flagged, tax.true_positives) == (3, 3, 2)
    assert tax.precision == pytest.approx(2 / 3)
    assert tax.recall == pytest.approx(2 / 3)


def test_a_payment_anomaly_does_not_match_the_same_type_on_its_invoice():
    truth = [{"anomaly_type": "duplicate_charge", "invoice_id": "in_1", "payment_id": "pay_7"}]
    flags = [{"anomaly_type": "duplicate_charge", "invoice_id": "in_1", "payment_id": None}]
    duplicate = _by_type(score(truth, flags))["duplicate_charge"]
    assert (duplicate.truth, duplicate.flagged, duplicate.true_positives) == (1, 1, 0)


def _missed(customer_id: str, period_start_date: str) -> dict:
    return {"anomaly_type": "missed_invoice", "customer_id": customer_id, "period_start_date": period_start_date}


def test_a_missed_invoice_matches_on_customer_and_period_start_date():
    truth = [_missed("cus_1", "2024-03-22"), _missed("cus_2", "2024-04-01")]
    # the right customer, a month off, is not the same period
    flags = [_missed("cus_1", "2024-03-22"), _missed("cus_2", "2024-05-01")]
    missed = _by_type(score(truth, flags))["missed_invoice"]
    assert (missed.truth, missed.flagged, missed.true_positives) == (2, 2, 1)


def test_the_right_invoice_under_the_wrong_type_is_a_miss_and_a_false_alarm():
    truth = [{"anomaly_type": "price_mismatch", "invoice_id": "in_1"}]
    flags = [{"anomaly_type": "discount_error", "invoice_id": "in_1"}]
    scores = _by_type(score(truth, flags))
    assert scores["price_mismatch"].recall == 0.0
    assert scores["discount_error"].precision == 0.0


def test_a_document_flagged_twice_counts_once():
    flags = [{"anomaly_type": "total_mismatch", "invoice_id": "in_1"}] * 2
    total = _by_type(score([{"anomaly_type": "total_mismatch", "invoice_id": "in_1"}], flags))["total_mismatch"]
    assert (total.flagged, total.true_positives, total.precision) == (1, 1, 1.0)


def test_every_type_is_scored_and_ratios_without_a_denominator_are_none():
    scores = score([], [])
    assert [row.anomaly_type for row in scores] == list(ANOMALY_TYPES)
    assert all(row.precision is None and row.recall is None for row in scores)


def test_an_unknown_type_is_refused_rather_than_scored_as_missed():
    with pytest.raises(ValueError, match="unknown anomaly_type 'tax_eror'"):
        score([{"anomaly_type": "tax_eror", "invoice_id": "in_1"}], [])


def test_read_truth_keeps_the_utc_date_of_the_period_start(tmp_path: Path):
    truth_dir = tmp_path / "_truth"
    truth_dir.mkdir()
    (truth_dir / "anomalies.csv").write_text(
        "anomaly_type,invoice_id,payment_id,customer_id,subscription_id,period_start,expected,actual,detail\n"
        "missed_invoice,,,cus_1,sub_1,2024-03-22T00:00:00.000000,4872.00,0.00,cycle_invoice_not_issued\n"
    )
    (row,) = read_truth(tmp_path)
    assert row["period_start_date"] == "2024-03-22"
    assert row["invoice_id"] == ""


def test_read_truth_names_the_missing_file_and_columns(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="_truth/anomalies.csv"):
        read_truth(tmp_path)
    (tmp_path / "_truth").mkdir()
    (tmp_path / "_truth" / "anomalies.csv").write_text("anomaly_type,invoice_id\ntax_error,in_1\n")
    with pytest.raises(ValueError, match="missing columns \\['payment_id', 'customer_id', 'period_start'\\]"):
        read_truth(tmp_path)
