"""Integer encodings and policy values shared by every simulation module.

The simulation works on numpy arrays of small integer codes; this module fixes
those codes once, from the contract, the billing policy file and the country
seed, so the generator cannot drift from what the pipeline checks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from orchestration.lib import contract
from orchestration.lib.policy import load_countries, load_policy


def codes(values: tuple[str, ...]) -> dict[str, int]:
    return {value: index for index, value in enumerate(values)}


SEGMENTS = contract.COMPANY_SIZES
PERIODS = contract.BILLING_PERIODS
TIERS = contract.TIERS
EVENT = codes(contract.SUBSCRIPTION_EVENT_TYPES)
REASON = codes(contract.BILLING_REASONS)
INVOICE_STATUS = codes(contract.INVOICE_STATUSES)
PAYMENT_STATUS = codes(contract.PAYMENT_STATUSES)
METHOD = codes(contract.PAYMENT_METHODS)
SMB, MID_MARKET, ENTERPRISE = range(3)

ANOMALY_TYPES = contract.ANOMALY_TYPES
ANOMALY = codes(ANOMALY_TYPES)

# Fixed units per USD: prices are converted with these once (a list-price
# table, not a market rate); the daily fx_rates wander around their inverse.
UNITS_PER_USD = {
    "USD": 1.0,
    "EUR": 0.92,
    "GBP": 0.79,
    "JPY": 150.0,
    "BRL": 5.0,
    "INR": 83.0,
    "AUD": 1.52,
    "CAD": 1.36,
    "KRW": 1330.0,
}


@dataclass(frozen=True)
class Reference:
    countries: tuple[str, ...]
    country_currency: np.ndarray  # country code -> currency code
    country_tax_bp: np.ndarray  # country code -> standard rate in basis points
    currencies: tuple[str, ...]
    exponent: np.ndarray  # currency code -> minor-unit exponent (0 or 2)
    months_per_period: np.ndarray  # period code -> months
    loyalty_bp: int
    loyalty_after_months: int
    terms_days: np.ndarray  # segment code -> payment terms in days
    retry_days: tuple[int, ...]
    lapse_days: int

    def currency_code(self, currency: str) -> int:
        return self.currencies.index(currency)


def basis_points(rate: float) -> int:
    return int(round(rate * 10_000))


def load_reference() -> Reference:
    policy = load_policy()
    countries = load_countries()
    codes_ = tuple(countries)
    currencies = tuple(dict.fromkeys(c.default_currency for c in countries.values()))
    missing = set(currencies) - set(UNITS_PER_USD)
    if missing:
        raise ValueError(f"no list-price conversion rate for {sorted(missing)}")
    billing = policy["billing"]
    return Reference(
        countries=codes_,
        country_currency=np.array([currencies.index(countries[c].default_currency) for c in codes_]),
        country_tax_bp=np.array([basis_points(countries[c].tax_rate) for c in codes_], dtype=np.int64),
        currencies=currencies,
        exponent=np.array([contract.minor_units(c) for c in currencies], dtype=np.int64),
        months_per_period=np.array([billing["months_per_period"][p] for p in PERIODS], dtype=np.int64),
        loyalty_bp=basis_points(policy["loyalty_discount"]["rate"]),
        loyalty_after_months=int(policy["loyalty_discount"]["after_months"]),
        terms_days=np.array([policy["payment_terms_days"][s] for s in SEGMENTS], dtype=np.int64),
        retry_days=tuple(int(d) for d in policy["dunning"]["retry_days_after_first_failure"]),
        lapse_days=int(policy["dunning"]["lapse_days_after_due"]),
    )
