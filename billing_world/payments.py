"""Payment attempts for a batch of invoices: terms, failures, dunning, lapses.

Outcomes are drawn when an invoice is issued, so the month loop knows at once
whether (and when) its subscription lapses and stops billing periods that
start after the lapse. Paid invoices are never paid more than 20 days past
due, so a paid invoice can never collide with the 30-day lapse rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from billing_world.reference import ENTERPRISE, METHOD, PAYMENT_STATUS, SMB
from billing_world.timeline import DAY_US, HOUR_US, MINUTE_US, NEVER

FIRST_FAILURE = {"card": 0.07, "ach": 0.03, "sepa_debit": 0.03, "paypal": 0.02, "bank_transfer": 0.01}
RETRY_SUCCESS = 0.45
RECOVERY_BY_TRANSFER = 0.35
LATE_SHARE = 0.12
MAX_LATE_START_DAYS = 10  # a late first attempt plus the day-7 retry still ends before due + 20
RECOVERY_DAYS_AFTER_DUE = (8, 20)
SPLIT_SHARE = 0.08
SPLIT_GAP_DAYS = (20, 35)
FAILURE_CODES = (
    "card_declined",
    "insufficient_funds",
    "expired_card",
    "do_not_honor",
    "account_closed",
    "debit_not_authorized",
    "payment_rejected",
)
FAILURE_CODES_BY_METHOD = {
    "card": (0, 1, 2, 3),
    "ach": (1, 4, 5),
    "sepa_debit": (1, 4, 5),
    "paypal": (6, 1),
    "bank_transfer": (6,),
}
ROW_FIELDS = ("inv", "at_us", "amount", "status", "failure", "method", "attempt")


def _by_method(table: dict[str, float]) -> np.ndarray:
    out = np.zeros(len(METHOD))
    for name, value in table.items():
        out[METHOD[name]] = value
    return out


FIRST_FAILURE_BY_METHOD = _by_method(FIRST_FAILURE)


@dataclass(frozen=True)
class Payer:
    """Per invoice: who pays, on what terms, and what is already decided."""

    issued_us: np.ndarray
    terms_days: np.ndarray
    total: np.ndarray
    segment: np.ndarray
    method: np.ndarray
    doomed: np.ndarray  # the subscription already lapses: every attempt fails
    forced: np.ndarray  # always paid in the end

    @property
    def due_us(self) -> np.ndarray:
        return self.issued_us + self.terms_days * DAY_US


@dataclass
class Settlement:
    paid_us: np.ndarray
    first_failed: np.ndarray
    never_paid: np.ndarray
    split: np.ndarray
    rows: dict[str, np.ndarray]


def _uniform_us(rng: np.random.Generator, low: np.ndarray | int, high: np.ndarray | int, n: int) -> np.ndarray:
    return low + (rng.random(n) * (np.asarray(high) - low)).astype(np.int64)


def first_attempt_us(payer: Payer, rng: np.random.Generator) -> np.ndarray:
    n = len(payer.total)
    time_of_day = _uniform_us(rng, 7 * HOUR_US, 19 * HOUR_US, n)
    autopay = payer.issued_us + _uniform_us(rng, MINUTE_US, 4 * HOUR_US, n)
    in_terms = payer.issued_us + rng.integers(0, payer.terms_days + 1) * DAY_US + time_of_day
    late = payer.due_us + rng.integers(1, MAX_LATE_START_DAYS + 1, n) * DAY_US + time_of_day
    is_late = rng.random(n) < LATE_SHARE
    return np.where(payer.segment == SMB, autopay, np.where(is_late, late, in_terms))


def _failure_codes(rng: np.random.Generator, method: np.ndarray) -> np.ndarray:
    width = max(len(v) for v in FAILURE_CODES_BY_METHOD.values())
    table = np.zeros((len(METHOD), width), dtype=np.int64)
    sizes = np.ones(len(METHOD), dtype=np.int64)
    for name, pool in FAILURE_CODES_BY_METHOD.items():
        table[METHOD[name], : len(pool)] = pool
        sizes[METHOD[name]] = len(pool)
    return table[method, rng.integers(0, sizes[method])]


def _rows(
    inv: np.ndarray,
    at_us: np.ndarray,
    amount: np.ndarray,
    ok: np.ndarray,
    method: np.ndarray,
    attempt: np.ndarray | int,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    failure = np.where(ok, -1, _failure_codes(rng, method))
    status = np.where(ok, PAYMENT_STATUS["succeeded"], PAYMENT_STATUS["failed"])
    values = (inv, at_us, amount, status, failure, method, np.broadcast_to(attempt, len(inv)))
    return dict(zip(ROW_FIELDS, values, strict=True))


def settle(payer: Payer, retry_days: tuple[int, ...], rng: np.random.Generator) -> Settlement:
    n = len(payer.total)
    inv = np.arange(n)
    t0 = first_attempt_us(payer, rng)
    failed = payer.doomed | (rng.random(n) < FIRST_FAILURE_BY_METHOD[payer.method])
    retry_ok = (rng.random((n, len(retry_days))) < RETRY_SUCCESS) & ~payer.doomed[:, None]
    first_ok = np.where(retry_ok.any(axis=1), retry_ok.argmax(axis=1), len(retry_days))
    exhausted = failed & (first_ok == len(retry_days))
    recovered = exhausted & ~payer.doomed & (payer.forced | (rng.random(n) < RECOVERY_BY_TRANSFER))
    split = ~failed & (payer.segment == ENTERPRISE) & (payer.method != METHOD["card"])
    split &= ~payer.forced & (rng.random(n) < SPLIT_SHARE)
    first_part = np.where(split, payer.total // 2, payer.total)

    chunks = [_rows(inv, t0, first_part, ~failed, payer.method, 1, rng)]
    paid_us = np.where(failed, NEVER, t0)
    for r, days in enumerate(retry_days):
        due = np.flatnonzero(failed & (first_ok >= r))
        at = t0[due] + days * DAY_US
        ok = first_ok[due] == r
        chunks.append(_rows(due, at, payer.total[due], ok, payer.method[due], r + 2, rng))
        paid_us[due[ok]] = at[ok]

    rec = np.flatnonzero(recovered)
    low = np.maximum(
        t0[rec] + retry_days[-1] * DAY_US + HOUR_US, payer.due_us[rec] + RECOVERY_DAYS_AFTER_DUE[0] * DAY_US
    )
    rec_at = _uniform_us(rng, low, payer.due_us[rec] + RECOVERY_DAYS_AFTER_DUE[1] * DAY_US, len(rec))
    transfer = np.full(len(rec), METHOD["bank_transfer"])
    chunks.append(_rows(rec, rec_at, payer.total[rec], np.ones(len(rec), bool), transfer, len(retry_days) + 2, rng))
    paid_us[rec] = rec_at

    parts = np.flatnonzero(split)
    gap = rng.integers(*SPLIT_GAP_DAYS, len(parts), endpoint=True) * DAY_US
    latest = payer.due_us[parts] + RECOVERY_DAYS_AFTER_DUE[1] * DAY_US
    part_at = np.minimum(t0[parts] + gap, latest)
    rest = payer.total[parts] - first_part[parts]
    chunks.append(_rows(parts, part_at, rest, np.ones(len(parts), bool), payer.method[parts], 2, rng))
    paid_us[parts] = part_at

    rows = {f: np.concatenate([c[f] for c in chunks]) for f in ROW_FIELDS}
    never = exhausted & ~recovered
    return Settlement(paid_us, failed, never, split, rows)
