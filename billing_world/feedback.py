"""Credit notes, support tickets and survey answers, driven by what happened.

These are drawn after the month loop from the settled history, so their rates
can depend on outcomes: an overcharged customer complains and scores invoice
clarity low, a failed card raises a payment ticket. Error subcategories
(duplicate_charge, wrong_amount, missing_discount, wrong_tax) and credit notes
for billing_error / duplicate_charge only ever point at truly wrong invoices,
because metrics.md counts those as "invoices with error".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from billing_world.ledger import broadcast_columns
from billing_world.reference import ANOMALY, EVENT, INVOICE_STATUS, PAYMENT_STATUS, REASON
from billing_world.timeline import DAY_US, HOUR_US, Calendar
from orchestration.lib import contract

CREDIT_KIND = {k: i for i, k in enumerate(contract.CREDIT_NOTE_KINDS)}
CREDIT_REASON = {k: i for i, k in enumerate(contract.CREDIT_NOTE_REASONS)}
CATEGORY = {k: i for i, k in enumerate(contract.TICKET_CATEGORIES)}
SUBCATEGORY = {k: i for i, k in enumerate(contract.TICKET_SUBCATEGORIES)}
SURVEY = {k: i for i, k in enumerate(contract.SURVEYS)}
PRIORITIES = ("low", "normal", "high", "urgent")
TICKET_CHANNELS = ("email", "chat", "phone", "web")
TICKET_STATUSES = ("solved", "open", "pending")
COMMENTS = (
    (
        "We were charged twice this month.",
        "The invoice total does not match our contract.",
        "Hard to understand what we are paying for.",
        "Support took far too long.",
    ),
    ("It's fine.", "The invoice could be clearer.", "Okay overall."),
    ("Clear and simple invoices.", "Great support, thanks!", "Billing just works."),
)
COMMENT_TEXTS = tuple(text for pool in COMMENTS for text in pool)

ERROR_SUBCATEGORY = {
    "duplicate_charge": "duplicate_charge",
    "price_mismatch": "wrong_amount",
    "proration_error": "wrong_amount",
    "total_mismatch": "wrong_amount",
    "amount_spike": "wrong_amount",
    "currency_mismatch": "wrong_amount",
    "invoice_after_cancellation": "wrong_amount",
    "discount_error": "missing_discount",
    "tax_error": "wrong_tax",
}
ALWAYS_NOTICED = ("duplicate_charge", "currency_mismatch", "invoice_after_cancellation", "amount_spike")
P_COMPLAIN_OVERCHARGED = 0.85
P_COMPLAIN_OTHERWISE = 0.10
P_CREDIT_OVERCHARGE = 0.70
P_CREDIT_AFTER_CANCELLATION = 0.85
BACKGROUND_CREDITS = {  # reason: (share of clean paid invoices, kind, share of total low, high)
    "goodwill": (0.004, "credit", 500, 1_500),
    "order_change": (0.002, "credit", 1_000, 5_000),
    "product_unsatisfactory": (0.002, "refund", 2_000, 10_000),
    "other": (0.001, "credit", 500, 2_000),
}
BACKGROUND_TICKETS_PER_MONTH = {  # (category, subcategory): tickets per active customer-month
    ("technical", None): 0.04,
    ("account", None): 0.01,
    ("other", "other"): 0.005,
    ("billing", "other"): 0.005,
}
P_PAYMENT_FAILED_TICKET = 0.35
P_LATE_INVOICE_TICKET_ON_MISSED = 0.25
P_CONFUSING = 0.006
P_CONFUSING_PRORATION = 0.03
P_LATE_INVOICE = 0.002
P_CANCELLATION_TICKET = 0.25
P_RATED = 0.5
P_CSAT = 0.45
P_CLARITY_CLEAN = 0.06
P_CLARITY_ERROR = 0.45
P_NPS = 0.15
P_COMMENT = 0.25
CLARITY_GOOD = (0.02, 0.05, 0.18, 0.40, 0.35)
CLARITY_BAD = (0.45, 0.35, 0.15, 0.04, 0.01)
CSAT_BY_RATING = {  # satisfaction code (-1 unrated, 0 good, 1 bad) -> scores 1..5
    -1: (0.05, 0.10, 0.25, 0.35, 0.25),
    0: (0.0, 0.0, 0.05, 0.35, 0.60),
    1: (0.45, 0.35, 0.20, 0.0, 0.0),
}
NPS_CALM = (0.02, 0.01, 0.02, 0.03, 0.04, 0.06, 0.07, 0.15, 0.20, 0.20, 0.20)
NPS_HURT = (0.12, 0.08, 0.10, 0.10, 0.10, 0.12, 0.10, 0.10, 0.08, 0.05, 0.05)
NPS_MEMORY_DAYS = 180
SATISFACTION = {k: i for i, k in enumerate(contract.SATISFACTION)}

CREDIT_SCHEMA = {
    "inv_key": pl.Int64,
    "issued_us": pl.Int64,
    "amount": pl.Int64,
    "currency": pl.Int64,
    "kind": pl.Int64,
    "reason": pl.Int64,
}
TICKET_SCHEMA = {
    "cust": pl.Int64,
    "created_us": pl.Int64,
    "solved_us": pl.Int64,
    "category": pl.Int64,
    "subcategory": pl.Int64,
    "inv_key": pl.Int64,
    "priority": pl.Int64,
    "status": pl.Int64,
    "channel": pl.Int64,
    "satisfaction": pl.Int64,
}
SURVEY_SCHEMA = {
    "cust": pl.Int64,
    "survey": pl.Int64,
    "score": pl.Int64,
    "responded_us": pl.Int64,
    "inv_key": pl.Int64,
    "comment": pl.Int64,
}


def _between_us(rng: np.random.Generator, low: int, high: int, n: int) -> np.ndarray:
    return low + (rng.random(n) * (high - low)).astype(np.int64)


def _frame(columns: dict[str, np.ndarray | int], schema: dict) -> pl.DataFrame:
    values = broadcast_columns(columns)
    return pl.DataFrame({k: values[k] for k in schema}, schema=schema)


@dataclass(frozen=True)
class History:
    """The settled world the feedback reacts to (keyed frames after the window cut)."""

    invoices: pl.DataFrame
    payments: pl.DataFrame
    anomalies: pl.DataFrame
    events: pl.DataFrame
    intervals: pl.DataFrame
    calendar: Calendar

    @property
    def end_us(self) -> int:
        return self.calendar.end_us

    def errors(self) -> pl.DataFrame:
        """Truly wrong invoices with what the customer would notice."""
        noticed = pl.col("overcharge") > 0
        for name in ALWAYS_NOTICED:
            noticed = noticed | (pl.col("anomaly") == ANOMALY[name])
        return (
            self.anomalies.filter(pl.col("inv_key") >= 0)
            .join(
                self.invoices.select(
                    inv_key="key",
                    total="total",
                    currency="currency",
                    status="status",
                    paid_us="paid_us",
                    issued_us="issued_us",
                ),
                on="inv_key",
                maintain_order="left",
            )
            .with_columns(noticed=noticed)
        )


def credit_notes(history: History, rng: np.random.Generator) -> pl.DataFrame:
    frames = [_error_credits(history, rng), _background_credits(history, rng)]
    return pl.concat(frames).filter(pl.col("issued_us") < history.end_us)


def _error_credits(history: History, rng: np.random.Generator) -> pl.DataFrame:
    err = history.errors().filter(pl.col("status") != INVOICE_STATUS["uncollectible"])
    anomaly = err["anomaly"].to_numpy()
    duplicate = anomaly == ANOMALY["duplicate_charge"]
    after = anomaly == ANOMALY["invoice_after_cancellation"]
    overcharge = err["overcharge"].to_numpy()
    total = err["total"].to_numpy()
    chance = np.where(
        duplicate,
        1.0,
        np.where(after, P_CREDIT_AFTER_CANCELLATION, np.where(overcharge > 0, P_CREDIT_OVERCHARGE, 0.0)),
    )
    go = rng.random(len(err)) < chance
    paid = err["status"].to_numpy() == INVOICE_STATUS["paid"]
    # A refund follows the money; a duplicate capture is refunded after the capture itself.
    anchor = np.where(
        paid,
        np.maximum(err["paid_us"].fill_null(0).to_numpy(), err["noticed_us"].to_numpy()),
        err["issued_us"].to_numpy(),
    )
    issued = anchor + _between_us(rng, 2 * DAY_US, 14 * DAY_US, len(err))
    amount = np.where(duplicate | after, total, np.minimum(overcharge, total))
    reason = np.where(duplicate, CREDIT_REASON["duplicate_charge"], CREDIT_REASON["billing_error"])
    kind = np.where(paid, CREDIT_KIND["refund"], CREDIT_KIND["credit"])
    keep = go & (amount > 0)
    return _frame(
        {
            "inv_key": err["inv_key"].to_numpy()[keep],
            "issued_us": issued[keep],
            "amount": amount[keep],
            "currency": err["currency"].to_numpy()[keep],
            "kind": kind[keep],
            "reason": reason[keep],
        },
        CREDIT_SCHEMA,
    )


def _background_credits(history: History, rng: np.random.Generator) -> pl.DataFrame:
    clean = history.invoices.filter(
        (pl.col("status") == INVOICE_STATUS["paid"]) & ~pl.col("key").is_in(history.anomalies["inv_key"].implode())
    )
    n = len(clean)
    shares = np.array([v[0] for v in BACKGROUND_CREDITS.values()])
    draw = rng.random(n)
    which = np.searchsorted(np.cumsum(shares), draw, side="right")  # == len(shares): no credit
    parts = []
    for code, (reason, (_, kind, low, high)) in enumerate(BACKGROUND_CREDITS.items()):
        rows = clean.filter(pl.Series(which == code))
        share = rng.integers(low, high, len(rows), endpoint=True)
        total = rows["total"].to_numpy()
        amount = np.clip((total * share) // 10_000, 1, total)
        parts.append(
            _frame(
                {
                    "inv_key": rows["key"].to_numpy(),
                    "issued_us": rows["paid_us"].to_numpy() + _between_us(rng, 2 * DAY_US, 30 * DAY_US, len(rows)),
                    "amount": amount,
                    "currency": rows["currency"].to_numpy(),
                    "kind": CREDIT_KIND[kind],
                    "reason": CREDIT_REASON[reason],
                },
                CREDIT_SCHEMA,
            ).filter(pl.col("amount") > 0)
        )
    return pl.concat(parts)


@dataclass(frozen=True)
class TicketDraft:
    cust: np.ndarray
    created_us: np.ndarray
    category: int | np.ndarray
    subcategory: int | np.ndarray
    inv_key: int | np.ndarray
    bad_share: float


def _tickets_from(draft: TicketDraft) -> pl.DataFrame:
    return _frame(
        {
            "cust": draft.cust,
            "created_us": draft.created_us,
            "category": draft.category,
            "subcategory": draft.subcategory,
            "inv_key": draft.inv_key,
            "solved_us": 0,
            "priority": 0,
            "status": 0,
            "channel": 0,
            "satisfaction": -1,
        },
        TICKET_SCHEMA,
    ).with_columns(bad_share=pl.lit(draft.bad_share))


def _error_tickets(history: History, rng: np.random.Generator) -> TicketDraft:
    err = history.errors()
    lookup = np.full(len(ANOMALY), -1)
    for name in ERROR_SUBCATEGORY:
        lookup[ANOMALY[name]] = SUBCATEGORY[ERROR_SUBCATEGORY[name]]
    anomaly = err["anomaly"].to_numpy()
    noticed = err["noticed"].to_numpy()
    subcategory = lookup[anomaly]
    # An undercharged discount is still wrong, but "missing discount" would not describe it.
    subcategory = np.where((anomaly == ANOMALY["discount_error"]) & ~noticed, SUBCATEGORY["wrong_amount"], subcategory)
    go = rng.random(len(err)) < np.where(noticed, P_COMPLAIN_OVERCHARGED, P_COMPLAIN_OTHERWISE)
    created = err["noticed_us"].to_numpy() + _between_us(rng, 2 * HOUR_US, 10 * DAY_US, len(err))
    return TicketDraft(
        err["cust"].to_numpy()[go],
        created[go],
        CATEGORY["billing"],
        subcategory[go],
        err["inv_key"].to_numpy()[go],
        0.6,
    )


def _payment_failed_tickets(history: History, rng: np.random.Generator) -> TicketDraft:
    first = history.payments.filter((pl.col("attempt") == 1) & (pl.col("status") == PAYMENT_STATUS["failed"]))
    go = rng.random(len(first)) < P_PAYMENT_FAILED_TICKET
    created = first["at_us"].to_numpy() + _between_us(rng, HOUR_US, 2 * DAY_US, len(first))
    return TicketDraft(
        first["cust"].to_numpy()[go],
        created[go],
        CATEGORY["billing"],
        SUBCATEGORY["payment_failed"],
        first["inv_key"].to_numpy()[go],
        0.3,
    )


def _missed_invoice_tickets(history: History, rng: np.random.Generator) -> TicketDraft:
    missed = history.anomalies.filter(pl.col("anomaly") == ANOMALY["missed_invoice"])
    go = rng.random(len(missed)) < P_LATE_INVOICE_TICKET_ON_MISSED
    created = missed["start_day"].to_numpy() * DAY_US + _between_us(rng, 3 * DAY_US, 15 * DAY_US, len(missed))
    return TicketDraft(
        missed["cust"].to_numpy()[go], created[go], CATEGORY["billing"], SUBCATEGORY["late_invoice"], -1, 0.4
    )


def _clean_invoice_tickets(history: History, rng: np.random.Generator) -> TicketDraft:
    clean = history.invoices.filter(~pl.col("key").is_in(history.anomalies["inv_key"].implode()))
    proration = clean["reason"].to_numpy() == REASON["subscription_update"]
    draw = rng.random(len(clean))
    confusing = draw < np.where(proration, P_CONFUSING_PRORATION, P_CONFUSING)
    late = ~confusing & (draw > 1 - P_LATE_INVOICE)
    go = confusing | late
    created = clean["issued_us"].to_numpy() + _between_us(rng, DAY_US, 10 * DAY_US, len(clean))
    subcategory = np.where(confusing, SUBCATEGORY["confusing_invoice"], SUBCATEGORY["late_invoice"])
    return TicketDraft(
        clean["cust"].to_numpy()[go],
        created[go],
        CATEGORY["billing"],
        subcategory[go],
        clean["key"].to_numpy()[go],
        0.3,
    )


def _refund_request_tickets(credits: pl.DataFrame, history: History, rng: np.random.Generator) -> TicketDraft:
    asked = credits.filter(pl.col("reason") == CREDIT_REASON["product_unsatisfactory"]).join(
        history.invoices.select(inv_key="key", cust="cust"), on="inv_key", maintain_order="left"
    )
    created = asked["issued_us"].to_numpy() - _between_us(rng, DAY_US, 3 * DAY_US, len(asked))
    return TicketDraft(
        asked["cust"].to_numpy(),
        created,
        CATEGORY["billing"],
        SUBCATEGORY["refund_request"],
        asked["inv_key"].to_numpy(),
        0.4,
    )


def _cancellation_tickets(history: History, rng: np.random.Generator) -> TicketDraft:
    gone = history.events.filter(pl.col("event") == EVENT["cancelled"])
    go = rng.random(len(gone)) < P_CANCELLATION_TICKET
    created = gone["effective_us"].to_numpy() - _between_us(rng, DAY_US, 20 * DAY_US, len(gone))
    return TicketDraft(
        gone["sub"].to_numpy()[go], created[go], CATEGORY["account"], SUBCATEGORY["cancellation"], -1, 0.3
    )


def _background_tickets(history: History, rng: np.random.Generator) -> list[TicketDraft]:
    spans = history.intervals
    start = spans["start_day"].to_numpy() * DAY_US
    length = spans["end_day"].to_numpy() * DAY_US - start
    drafts = []
    for (category, subcategory), rate in BACKGROUND_TICKETS_PER_MONTH.items():
        count = rng.poisson(rate * length / (30.4 * DAY_US))
        owner = np.repeat(np.arange(len(spans)), count)
        created = start[owner] + (rng.random(len(owner)) * length[owner]).astype(np.int64)
        sub = SUBCATEGORY[subcategory] if subcategory else -1
        drafts.append(TicketDraft(spans["cust"].to_numpy()[owner], created, CATEGORY[category], sub, -1, 0.25))
    return drafts


def _finish_tickets(frame: pl.DataFrame, history: History, rng: np.random.Generator) -> pl.DataFrame:
    n = len(frame)
    created = frame["created_us"].to_numpy()
    solved = created + (np.exp(rng.normal(3.0, 1.0, n)) * HOUR_US).astype(np.int64)
    done = solved < history.end_us
    rated = done & (rng.random(n) < P_RATED)
    bad = rng.random(n) < frame["bad_share"].to_numpy()
    waiting = np.where(rng.random(n) < 0.7, TICKET_STATUSES.index("open"), TICKET_STATUSES.index("pending"))
    billing = frame["category"].to_numpy() == CATEGORY["billing"]
    return (
        frame.drop("bad_share")
        .with_columns(
            solved_us=pl.Series(np.where(done, solved, 0)),
            status=pl.Series(np.where(done, TICKET_STATUSES.index("solved"), waiting)),
            satisfaction=pl.Series(np.where(rated, np.where(bad, SATISFACTION["bad"], SATISFACTION["good"]), -1)),
            priority=pl.Series(
                rng.choice(len(PRIORITIES), n, p=(0.25, 0.5, 0.2, 0.05)) + billing.astype(np.int64)
            ).clip(0, len(PRIORITIES) - 1),
            channel=pl.Series(rng.choice(len(TICKET_CHANNELS), n, p=(0.45, 0.3, 0.1, 0.15))),
        )
        .with_columns(solved_us=pl.when(pl.Series(done)).then(pl.col("solved_us")))
    )


def tickets(
    history: History, credits: pl.DataFrame, customers_created_us: np.ndarray, rng: np.random.Generator
) -> pl.DataFrame:
    drafts = [
        _error_tickets(history, rng),
        _payment_failed_tickets(history, rng),
        _missed_invoice_tickets(history, rng),
        _clean_invoice_tickets(history, rng),
        _refund_request_tickets(credits, history, rng),
        _cancellation_tickets(history, rng),
        *_background_tickets(history, rng),
    ]
    frame = pl.concat([_tickets_from(d) for d in drafts])
    created = frame["created_us"].to_numpy()
    possible = (created < history.end_us) & (created >= customers_created_us[frame["cust"].to_numpy()])
    frame = frame.filter(pl.Series(possible)).sort("created_us", "cust", maintain_order=True)
    return _finish_tickets(frame, history, rng)


def _scores(rng: np.random.Generator, table: tuple[float, ...], n: int, lowest: int) -> np.ndarray:
    return rng.choice(len(table), size=n, p=np.array(table) / np.sum(table)) + lowest


def _comments(rng: np.random.Generator, score: np.ndarray, low: int, high: int) -> np.ndarray:
    mood = np.where(score <= low, 0, np.where(score >= high, 2, 1))
    starts = np.cumsum([0] + [len(p) for p in COMMENTS[:-1]])
    sizes = np.array([len(p) for p in COMMENTS])
    pick = starts[mood] + rng.integers(0, sizes[mood])
    return np.where(rng.random(len(score)) < P_COMMENT, pick, -1)


def _survey_frame(cust, survey: str, score, responded_us, inv_key, rng, low: int, high: int) -> pl.DataFrame:
    return _frame(
        {
            "cust": cust,
            "survey": SURVEY[survey],
            "score": score,
            "responded_us": responded_us,
            "inv_key": inv_key,
            "comment": _comments(rng, np.asarray(score), low, high),
        },
        SURVEY_SCHEMA,
    )


def _csat(tickets_: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    solved = tickets_.filter(pl.col("solved_us").is_not_null())
    go = rng.random(len(solved)) < P_CSAT
    solved = solved.filter(pl.Series(go))
    rating = solved["satisfaction"].to_numpy()
    score = np.zeros(len(solved), dtype=np.int64)
    for value, table in CSAT_BY_RATING.items():
        mask = rating == value
        score[mask] = _scores(rng, table, int(mask.sum()), 1)
    responded = solved["solved_us"].to_numpy() + _between_us(rng, HOUR_US, 48 * HOUR_US, len(solved))
    return _survey_frame(solved["cust"].to_numpy(), "csat", score, responded, solved["inv_key"].to_numpy(), rng, 2, 4)


def _invoice_clarity(history: History, rng: np.random.Generator) -> pl.DataFrame:
    err = history.errors().filter(pl.col("noticed"))
    error_keys = err["inv_key"].to_numpy()
    invoices = history.invoices
    is_error = np.isin(invoices["key"].to_numpy(), error_keys)
    go = rng.random(len(invoices)) < np.where(is_error, P_CLARITY_ERROR, P_CLARITY_CLEAN)
    hurt = is_error[go]
    score = np.where(hurt, _scores(rng, CLARITY_BAD, int(go.sum()), 1), _scores(rng, CLARITY_GOOD, int(go.sum()), 1))
    responded = invoices["issued_us"].to_numpy()[go] + _between_us(rng, HOUR_US, 7 * DAY_US, int(go.sum()))
    return _survey_frame(
        invoices["cust"].to_numpy()[go],
        "invoice_clarity",
        score,
        responded,
        invoices["key"].to_numpy()[go],
        rng,
        2,
        4,
    )


def _nps(history: History, rng: np.random.Generator) -> pl.DataFrame:
    spans, cal = history.intervals, history.calendar
    start, end, cust = (spans[c].to_numpy() for c in ("start_day", "end_day", "cust"))
    err = history.errors()
    err_cust, err_at = err["cust"].to_numpy(), err["noticed_us"].to_numpy()
    parts = []
    for month in range(0, cal.months, 3):
        day = int(cal.month_first[month])
        active = cust[(start <= day) & (day < end)]
        asked = active[rng.random(len(active)) < P_NPS]
        recent = (err_at < day * DAY_US) & (err_at >= (day - NPS_MEMORY_DAYS) * DAY_US)
        hurt = np.isin(asked, err_cust[recent])
        score = np.where(hurt, _scores(rng, NPS_HURT, len(asked), 0), _scores(rng, NPS_CALM, len(asked), 0))
        responded = day * DAY_US + _between_us(rng, 0, 28 * DAY_US, len(asked))
        parts.append(_survey_frame(asked, "nps", score, responded, -1, rng, 6, 9))
    return pl.concat(parts) if parts else pl.DataFrame(schema=SURVEY_SCHEMA)


def surveys(history: History, tickets_: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    frame = pl.concat([_invoice_clarity(history, rng), _csat(tickets_, rng), _nps(history, rng)])
    return frame.filter(pl.col("responded_us") < history.end_us)
