"""Injected billing anomalies, one per document, each recorded as ground truth.

A detector is scored on these at precision and recall >= 0.95, so every
injection changes exactly what its anomaly type is about and keeps the rest
of the document consistent: a wrong unit price still yields amount = unit x
quantity, the correct discount and tax on that amount, and headers equal to
the sum of the lines. Quotas (not coin flips) pick the documents, so the
injected share tracks the configured rate closely even in small worlds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from billing_world.catalog import PriceBook
from billing_world.invoicing import Batch, concat, price_lines
from billing_world.ledger import ANOMALY_SCHEMA, Ledger
from billing_world.money import apply_bp, half_up_div
from billing_world.reference import ANOMALY, ANOMALY_TYPES, PAYMENT_STATUS, REASON, Reference
from billing_world.timeline import HOUR_US, MINUTE_US

DETAILS = (
    "duplicate_payment",
    "duplicate_invoice",
    "stale_price_after_increase",
    "unit_price_deviation",
    "prorated_amount_off",
    "full_period_not_prorated",
    "missing_when_due",
    "wrong_rate",
    "given_when_not_due",
    "tax_rate_wrong",
    "tax_omitted",
    "subtotal_off",
    "total_off",
    "invoice_currency",
    "payment_currency",
    "cycle_invoice_not_issued",
    "cycle_invoice_after_cancellation",
    "wrong_quantity",
)
DETAIL = {name: i for i, name in enumerate(DETAILS)}
MONEY, CURRENCY, COUNT = range(3)  # how `expected` / `actual` read

# Types whose rate is shared by two kinds of document.
SPLIT_VARIANTS = {
    "duplicate_charge": ("duplicate_charge/invoice", "duplicate_charge/payment"),
    "currency_mismatch": ("currency_mismatch/invoice", "currency_mismatch/payment"),
}
SPIKE_FACTOR = (5, 10)
PRICE_DEVIATION_BP = ((10_500, 12_500), (8_000, 9_500))
PRICE_OVER_SHARE = 0.7
WRONG_DISCOUNT_BP = (500, 2_000)
TAX_SHIFT_BP = 500
TOTAL_DEVIATION_BP = (500, 2_500)
PRORATION_FACTOR_BP = ((13_000, 20_000), (3_000, 7_000))
DUPLICATE_DELAY_US = (MINUTE_US, 36 * HOUR_US)
COPY_DELAY_US = (HOUR_US, 6 * HOUR_US)

KeySource = Callable[[int], np.ndarray]


class Quota:
    """Deterministic share of eligible documents: the floor of a running sum."""

    def __init__(self, rate: float, rng: np.random.Generator) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"anomaly rate {rate} outside [0, 1]")
        self.rate = rate
        self.acc = rng.random() if rate > 0 else 0.0

    def draw(self, eligible: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        before = self.acc
        self.acc += len(eligible) * self.rate
        k = min(int(np.floor(self.acc) - np.floor(before)), len(eligible))
        return np.sort(rng.choice(eligible, size=k, replace=False)) if k else eligible[:0]


def _between(rng: np.random.Generator, bounds: tuple[int, int], n: int) -> np.ndarray:
    return rng.integers(bounds[0], bounds[1], n, endpoint=True)


class Injector:
    """Quotas, randomness and truth recording shared by every injection."""

    def __init__(
        self,
        rates: dict[str, float],
        rng: np.random.Generator,
        book: PriceBook,
        ref: Reference,
        ledger: Ledger,
    ) -> None:
        self.rng, self.book, self.ref, self.ledger = rng, book, ref, ledger
        self.quotas = {
            variant: Quota(rates[name] / len(SPLIT_VARIANTS.get(name, (name,))), rng)
            for name in ANOMALY_TYPES
            for variant in SPLIT_VARIANTS.get(name, (name,))
        }
        self.usd, self.eur = ref.currency_code("USD"), ref.currency_code("EUR")

    def pick(self, variant: str, eligible: np.ndarray) -> np.ndarray:
        return self.quotas[variant].draw(np.flatnonzero(eligible), self.rng)

    def other_currency(self, currency: np.ndarray) -> np.ndarray:
        # USD for everyone else, EUR for USD: never a bigger-number currency, so no accidental spike.
        return np.where(currency == self.usd, self.eur, self.usd)

    def record(self, anomaly: str, detail: np.ndarray | int, batch: Batch, pos: np.ndarray, **values) -> None:
        if not len(pos):
            return
        row = {
            "anomaly": ANOMALY[anomaly],
            "detail": detail,
            "inv_key": batch.key[pos],
            "pay_key": -1,
            "ref_inv_key": -1,
            "cust": batch.cust[pos],
            "start_day": batch.start_day[pos],
            "value_kind": MONEY,
            "expected": 0,
            "actual": 0,
            "expected_currency": batch.currency[pos],
            "actual_currency": batch.currency[pos],
            "overcharge": 0,
            "noticed_us": batch.issued_us[pos],
            **values,
        }
        self.ledger.add("anomalies", **{c: row[c] for c in ANOMALY_SCHEMA})


@dataclass(frozen=True)
class Snapshot:
    """An invoice batch's correct numbers, taken before any injection."""

    unit: np.ndarray  # plan-line unit price
    currency: np.ndarray
    discount: np.ndarray
    tax: np.ndarray
    total: np.ndarray

    @classmethod
    def of(cls, batch: Batch) -> Snapshot:
        return cls(
            batch.lines.unit[batch.first_line()].copy(),
            batch.currency.copy(),
            batch.discount.copy(),
            batch.tax.copy(),
            batch.total.copy(),
        )


def _spread(batch: Batch, pos: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lines of the invoices at `pos` and, per line, the value given to its invoice."""
    per_invoice = np.zeros(len(batch), dtype=np.int64)
    per_invoice[pos] = values
    lines = np.flatnonzero(np.isin(batch.lines.inv, pos))
    return lines, per_invoice[batch.lines.inv[lines]]


def _price_mismatch(inj: Injector, batch: Batch, pos: np.ndarray) -> np.ndarray:
    line = batch.first_line()[pos]
    product, currency, unit = batch.lines.product[line], batch.currency[pos], batch.lines.unit[line]
    stale = inj.book.changed[product] & (batch.start_day[pos] >= inj.book.change_day)
    stale &= inj.rng.random(len(pos)) < 0.5
    over = inj.rng.random(len(pos)) < PRICE_OVER_SHARE
    factor = np.where(
        over,
        _between(inj.rng, PRICE_DEVIATION_BP[0], len(pos)),
        _between(inj.rng, PRICE_DEVIATION_BP[1], len(pos)),
    )
    deviated = half_up_div(unit * factor, 10_000)
    deviated = np.where(deviated == unit, unit + 1, deviated)
    batch.lines.unit[line] = np.where(stale, inj.book.old[product, currency], deviated)
    return np.where(stale, DETAIL["stale_price_after_increase"], DETAIL["unit_price_deviation"])


def _amount_spike(inj: Injector, batch: Batch, pos: np.ndarray) -> np.ndarray:
    lines, factor = _spread(batch, pos, _between(inj.rng, SPIKE_FACTOR, len(pos)))
    batch.lines.qty[lines] *= factor
    return np.full(len(pos), DETAIL["wrong_quantity"])


def _discount_error(inj: Injector, batch: Batch, pos: np.ndarray, due: np.ndarray) -> np.ndarray:
    missing = inj.rng.random(len(pos)) < 0.5
    wrong = np.array(WRONG_DISCOUNT_BP)[inj.rng.integers(0, 2, len(pos))]
    rate = np.where(due[pos], np.where(missing, 0, wrong), inj.ref.loyalty_bp)
    lines, per_line = _spread(batch, pos, rate)
    batch.lines.disc_bp[lines] = per_line
    return np.where(
        due[pos],
        np.where(missing, DETAIL["missing_when_due"], DETAIL["wrong_rate"]),
        DETAIL["given_when_not_due"],
    )


def _tax_error(inj: Injector, batch: Batch, pos: np.ndarray) -> np.ndarray:
    country = batch.lines.tax_bp[batch.first_line()[pos]]
    omit = (country > 0) & (inj.rng.random(len(pos)) < 0.5)
    down = (country >= 2 * TAX_SHIFT_BP) & (inj.rng.random(len(pos)) < 0.5)
    wrong = country + np.where(down, -TAX_SHIFT_BP, TAX_SHIFT_BP)
    lines, applied = _spread(batch, pos, np.where(omit, 0, wrong))
    batch.lines.tax_bp[lines] = applied
    # A wrong rate shows on the line; an omitted tax keeps the country rate printed.
    _, printed = _spread(batch, pos, np.where(omit, country, wrong))
    batch.lines.rate_bp[lines] = printed
    return np.where(omit, DETAIL["tax_omitted"], DETAIL["tax_rate_wrong"])


def _currency_mismatch(inj: Injector, batch: Batch, pos: np.ndarray) -> np.ndarray:
    batch.currency[pos] = inj.other_currency(batch.currency[pos])
    price_lines(batch, inj.book, pos)  # the book price of the wrong currency: only the currency is off
    return np.full(len(pos), DETAIL["invoice_currency"])


def _total_mismatch(inj: Injector, batch: Batch, pos: np.ndarray) -> np.ndarray:
    share = _between(inj.rng, TOTAL_DEVIATION_BP, len(pos))
    sign = np.where(inj.rng.random(len(pos)) < 0.7, 1, -1)
    delta = sign * np.maximum(apply_bp(batch.subtotal[pos], share), 1)
    subtotal_off = inj.rng.random(len(pos)) < 0.5
    batch.subtotal[pos] += np.where(subtotal_off, delta, 0)
    batch.total[pos] += delta
    return np.where(subtotal_off, DETAIL["subtotal_off"], DETAIL["total_off"])


def _record_recurring(inj: Injector, batch: Batch, base: Snapshot, chosen: dict, details: dict) -> None:
    measured = {
        "price_mismatch": (base.unit, batch.lines.unit[batch.first_line()]),
        "amount_spike": (base.total, batch.total),
        "discount_error": (base.discount, batch.discount),
        "tax_error": (base.tax, batch.tax),
        "total_mismatch": (base.total, batch.total),
    }
    overcharge = np.maximum(batch.total - base.total, 0)
    for name, (expected, actual) in measured.items():
        pos = chosen[name]
        inj.record(
            name,
            details[name],
            batch,
            pos,
            expected=expected[pos],
            actual=actual[pos],
            overcharge=overcharge[pos],
        )
    pos = chosen["currency_mismatch"]
    inj.record(
        "currency_mismatch",
        details["currency_mismatch"],
        batch,
        pos,
        value_kind=CURRENCY,
        expected_currency=base.currency[pos],
    )


@dataclass(frozen=True)
class RecurringContext:
    loyalty_due: np.ndarray
    spike_eligible: np.ndarray
    doomed: np.ndarray  # the subscription is already set to lapse


@dataclass(frozen=True)
class Injected:
    batch: Batch
    anomalous: np.ndarray  # per invoice of `batch`
    hit_customers: np.ndarray


def inject_recurring(inj: Injector, batch: Batch, ctx: RecurringContext, next_keys: KeySource) -> Injected:
    """Anomalies on the month's first and cycle invoices; may drop and add invoices."""
    base = Snapshot.of(batch)
    everything = np.ones(len(batch), dtype=bool)
    cycle = batch.reason == REASON["subscription_cycle"]
    taken = np.zeros(len(batch), dtype=bool)

    def choose(variant: str, eligible: np.ndarray) -> np.ndarray:
        pos = inj.pick(variant, eligible & ~taken)
        taken[pos] = True
        return pos

    missed = choose("missed_invoice", cycle)
    copied = choose("duplicate_charge/invoice", cycle & ~ctx.doomed)
    chosen = {
        "price_mismatch": choose("price_mismatch", everything),
        "amount_spike": choose("amount_spike", cycle & ctx.spike_eligible),
        "discount_error": choose("discount_error", everything),
        "tax_error": choose("tax_error", everything),
        "currency_mismatch": choose("currency_mismatch/invoice", everything),
        "total_mismatch": choose("total_mismatch", everything),
    }
    details = {
        "price_mismatch": _price_mismatch(inj, batch, chosen["price_mismatch"]),
        "amount_spike": _amount_spike(inj, batch, chosen["amount_spike"]),
        "discount_error": _discount_error(inj, batch, chosen["discount_error"], ctx.loyalty_due),
        "tax_error": _tax_error(inj, batch, chosen["tax_error"]),
        "currency_mismatch": _currency_mismatch(inj, batch, chosen["currency_mismatch"]),
    }
    batch.compute()
    details["total_mismatch"] = _total_mismatch(inj, batch, chosen["total_mismatch"])
    _record_recurring(inj, batch, base, chosen, details)
    inj.record(
        "missed_invoice",
        DETAIL["cycle_invoice_not_issued"],
        batch,
        missed,
        inv_key=-1,
        expected=base.total[missed],
    )
    hit = batch.cust[taken]

    anomalous = taken.copy()
    anomalous[copied] = False  # the original stays a correct invoice; its copy is the anomaly
    batch.forced[copied] = True  # both get paid, or the copy would be the only charge
    copies = _duplicate_invoices(inj, batch, copied, next_keys)
    keep = np.flatnonzero(~np.isin(np.arange(len(batch)), missed))
    kept = batch.take(keep)
    if not len(copies):
        return Injected(kept, anomalous[keep], hit)
    return Injected(concat([kept, copies]), np.concatenate([anomalous[keep], np.ones(len(copies), bool)]), hit)


def _duplicate_invoices(inj: Injector, batch: Batch, copied: np.ndarray, next_keys: KeySource) -> Batch:
    copies = batch.take(copied)
    copies.key = next_keys(len(copied))
    copies.issued_us = copies.issued_us + _between(inj.rng, COPY_DELAY_US, len(copied))
    copies.forced = np.ones(len(copied), dtype=bool)
    inj.record(
        "duplicate_charge",
        DETAIL["duplicate_invoice"],
        copies,
        np.arange(len(copied)),
        ref_inv_key=batch.key[copied],
        value_kind=COUNT,
        expected=1,
        actual=2,
        overcharge=copies.total,
    )
    return copies


def inject_proration(inj: Injector, batch: Batch, full_amount: np.ndarray) -> np.ndarray:
    """Proration lines off by a clear margin; returns the positions hit.

    `full_amount` is the unprorated price difference: billing it whole is the
    classic proration bug, used when it is at least 25 % off the right amount.
    """
    pos = inj.pick("proration_error", np.ones(len(batch), bool))
    right = batch.lines.amount[pos]  # one line per proration invoice: line i is invoice i's
    use_whole = (full_amount[pos] * 4 >= right * 5) & (inj.rng.random(len(pos)) < 0.5)
    up = inj.rng.random(len(pos)) < 0.6
    factor = np.where(
        up,
        _between(inj.rng, PRORATION_FACTOR_BP[0], len(pos)),
        _between(inj.rng, PRORATION_FACTOR_BP[1], len(pos)),
    )
    wrong = np.where(use_whole, full_amount[pos], half_up_div(right * factor, 10_000))
    wrong = np.where(wrong == right, 2 * right + 1, wrong)
    base_total = batch.total[pos].copy()
    batch.lines.amount[pos] = wrong
    batch.compute()
    detail = np.where(use_whole, DETAIL["full_period_not_prorated"], DETAIL["prorated_amount_off"])
    inj.record(
        "proration_error",
        detail,
        batch,
        pos,
        expected=right,
        actual=wrong,
        overcharge=np.maximum(batch.total[pos] - base_total, 0),
    )
    return pos


def choose_after_cancellation(inj: Injector, count: int) -> np.ndarray:
    return inj.pick("invoice_after_cancellation", np.ones(count, bool))


def record_after_cancellation(inj: Injector, rogue: Batch) -> None:
    inj.record(
        "invoice_after_cancellation",
        DETAIL["cycle_invoice_after_cancellation"],
        rogue,
        np.arange(len(rogue)),
        actual=rogue.total,
        overcharge=rogue.total,
    )


def inject_payments(
    inj: Injector, batch: Batch, rows: dict[str, np.ndarray], paid: np.ndarray, next_keys: KeySource
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Duplicate captures and wrong-currency payments on invoices paid in one go.

    `rows` are the batch's payment rows (ledger columns plus `pos`, the
    invoice's batch position); a wrong currency is relabelled in place, and the
    duplicate captures come back as extra rows. Also returns the positions hit.
    """
    succeeded = np.flatnonzero(rows["status"] == PAYMENT_STATUS["succeeded"])
    count = np.bincount(rows["pos"][succeeded], minlength=len(batch))
    only_row = np.full(len(batch), -1)
    only_row[rows["pos"][succeeded]] = succeeded
    eligible = paid & (count == 1)
    dup = inj.pick("duplicate_charge/payment", eligible)
    eligible[dup] = False
    wrong = inj.pick("currency_mismatch/payment", eligible)
    _relabel_currency(inj, batch, wrong, only_row[wrong], rows)
    return _duplicate_captures(inj, batch, dup, rows, only_row[dup], next_keys), np.concatenate([dup, wrong])


def _relabel_currency(
    inj: Injector, batch: Batch, pos: np.ndarray, row: np.ndarray, rows: dict[str, np.ndarray]
) -> None:
    """Same number, other currency label: the invoice-currency balance still closes."""
    currency = inj.other_currency(batch.currency[pos])
    rows["amount"][row] *= 10 ** (inj.ref.exponent[currency] - inj.ref.exponent[batch.currency[pos]])
    rows["currency"][row] = currency
    inj.record(
        "currency_mismatch",
        DETAIL["payment_currency"],
        batch,
        pos,
        pay_key=rows["key"][row],
        value_kind=CURRENCY,
        actual_currency=currency,
        noticed_us=rows["at_us"][row],
    )


def _duplicate_captures(
    inj: Injector,
    batch: Batch,
    pos: np.ndarray,
    rows: dict[str, np.ndarray],
    row: np.ndarray,
    next_keys: KeySource,
) -> dict[str, np.ndarray]:
    attempts = np.bincount(rows["pos"], minlength=len(batch))
    extra = {name: values[row].copy() for name, values in rows.items()}
    extra["key"] = next_keys(len(pos))
    extra["at_us"] = extra["at_us"] + _between(inj.rng, DUPLICATE_DELAY_US, len(pos))
    extra["attempt"] = attempts[pos] + 1
    inj.record(
        "duplicate_charge",
        DETAIL["duplicate_payment"],
        batch,
        pos,
        pay_key=extra["key"],
        expected=batch.total[pos],
        actual=2 * batch.total[pos],
        overcharge=batch.total[pos],
        noticed_us=extra["at_us"],
    )
    return extra
