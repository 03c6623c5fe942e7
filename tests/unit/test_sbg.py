"""The shifted-beta-geometric model (orchestration/lib/sbg.py): hand-worked values,
Monte Carlo, parameter recovery, and the statuses of segments that cannot be fitted."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from scipy.special import hyp2f1

from orchestration.lib import sbg
from orchestration.lib.settings import DBT_PROJECT_DIR


def draw_cohorts(alpha: float, beta: float, customers: int, horizon: int, seed: int, staggered: bool = False):
    """theta ~ Beta(alpha, beta) per customer, geometric churn at each renewal, right-censored
    after `horizon` periods (or, staggered, after 0..horizon periods: cohorts acquired over time)."""
    rng = np.random.default_rng(seed)
    theta = rng.beta(alpha, beta, customers)
    lost_in = rng.geometric(theta)  # period of loss, >= 1
    observed = rng.integers(0, horizon + 1, customers) if staggered else np.full(customers, horizon)
    churned = lost_in <= observed
    return np.where(churned, lost_in, observed), churned


# Sampling spread at these sizes (sd over 20 seeds): at most 1.1 % for any parameter,
# so 5 % is more than four standard errors.
@pytest.mark.parametrize(
    ("alpha", "beta", "customers", "horizon", "staggered"),
    [
        (0.9, 6.0, 200_000, 36, True),  # the generator's smb
        (0.7, 14.0, 300_000, 36, False),  # the generator's enterprise: rarer churn needs more data
        (2.0, 3.0, 150_000, 12, False),  # theta's mode inside (0, 1): a different shape
    ],
)
def test_the_fit_recovers_alpha_and_beta_within_5_percent(alpha, beta, customers, horizon, staggered):
    periods, churned = draw_cohorts(alpha, beta, customers, horizon, seed=20071, staggered=staggered)
    fit = sbg.fit_sbg(periods, churned)
    assert fit.status == "fitted"
    assert fit.converged
    assert fit.reason is None
    assert fit.n == customers
    assert fit.n_churned == int(churned.sum())
    assert fit.alpha == pytest.approx(alpha, rel=0.05)
    assert fit.beta == pytest.approx(beta, rel=0.05)
    assert fit.log_likelihood == pytest.approx(sbg.log_likelihood(fit.alpha, fit.beta, periods, churned))


def test_the_fit_is_a_maximum_of_the_likelihood():
    periods, churned = draw_cohorts(0.9, 6.0, 5_000, 24, seed=3)
    fit = sbg.fit_sbg(periods, churned)
    for alpha, beta in [
        (fit.alpha * 1.02, fit.beta),
        (fit.alpha, fit.beta * 0.98),
        (fit.alpha * 0.99, fit.beta * 1.01),
    ]:
        assert sbg.log_likelihood(alpha, beta, periods, churned) < fit.log_likelihood


def test_the_log_likelihood_of_alpha_1_beta_1_matches_a_hand_worked_value():
    # alpha = beta = 1: P(T = t) = 1 / (t (t + 1)), S(t) = 1 / (t + 1).
    # One customer lost in period 1 (1/2), one in period 3 (1/12), one active after 2 periods (1/3).
    value = sbg.log_likelihood(1.0, 1.0, [1, 3, 2], [True, True, False])
    assert value == pytest.approx(math.log(1 / 2) + math.log(1 / 12) + math.log(1 / 3))


def test_survival_retention_and_churn_of_alpha_1_beta_1_are_the_hand_worked_fractions():
    t = np.arange(0, 10)
    assert sbg.survival(t, 1.0, 1.0) == pytest.approx(1 / (t + 1))
    assert sbg.survival(t, 1.0, 2.0) == pytest.approx(2 / (t + 2))
    assert sbg.retention(t[1:], 1.0, 1.0) == pytest.approx(t[1:] / (t[1:] + 1))
    assert sbg.churn_pmf(t[1:], 1.0, 1.0) == pytest.approx(1 / (t[1:] * (t[1:] + 1)))
    # the first renewal keeps beta / (alpha + beta): 1 - E[theta]
    assert sbg.survival(1, 0.9, 6.0) == pytest.approx(6.0 / 6.9)


def test_churn_and_survival_add_up():
    t = np.arange(1, 40)
    alpha, beta = 0.7, 14.0
    assert sbg.churn_pmf(t, alpha, beta) == pytest.approx(
        sbg.survival(t - 1, alpha, beta) - sbg.survival(t, alpha, beta)
    )


def test_discounted_expected_lifetime_of_alpha_1_beta_1_at_10_percent_is_1_1_ln_11():
    # sum_t z^t / (t + 1) = -ln(1 - z) / z with z = 1 / 1.1: 1.1 x ln 11 = 2.6376848...
    assert sbg.discounted_expected_lifetime(1.0, 1.0, 0.1) == pytest.approx(1.1 * math.log(11), rel=1e-10)
    truncated = sum((1 / (t + 1)) / 1.1**t for t in range(400))  # tail below 1.1^-400 / 0.09 ~ 3e-16
    assert sbg.discounted_expected_lifetime(1.0, 1.0, 0.1) == pytest.approx(truncated, rel=1e-12)


@pytest.mark.parametrize(
    ("alpha", "beta", "d"), [(0.9, 6.0, 0.008), (0.7, 14.0, 0.024), (3.0, 2.0, 0.1), (0.2, 50.0, 0.001)]
)
def test_discounted_expected_lifetime_is_the_hypergeometric_closed_form(alpha, beta, d):
    expected = hyp2f1(1.0, beta, alpha + beta, 1.0 / (1.0 + d))
    assert sbg.discounted_expected_lifetime(alpha, beta, d) == pytest.approx(expected, rel=1e-9)
    t = np.arange(0, 20_000)
    brute = np.sum(sbg.survival(t, alpha, beta) * np.exp(-t * np.log1p(d)))
    assert sbg.discounted_expected_lifetime(alpha, beta, d) == pytest.approx(brute, rel=1e-6)


def test_survival_and_discounted_lifetime_agree_with_a_monte_carlo_population():
    alpha, beta, d, customers = 0.9, 6.0, 0.05, 400_000
    rng = np.random.default_rng(7)
    lost_in = rng.geometric(rng.beta(alpha, beta, customers))
    t = np.arange(0, 13)
    empirical = (lost_in[:, None] > t[None, :]).mean(axis=0)
    assert empirical == pytest.approx(sbg.survival(t, alpha, beta), abs=0.003)
    # a customer lost in period T pays at t = 0 .. T - 1
    z = 1.0 / (1.0 + d)
    paid = (1.0 - z**lost_in) / (1.0 - z)
    assert paid.mean() == pytest.approx(sbg.discounted_expected_lifetime(alpha, beta, d), rel=0.01)


def test_residual_lifetime_of_a_customer_in_its_first_period_is_the_lifetime_after_the_first_payment():
    alpha, beta, d = 0.9, 6.0, 0.1
    lifetime = sbg.discounted_expected_lifetime(alpha, beta, d)
    assert sbg.discounted_expected_residual_lifetime(alpha, beta, 0, d) == pytest.approx((lifetime - 1.0) * (1.0 + d))


def test_residual_lifetime_is_the_discounted_conditional_survival_and_grows_with_tenure():
    alpha, beta, d = 0.9, 6.0, 0.02
    renewals = np.array([0, 1, 5, 24])
    derl = sbg.discounted_expected_residual_lifetime(alpha, beta, renewals, d)
    t = np.arange(0, 20_000)
    for n, value in zip(renewals, derl, strict=True):
        # further payments at renewals n + 1, n + 2, ..., the first undiscounted
        future = t + n + 1
        brute = np.sum(sbg.survival(future, alpha, beta) / sbg.survival(n, alpha, beta) * np.exp(-t * np.log1p(d)))
        assert value == pytest.approx(brute, rel=1e-6)
    assert np.all(np.diff(derl) > 0)  # the survivors are the loyal ones
    # alpha = beta = 1 by hand: S(t) / S(n) = (n + 1) / (t + 1)
    hand = sum((3 / (t + 4)) / 1.1**t for t in range(500))
    assert sbg.discounted_expected_residual_lifetime(1.0, 1.0, 2, 0.1) == pytest.approx(hand, rel=1e-10)


def test_period_discount_rate_compounds_the_annual_rate():
    assert sbg.period_discount_rate(0.10, 12) == pytest.approx(0.10)
    assert sbg.period_discount_rate(0.10, 1) == pytest.approx(1.1 ** (1 / 12) - 1)
    assert (1 + sbg.period_discount_rate(0.10, 3)) ** 4 == pytest.approx(1.10)


def test_a_segment_with_fewer_than_30_customers_is_too_small_with_null_parameters():
    periods, churned = draw_cohorts(0.9, 6.0, 29, 12, seed=1)
    fit = sbg.fit_sbg(periods, churned)
    assert (fit.status, fit.alpha, fit.beta, fit.log_likelihood, fit.converged) == (
        "too_small",
        None,
        None,
        None,
        False,
    )
    assert fit.n == 29
    assert "29 customers" in fit.reason
    assert fit.mean_churn_probability is None


def test_a_segment_without_churn_says_so_with_null_parameters():
    fit = sbg.fit_sbg(np.arange(100) % 12, np.zeros(100, dtype=bool))
    assert (fit.status, fit.alpha, fit.beta, fit.n_churned) == ("no_churn", None, None, 0)
    assert fit.reason == "no churn among 100 customers"


def test_a_segment_with_fewer_than_5_churn_events_is_too_small():
    churned = np.zeros(100, dtype=bool)
    churned[:4] = True
    fit = sbg.fit_sbg(np.full(100, 6), churned)
    assert (fit.status, fit.alpha, fit.beta, fit.n_churned) == ("too_small", None, None, 4)
    assert "4 churn events" in fit.reason


def test_a_segment_seen_for_one_period_only_is_not_identified_rather_than_fitted_at_the_start_point():
    # 200 yearly lives, none past its first renewal: 40 lost at t = 1, 100 censored at 1, 60 at 0.
    # The likelihood is 40 log(a / (a + b)) + 100 log(b / (a + b)): flat along a / (a + b) = 0.2.
    periods = np.array([1] * 40 + [1] * 100 + [0] * 60)
    churned = np.array([True] * 40 + [False] * 160)
    assert sbg.log_likelihood(1.0, 4.0, periods, churned) == pytest.approx(
        sbg.log_likelihood(3.0, 12.0, periods, churned)
    )
    fit = sbg.fit_sbg(periods, churned)
    assert (fit.status, fit.alpha, fit.beta, fit.n, fit.n_churned) == ("not_identified", None, None, 200, 40)
    assert "first period" in fit.reason


def test_a_segment_with_homogeneous_churn_did_not_converge_instead_of_reporting_huge_parameters():
    # every customer churns with the same probability: no finite maximum (alpha, beta -> infinity)
    rng = np.random.default_rng(5)
    lost_in = rng.geometric(0.1, 50_000)
    fit = sbg.fit_sbg(np.minimum(lost_in, 24), lost_in <= 24)
    assert (fit.status, fit.alpha, fit.beta, fit.converged) == ("did_not_converge", None, None, False)
    assert "homogeneous" in fit.reason


def test_an_empty_segment_is_too_small_and_bad_input_raises():
    assert sbg.fit_sbg([], []).status == "too_small"
    with pytest.raises(ValueError, match="period t >= 1"):
        sbg.fit_sbg([0, 3], [True, False])
    with pytest.raises(ValueError, match=">= 0"):
        sbg.fit_sbg([-1, 3], [False, False])
    with pytest.raises(ValueError, match="whole numbers"):
        sbg.fit_sbg([1.5, 3], [False, False])
    with pytest.raises(ValueError, match="same length"):
        sbg.fit_sbg([1, 2], [True])
    with pytest.raises(ValueError, match="> 0"):
        sbg.discounted_expected_lifetime(1.0, 1.0, 0.0)


def test_the_asset_fits_the_same_segment_dimensions_as_the_dbt_macro():
    from orchestration.defs.value.assets import SEGMENT_DIMENSIONS

    macro = (DBT_PROJECT_DIR / "macros" / "segments.sql").read_text(encoding="utf-8")
    listed = re.search(r"macro segment_dimensions\(\).*?return\(\[(.*?)\]\)", macro, re.DOTALL).group(1)
    assert tuple(re.findall(r"'(\w+)'", listed)) == SEGMENT_DIMENSIONS
