"""The residual-lifetime table (marts.sbg_residual_lifetimes) that values each active customer in
marts.customer_risk: built from the fitted rows of sbg_parameters by
orchestration.defs.value.assets.residual_lifetimes, written with them in one transaction."""

from __future__ import annotations

import datetime as dt
import math

import duckdb
import polars as pl
import pytest

from orchestration.defs.value import assets
from orchestration.lib import sbg

FITTED_AT = dt.datetime(2026, 1, 1, 6, 0)


def parameters(*rows: dict) -> pl.DataFrame:
    """sbg_parameters rows; unspecified columns as for a fitted segment of 100 lives."""
    defaults = {
        "segment_dimension": "all",
        "segment_value": "all",
        "billing_period": "month",
        "status": sbg.FITTED,
        "reason": None,
        "alpha": 1.0,
        "beta": 1.0,
        "mean_churn_probability": 0.5,
        "discount_rate_per_period": 0.1,
        "discounted_expected_lifetime": None,
        "log_likelihood": -1.0,
        "n_lives": 100,
        "n_customers": 100,
        "n_churned": 50,
        "max_periods_survived": 10,
        "fitted_at": FITTED_AT,
    }
    return pl.DataFrame([{**defaults, **row} for row in rows], schema_overrides={"reason": pl.String})


def test_alpha_equal_beta_equal_one_gives_the_hand_worked_residual_lifetimes():
    # alpha = beta = 1: S(t) = B(1, 1 + t) / B(1, 1) = 1 / (t + 1), r(t) = S(t) / S(t - 1) = t / (t + 1).
    # DERL(d | n) = sum_{t > n} S(t) / S(n) z^(t - n - 1), z = 1 / (1 + d) = 1 / 1.1:
    #   n = 0: sum_{k >= 0} z^k / (k + 2) = 1/2 + z/3 + z^2/4 + ... = (-ln(1 - z) - z) / z^2
    #          = 1.21 x (ln 11 - 0.909091) = 1.21 x (2.397895 - 0.909091) = 1.801453
    #   n = 1: 2 x sum_{k >= 0} z^k / (k + 3) = 2 (-ln(1 - z) - z - z^2 / 2) / z^3
    #          = 2.662 x (2.397895 - 0.909091 - 0.413223) = 2.863197
    # The next payment counts undiscounted: the first term of n = 0 is r(1) = 1/2.
    table = assets.residual_lifetimes(parameters({"discount_rate_per_period": 0.1}), max_renewals=3)
    by_renewals = {row["renewals_survived"]: row for row in table.iter_rows(named=True)}
    z = 1 / 1.1
    assert by_renewals[0]["discounted_expected_residual_lifetime"] == pytest.approx(1.801453, abs=1e-6)
    assert by_renewals[0]["discounted_expected_residual_lifetime"] == pytest.approx(
        (-math.log(1 - z) - z) / z**2, rel=1e-12
    )
    assert by_renewals[1]["discounted_expected_residual_lifetime"] == pytest.approx(2.863197, abs=1e-6)
    assert by_renewals[1]["discounted_expected_residual_lifetime"] == pytest.approx(
        2 * (-math.log(1 - z) - z - z**2 / 2) / z**3, rel=1e-12
    )
    assert by_renewals[0]["next_renewal_probability"] == pytest.approx(1 / 2)
    assert by_renewals[1]["next_renewal_probability"] == pytest.approx(2 / 3)


def test_the_table_has_every_renewal_up_to_the_cap_for_each_fitted_segment_only():
    table = assets.residual_lifetimes(
        parameters(
            {"billing_period": "month", "alpha": 0.9, "beta": 6.0, "discount_rate_per_period": 0.008},
            {"billing_period": "year", "alpha": 0.8, "beta": 9.0, "discount_rate_per_period": 0.1},
            {"billing_period": "quarter", "status": sbg.TOO_SMALL, "reason": "12 customers (< 30)", "alpha": None},
        ),
        max_renewals=24,
    )
    assert list(table.columns) == list(assets.RESIDUAL_TABLE_COLUMNS)
    assert table.group_by("billing_period").len().sort("billing_period").rows() == [("month", 25), ("year", 25)]
    assert table.select("segment_dimension", "segment_value", "billing_period", "renewals_survived").is_unique().all()
    month = table.filter(pl.col("billing_period") == "month").sort("renewals_survived")
    # each segment at its own per-period rate, the same d as sbg_parameters
    expected = sbg.discounted_expected_residual_lifetime(0.9, 6.0, list(range(25)), 0.008)
    assert month["discounted_expected_residual_lifetime"].to_list() == pytest.approx(list(expected), rel=1e-12)
    assert (month["discount_rate_per_period"] == 0.008).all()
    # the survivors are the loyal ones: the residual lifetime grows with renewals survived
    assert (month["discounted_expected_residual_lifetime"].diff().drop_nulls() > 0).all()
    assert (table["fitted_at"] == FITTED_AT).all()


def test_no_fitted_segment_gives_an_empty_table_with_the_columns():
    table = assets.residual_lifetimes(parameters({"status": sbg.NO_CHURN, "alpha": None, "beta": None}))
    assert table.height == 0
    assert list(table.columns) == list(assets.RESIDUAL_TABLE_COLUMNS)


def test_parameters_and_residual_lifetimes_are_replaced_together():
    fitted = parameters({"alpha": 0.9, "beta": 6.0, "discount_rate_per_period": 0.008})
    residuals = assets.residual_lifetimes(fitted, max_renewals=5)
    conn = duckdb.connect()
    assets.write_parameters(conn, fitted, residuals)
    assets.write_parameters(conn, fitted, residuals)  # a rerun replaces, never appends
    assert conn.execute("select count(*) from marts.sbg_parameters").fetchone() == (1,)
    assert conn.execute("select count(*) from marts.sbg_residual_lifetimes").fetchone() == (6,)
    # a failed write leaves both tables as they were
    broken = residuals.with_columns(renewals_survived=pl.lit(None, dtype=pl.Int32))
    with pytest.raises(duckdb.Error):
        assets.write_parameters(conn, fitted.with_columns(n_lives=pl.lit(7, dtype=pl.Int32)), broken)
    assert conn.execute("select n_lives from marts.sbg_parameters").fetchone() == (100,)
    assert conn.execute("select count(*) from marts.sbg_residual_lifetimes").fetchone() == (6,)
