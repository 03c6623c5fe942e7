"""The shifted-beta-geometric (sBG) model of contractual retention.

Fader & Hardie (2007), "How to Project Customer Retention": each customer
churns at every renewal with a fixed probability theta, and theta varies
across customers as Beta(alpha, beta). With T >= 1 the period in which a
customer is lost (T = 1: gone at the first renewal),

    P(T = t) = B(alpha + 1, beta + t - 1) / B(alpha, beta)
    S(t)     = P(T > t) = B(alpha, beta + t) / B(alpha, beta),  S(0) = 1.

A churned customer contributes log P(T = t) to the likelihood, a customer
still active after n whole periods (right-censored) log S(n). Everything
here is pure numpy/scipy: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize
from scipy.special import betaln, digamma

# A segment needs this many customers (lives) and churn events to be fitted.
MIN_CUSTOMERS = 30
MIN_CHURN_EVENTS = 5
# The optimiser works on log(alpha), log(beta) inside these bounds. Data with no
# visible spread in churn probabilities have no finite maximum: the likelihood
# keeps rising along a ridge alpha, beta -> infinity at a fixed alpha / (alpha + beta)
# (a homogeneous, geometric population), and the optimiser stops somewhere on
# it. A fit with alpha + beta above MAX_CONCENTRATION (sd of theta below
# sqrt(mean (1 - mean) / 1000), 0.009 around a mean of 0.1) or a parameter below
# MIN_PARAMETER is reported as not converged rather than as arbitrary numbers.
LOG_PARAMETER_BOUNDS = (np.log(1e-4), np.log(1e4))
MAX_CONCENTRATION = 1e3
MIN_PARAMETER = 1e-3
# Stop when the gradient of the mean log-likelihood per customer (in log-parameters) is this small.
GRADIENT_TOLERANCE = 1e-9
# Relative truncation error of the discounted-lifetime series (see _discounted_series).
SERIES_TOLERANCE = 1e-12
_SERIES_BLOCK = 512
_SERIES_MAX_TERMS = 10_000_000

FITTED, TOO_SMALL, NO_CHURN, DID_NOT_CONVERGE = "fitted", "too_small", "no_churn", "did_not_converge"
NOT_IDENTIFIED = "not_identified"


@dataclass(frozen=True)
class SbgFit:
    """A maximum-likelihood fit; alpha, beta and log_likelihood are None unless status is 'fitted'."""

    alpha: float | None
    beta: float | None
    log_likelihood: float | None
    n: int
    n_churned: int
    converged: bool
    status: str
    reason: str | None = None

    @property
    def mean_churn_probability(self) -> float | None:
        """E[theta] = alpha / (alpha + beta): the churn probability at the first renewal."""
        if self.alpha is None or self.beta is None:
            return None
        return self.alpha / (self.alpha + self.beta)


@dataclass(frozen=True)
class _Counts:
    """Customers grouped by (t, churned): the likelihood needs only the counts."""

    churned_t: np.ndarray
    churned_n: np.ndarray
    censored_t: np.ndarray
    censored_n: np.ndarray


def _group(periods_survived, churned) -> _Counts:
    periods = np.asarray(periods_survived)
    is_churned = np.asarray(churned, dtype=bool)
    if periods.shape != is_churned.shape or periods.ndim != 1:
        raise ValueError("periods_survived and churned must be 1-d arrays of the same length")
    if periods.size and (not np.all(np.isfinite(periods)) or np.any(periods != np.floor(periods))):
        raise ValueError("periods_survived must be whole numbers")
    periods = periods.astype(np.int64)
    if np.any(periods < 0):
        raise ValueError("periods_survived must be >= 0")
    if np.any(periods[is_churned] < 1):
        raise ValueError("a churned customer is lost in period t >= 1 (periods_survived >= 1)")
    churned_t, churned_n = np.unique(periods[is_churned], return_counts=True)
    censored_t, censored_n = np.unique(periods[~is_churned], return_counts=True)
    return _Counts(churned_t, churned_n, censored_t, censored_n)


def _log_likelihood_and_gradient(alpha: float, beta: float, counts: _Counts) -> tuple[float, np.ndarray]:
    """Log-likelihood and its gradient in (log alpha, log beta)."""
    total = counts.churned_n.sum() + counts.censored_n.sum()
    t, k = counts.churned_t, counts.churned_n
    m, c = counts.censored_t, counts.censored_n
    ll = (
        np.sum(k * betaln(alpha + 1.0, beta + t - 1.0))
        + np.sum(c * betaln(alpha, beta + m))
        - total * betaln(alpha, beta)
    )
    # d/dx betaln(x, y) = digamma(x) - digamma(x + y), d/dy likewise.
    psi_ab = digamma(alpha + beta)
    d_alpha = (
        np.sum(k * (digamma(alpha + 1.0) - digamma(alpha + beta + t)))
        + np.sum(c * (digamma(alpha) - digamma(alpha + beta + m)))
        - total * (digamma(alpha) - psi_ab)
    )
    d_beta = (
        np.sum(k * (digamma(beta + t - 1.0) - digamma(alpha + beta + t)))
        + np.sum(c * (digamma(beta + m) - digamma(alpha + beta + m)))
        - total * (digamma(beta) - psi_ab)
    )
    return float(ll), np.array([d_alpha * alpha, d_beta * beta])


def log_likelihood(alpha: float, beta: float, periods_survived, churned) -> float:
    """sBG log-likelihood of customers lost in period t (churned) or active after t periods (censored)."""
    if alpha <= 0 or beta <= 0:
        raise ValueError("alpha and beta must be positive")
    return _log_likelihood_and_gradient(alpha, beta, _group(periods_survived, churned))[0]


def fit_sbg(periods_survived, churned) -> SbgFit:
    """Maximum-likelihood alpha and beta; a status and reason instead of an exception when
    the data cannot support a fit (too few customers or churn events, no convergence).

    `periods_survived`: for a churned customer the period t >= 1 in which it was lost
    (a customer cancelling at its first renewal has t = 1); for a censored one the
    whole periods n >= 0 it has been active. `churned`: True when the life ended.
    """
    counts = _group(periods_survived, churned)
    n = int(counts.churned_n.sum() + counts.censored_n.sum())
    n_churned = int(counts.churned_n.sum())

    def skipped(status: str, reason: str) -> SbgFit:
        return SbgFit(None, None, None, n, n_churned, False, status, reason)

    if n < MIN_CUSTOMERS:
        return skipped(TOO_SMALL, f"{n} customers (< {MIN_CUSTOMERS})")
    if n_churned == 0:
        return skipped(NO_CHURN, f"no churn among {n} customers")
    if n_churned < MIN_CHURN_EVENTS:
        return skipped(TOO_SMALL, f"{n_churned} churn events (< {MIN_CHURN_EVENTS})")
    longest = max(counts.churned_t.max(initial=0), counts.censored_t.max(initial=0))
    if longest <= 1:
        # Only P(T = 1) = alpha / (alpha + beta) is observed: every (alpha, beta) on
        # that ratio fits equally well, so any reported pair would be arbitrary.
        return skipped(NOT_IDENTIFIED, "no life observed beyond its first period: only alpha / (alpha + beta) is known")

    # Start from the pooled geometric rate (churn events per period at risk), with alpha = 1.
    exposure = np.sum(counts.churned_n * counts.churned_t) + np.sum(counts.censored_n * counts.censored_t)
    rate = min(max(n_churned / max(exposure, 1), 1e-3), 0.999)
    start = np.array([0.0, np.log((1.0 - rate) / rate)])
    start = np.clip(start, *LOG_PARAMETER_BOUNDS)

    def objective(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        ll, grad = _log_likelihood_and_gradient(*np.exp(log_params), counts)
        return -ll / n, -grad / n  # per customer, so tolerances do not depend on the sample size

    result = optimize.minimize(
        objective,
        start,
        jac=True,
        method="L-BFGS-B",
        bounds=[LOG_PARAMETER_BOUNDS] * 2,
        options={"ftol": 1e-13, "gtol": GRADIENT_TOLERANCE, "maxiter": 1000},
    )
    alpha, beta = (float(v) for v in np.exp(result.x))
    if alpha + beta > MAX_CONCENTRATION:
        return skipped(
            DID_NOT_CONVERGE,
            f"no finite maximum: alpha, beta ran off to {alpha:.4g}, {beta:.4g}; churn looks homogeneous "
            f"(geometric, {alpha / (alpha + beta):.4f} per period), so the spread of churn probabilities "
            "is not identified",
        )
    if min(alpha, beta) < MIN_PARAMETER:
        return skipped(
            DID_NOT_CONVERGE,
            f"no finite maximum: alpha, beta ran off to {alpha:.4g}, {beta:.4g} (churn looks like a split "
            "into customers who never leave and customers who leave at once)",
        )
    # L-BFGS-B may end on a failed line search ("ABNORMAL") at an optimum it cannot
    # improve in floating point: the gradient decides, not the message.
    gradient = float(np.max(np.abs(objective(result.x)[1])))
    if not (result.success or gradient < 100 * GRADIENT_TOLERANCE):
        return skipped(DID_NOT_CONVERGE, f"optimiser stopped: {result.message} (gradient {gradient:.2g})")
    ll, _ = _log_likelihood_and_gradient(alpha, beta, counts)
    return SbgFit(alpha, beta, ll, n, n_churned, True, FITTED, None)


def _check_parameters(alpha: float, beta: float) -> None:
    if not (alpha > 0 and beta > 0):
        raise ValueError(f"alpha and beta must be positive, got {alpha}, {beta}")


def churn_pmf(t, alpha: float, beta: float) -> np.ndarray:
    """P(T = t) for t >= 1: the probability of being lost in period t."""
    _check_parameters(alpha, beta)
    t = np.asarray(t, dtype=float)
    return np.exp(betaln(alpha + 1.0, beta + t - 1.0) - betaln(alpha, beta))


def survival(t, alpha: float, beta: float) -> np.ndarray:
    """S(t) = P(T > t): the share of a cohort still active after t renewals (t >= 0)."""
    _check_parameters(alpha, beta)
    t = np.asarray(t, dtype=float)
    return np.exp(betaln(alpha, beta + t) - betaln(alpha, beta))


def retention(t, alpha: float, beta: float) -> np.ndarray:
    """r(t) = S(t) / S(t - 1) = (beta + t - 1) / (alpha + beta + t - 1), for t >= 1: the
    renewal rate at the t-th renewal among those still active; it rises with t as the
    high-churn customers leave."""
    _check_parameters(alpha, beta)
    t = np.asarray(t, dtype=float)
    return (beta + t - 1.0) / (alpha + beta + t - 1.0)


def _discounted_series(alpha: float, b, d: float) -> np.ndarray:
    """sum_{k >= 0} z^k prod_{j=1..k} (b + j - 1) / (alpha + b + j - 1), z = 1 / (1 + d),
    which is the Gauss hypergeometric 2F1(1, b; alpha + b; z), for each b.

    Summed term by term: every term ratio is below z, so the tail after a term u is at
    most u / (1 - z); the sum stops when that bound is below SERIES_TOLERANCE times the
    partial sum. (scipy's hyp2f1 agrees; the series has a provable error.)"""
    if not d > 0:
        raise ValueError("the discount rate per period must be > 0 (the undiscounted lifetime may be infinite)")
    z = 1.0 / (1.0 + d)
    b = np.atleast_1d(np.asarray(b, dtype=float))
    total = np.zeros_like(b)
    term = np.ones_like(b)
    offset = 0  # terms summed so far
    steps = np.arange(_SERIES_BLOCK, dtype=float)
    while True:
        j = offset + steps[None, :]  # term k = offset + i + 1 multiplies in ratio (b + k - 1) / (alpha + b + k - 1)
        ratios = z * (b[:, None] + j) / (alpha + b[:, None] + j)
        block = term[:, None] * np.concatenate([np.ones((len(b), 1)), np.cumprod(ratios[:, :-1], axis=1)], axis=1)
        total += block.sum(axis=1)
        term = block[:, -1] * ratios[:, -1]
        offset += _SERIES_BLOCK
        if np.all(term / (1.0 - z) <= SERIES_TOLERANCE * total):
            return total
        if offset >= _SERIES_MAX_TERMS:
            raise ArithmeticError(f"discounted series did not reach tolerance within {offset} terms (d = {d})")


def discounted_expected_lifetime(alpha: float, beta: float, d: float) -> float:
    """DEL(d) = sum_{t >= 0} S(t) / (1 + d)^t = 2F1(1, beta; alpha + beta; 1 / (1 + d)).

    The discounted number of payments a new customer makes, the first (at sign-up)
    undiscounted; d is the discount rate per billing period. Multiply by the margin
    per period for a customer lifetime value."""
    _check_parameters(alpha, beta)
    return float(_discounted_series(alpha, beta, d)[0])


def discounted_expected_residual_lifetime(alpha: float, beta: float, renewals, d: float) -> np.ndarray:
    """DERL(d | n) of Fader & Hardie (2010), "Customer-Base Valuation in a Contractual
    Setting": the discounted number of further payments of a customer still active
    after `renewals` renewals (n - 1 in their notation; renewals = 0 for a customer in
    its first period), valued just before its next renewal decision, so the next
    payment, made with probability r(renewals + 1), is undiscounted:

        DERL = B(alpha, beta + n) / B(alpha, beta + n - 1) x 2F1(1, beta + n; alpha + beta + n; 1 / (1 + d)).

    Vectorised over `renewals` (whole numbers >= 0)."""
    _check_parameters(alpha, beta)
    n = np.asarray(renewals, dtype=float) + 1.0
    if np.any(n < 1) or np.any(n != np.floor(n)):
        raise ValueError("renewals must be whole numbers >= 0")
    unique_n, inverse = np.unique(n, return_inverse=True)
    values = retention(unique_n, alpha, beta) * _discounted_series(alpha, beta + unique_n, d)
    return values[inverse].reshape(n.shape)


def period_discount_rate(annual_rate: float, months_per_period: int) -> float:
    """The per-period rate equivalent to an annual rate: (1 + annual)^(months / 12) - 1."""
    return (1.0 + annual_rate) ** (months_per_period / 12.0) - 1.0
