"""The billing-anomaly gate's arithmetic, its limit from the policy, and what it reads from the marts."""

import datetime as dt
import math

import duckdb
import pytest

from orchestration.defs.quality.anomaly_gate import (
    _top_table,
    block_share_of_revenue,
    gate_passes,
    max_block_share,
    measure_gate,
)
from orchestration.lib.policy import POLICY_PATH_VARIABLE, load_policy, policy_path
from orchestration.lib.settings import POLICY_PATH, PROJECT_ROOT


def test_the_share_is_block_usd_over_revenue():
    assert block_share_of_revenue(250.0, 10_000.0) == pytest.approx(0.025)
    assert block_share_of_revenue(12_000.0, 8_000.0) == pytest.approx(1.5)


def test_no_block_anomalies_is_a_zero_share_even_without_revenue():
    assert block_share_of_revenue(0.0, 10_000.0) == 0.0
    assert block_share_of_revenue(0.0, 0.0) == 0.0


def test_block_anomalies_against_no_revenue_are_an_infinite_share_and_fail_any_limit():
    share = block_share_of_revenue(5.0, 0.0)
    assert math.isinf(share)
    assert not gate_passes(share, 1_000.0)


def test_a_share_equal_to_the_limit_passes_and_anything_above_fails():
    # 500 / 10,000 = 0.05 exactly: "exceeds the share" blocks, "reaches it" does not
    assert gate_passes(block_share_of_revenue(500.0, 10_000.0), 0.05)
    assert not gate_passes(block_share_of_revenue(500.01, 10_000.0), 0.05)
    assert gate_passes(0.0, 0.0)
    assert not gate_passes(1e-9, 0.0)


def test_the_limit_comes_from_the_policy_file():
    assert max_block_share({"anomalies": {"gate": {"max_block_share_of_revenue": 0.05}}}) == 0.05
    assert max_block_share({"anomalies": {"gate": {"max_block_share_of_revenue": 0}}}) == 0.0
    # the shipped policy sets one, and it is a share
    assert 0 < max_block_share(load_policy(POLICY_PATH)) < 1


@pytest.mark.parametrize(
    ("policy", "expected_message"),
    [
        ({"anomalies": {"severity": {}}}, "has no anomalies.gate.max_block_share_of_revenue"),
        ({}, "has no anomalies.gate.max_block_share_of_revenue"),
        ({"anomalies": {"gate": {"max_block_share_of_revenue": -0.01}}}, "expected a share of revenue >= 0"),
        ({"anomalies": {"gate": {"max_block_share_of_revenue": "5%"}}}, "is '5%'"),
        ({"anomalies": {"gate": {"max_block_share_of_revenue": True}}}, "is True"),
        ({"anomalies": {"gate": {"max_block_share_of_revenue": float("nan")}}}, "expected a share"),
    ],
)
def test_a_missing_or_meaningless_limit_is_refused_naming_the_key(policy, expected_message):
    with pytest.raises(ValueError, match="max_block_share_of_revenue") as error:
        max_block_share(policy, "my_policy.yml")
    assert expected_message in str(error.value)
    assert "my_policy.yml" in str(error.value)


@pytest.fixture()
def marts():
    """Marts with March 2024 as the as-of month (the latest month of the KPI marts)."""
    conn = duckdb.connect()
    conn.execute("create schema marts")
    for table in ("kpi_invoice_error_rate", "kpi_churn", "kpi_clv"):
        conn.execute(
            f"create table marts.{table} as select * from (values"
            " (date '2024-02-01', 'all', 'all'), (date '2024-03-01', 'all', 'all'))"
            " as t(month, segment_dimension, segment_value)"
        )
    conn.execute(
        """
        create table marts.kpi_dso as select * from (values
            (date '2024-02-01', 'all', 'all', 9000.00),
            (date '2024-03-01', 'all', 'all', 8000.00),
            (date '2024-03-01', 'company_size', 'smb', 3000.00),
            (date '2024-03-01', 'company_size', 'enterprise', 5000.00)
        ) as t(month, segment_dimension, segment_value, credit_sales_usd)
        """
    )
    conn.execute(
        """
        create table marts.billing_anomalies as select * from (values
            ('a1', 'duplicate_charge', 'block', 'in_1', null, 'c1', '1', '2', 120.50, timestamp '2024-03-01 00:00:00'),
            ('a2', 'total_mismatch', 'block', 'in_2', null, 'c2', '10.00', '89.50', 79.50,
             timestamp '2024-03-31 23:59:59'),
            ('a3', 'tax_error', 'warn', 'in_3', null, 'c3', '5.00', '0.00', 900.00, timestamp '2024-03-15 00:00:00'),
            ('a4', 'price_mismatch', 'block', 'in_4', null, 'c4', '1.00', '2.00', 700.00,
             timestamp '2024-02-29 23:59:59'),
            ('a5', 'duplicate_charge', 'block', 'in_5', 'p5', 'c5', '1', '2', 600.00, timestamp '2024-04-01 00:00:00')
        ) as t(anomaly_id, anomaly_type, severity, invoice_id, payment_id, customer_id, expected, actual,
               amount_at_stake_usd, detected_at)
        """
    )
    yield conn
    conn.close()


def test_the_gate_counts_block_anomalies_detected_in_the_as_of_month_against_its_revenue(marts):
    # March: a1 120.50 (on the first instant) + a2 79.50 (on the last second) = 200.00 at stake;
    # a3 is warn, a4 is February's, a5 is April's first instant. Revenue: March's `all` credit sales.
    measured = measure_gate(marts, limit=0.025)
    assert measured.month == dt.date(2024, 3, 1)
    assert measured.block_anomalies == 2
    assert measured.block_amount_usd == pytest.approx(200.00)
    assert measured.revenue_usd == pytest.approx(8000.00)
    assert measured.share == pytest.approx(0.025)  # 200 / 8000
    assert measured.passed  # equal to the limit
    assert [row["anomaly_id"] for row in measured.top_anomalies] == ["a1", "a2"]  # largest first
    assert "2 block anomalies detected in 2024-03" in measured.message()
    assert "2.50%" in measured.message()


def test_the_gate_fails_when_the_share_is_above_the_limit(marts):
    measured = measure_gate(marts, limit=0.0249)
    assert not measured.passed
    assert "ABOVE the limit of 2.49%" in measured.message()


def test_billing_policy_path_points_every_reader_at_another_policy_file(tmp_path, monkeypatch):
    strict = tmp_path / "strict_policy.yml"
    strict.write_text("anomalies:\n  gate:\n    max_block_share_of_revenue: 0.001\n")
    monkeypatch.setenv(POLICY_PATH_VARIABLE, str(strict))
    assert policy_path() == strict
    assert max_block_share(load_policy()) == 0.001
    monkeypatch.delenv(POLICY_PATH_VARIABLE)
    assert policy_path() == POLICY_PATH
    assert max_block_share(load_policy()) == 0.05  # the shipped default


def test_a_policy_path_that_names_no_file_is_refused_naming_the_variable(monkeypatch):
    monkeypatch.setenv(POLICY_PATH_VARIABLE, "config/no_such_policy.yml")
    with pytest.raises(FileNotFoundError, match=f"{POLICY_PATH_VARIABLE} is 'config/no_such_policy.yml'") as error:
        policy_path()
    assert str(PROJECT_ROOT / "config" / "no_such_policy.yml") in str(error.value)  # relative to the project


def test_the_top_anomalies_table_leaves_a_missing_invoice_blank():
    # missed_invoice has no invoice; a policy may make it a block type
    row = {
        "anomaly_type": "missed_invoice",
        "invoice_id": None,
        "payment_id": None,
        "expected": "80.00",
        "actual": "0",
        "amount_at_stake_usd": 1234.5,
    }
    assert _top_table([row]).splitlines()[-1] == "| missed_invoice |  |  | 80.00 | 0 | 1,234.50 |"
