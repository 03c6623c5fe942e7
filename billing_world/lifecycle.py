"""The month loop: subscriptions start, renew, change, churn, lapse and return.

Each iteration handles, with numpy masks, every subscription whose period
boundary falls in that month, so the loop runs once per month whatever the
number of customers. Decisions that shape later months (will this invoice
ever be paid? when does the subscription lapse?) are drawn when the invoice
is issued and kept as state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from billing_world.anomalies import (
    Injector,
    RecurringContext,
    choose_after_cancellation,
    inject_payments,
    inject_proration,
    inject_recurring,
    record_after_cancellation,
)
from billing_world.catalog import ADDON_FAMILIES, Customers, PriceBook, product_index
from billing_world.invoicing import Batch, Holdings, RecurringSpec, concat, proration_batch, recurring_batch
from billing_world.ledger import PAYMENT_SCHEMA, Ledger
from billing_world.money import half_up_div
from billing_world.payments import Payer, settle
from billing_world.reference import EVENT, REASON, SEGMENTS, Reference
from billing_world.timeline import DAY_US, MAX_ANCHOR_DAY, NEVER, Calendar

PENDING, LIVE, ENDED = range(3)
PERIOD_SHARE = (0.70, 0.15, 0.15)
TIER_SHARE_BY_SEGMENT = ((0.60, 0.35, 0.05), (0.25, 0.55, 0.20), (0.05, 0.30, 0.65))
SEATS_BY_SEGMENT = ((1, 5), (5, 50), (50, 500))
ADDON_AT_START = (0.20, 0.15)
CHURN_BETA = {"smb": (0.9, 6.0), "mid_market": (0.8, 9.0), "enterprise": (0.7, 14.0)}
ANOMALY_CHURN_MULTIPLIER = 2.5
FAILURE_CHURN_MULTIPLIER = 1.5
MEMORY_PERIODS = 3
UPGRADES_PER_MONTH = 0.035  # hazard per month of a period, so a yearly period is likelier to see one
P_DOWNGRADE = 0.02  # per renewal
UPGRADE_KIND_SHARE = (0.30, 0.45, 0.25)  # plan tier, seats, add-on
DOWNGRADE_KIND_SHARE = (0.35, 0.40, 0.25)
SEAT_GROWTH = (0.10, 0.50)
SEAT_SHRINK = (0.10, 0.40)
P_REACTIVATE = 0.15
REACTIVATE_AFTER_MONTHS = (1, 6)
SPIKE_HISTORY_PERIODS = 3  # an amount spike needs at least two earlier invoices as "usual"
CANCEL_REASONS = (
    "too_expensive",
    "billing_issues",
    "switched_vendor",
    "no_longer_needed",
    "missing_features",
    "company_closed",
)
EVENT_REASONS = CANCEL_REASONS + ("non_payment", "upgrade", "downgrade")
PLAN, SEATS, ADDON = range(3)


def _seats(rng: np.random.Generator, segment: np.ndarray) -> np.ndarray:
    low = np.array([b[0] for b in SEATS_BY_SEGMENT])[segment]
    high = np.array([b[1] for b in SEATS_BY_SEGMENT])[segment]
    log_uniform = np.exp(np.log(low) + rng.random(len(segment)) * (np.log(high) - np.log(low)))
    return np.clip(np.rint(log_uniform).astype(np.int64), low, high)


def pick_kind(rng: np.random.Generator, allowed: np.ndarray, share: tuple[float, ...]) -> np.ndarray:
    """A kind drawn by `share`, else the first allowed one; -1 when none is allowed."""
    kind = rng.choice(len(share), size=len(allowed), p=share)
    fine = allowed[np.arange(len(allowed)), kind]
    fallback = np.where(allowed.any(axis=1), allowed.argmax(axis=1), -1)
    return np.where(fine, kind, fallback)


class Subscriptions:
    """State of every customer's one subscription, as parallel arrays."""

    def __init__(self, customers: Customers, ref: Reference, rng: np.random.Generator) -> None:
        n, segment = customers.count, customers.segment
        self.state = np.full(n, PENDING, dtype=np.int8)
        self.period = rng.choice(len(PERIOD_SHARE), size=n, p=PERIOD_SHARE)
        self.months = ref.months_per_period[self.period]
        self.tier = np.empty(n, dtype=np.int64)
        for s, share in enumerate(TIER_SHARE_BY_SEGMENT):
            mask = segment == s
            self.tier[mask] = rng.choice(len(share), size=int(mask.sum()), p=share)
        self.qty = _seats(rng, segment)
        self.addon_qty = (rng.random((n, len(ADDON_FAMILIES))) < ADDON_AT_START) * self.qty[:, None]
        self.anchor_day = customers.signup_day.copy()
        self.next_month = np.full(n, -1)
        self.start_day = np.zeros(n, dtype=np.int64)
        self.end_day = np.zeros(n, dtype=np.int64)
        self.loyalty_day = np.full(n, NEVER)
        self.lapse_day = np.full(n, NEVER)
        self.billed = np.zeros(n, dtype=np.int64)  # periods billed so far: the clock of the memories below
        self.last_anomaly = np.full(n, -100)
        self.last_failure = np.full(n, -100)
        self.last_change = np.full(n, -100)
        self.react_month = np.full(n, -1)
        self.react_day = np.ones(n, dtype=np.int64)
        self.reactivated = np.zeros(n, dtype=bool)
        self.no_return = np.zeros(n, dtype=bool)
        self.live_since = np.zeros(n, dtype=np.int64)
        alpha = np.array([CHURN_BETA[s][0] for s in SEGMENTS])[segment]
        beta = np.array([CHURN_BETA[s][1] for s in SEGMENTS])[segment]
        self.theta = rng.beta(alpha, beta)

    def holdings(self, idx: np.ndarray) -> Holdings:
        return Holdings(self.tier[idx], self.qty[idx], self.addon_qty[idx], self.period[idx])

    def plan_product(self, idx: np.ndarray) -> np.ndarray:
        return product_index(self.tier[idx], self.period[idx])


@dataclass(frozen=True)
class Streams:
    lifecycle: np.random.Generator
    payments: np.random.Generator
    anomalies: np.random.Generator


class Simulation:
    def __init__(
        self,
        customers: Customers,
        book: PriceBook,
        calendar: Calendar,
        ref: Reference,
        streams: Streams,
        rates: dict[str, float],
    ) -> None:
        self.customers, self.book, self.calendar, self.ref = customers, book, calendar, ref
        self.rng, self.pay_rng = streams.lifecycle, streams.payments
        self.ledger = Ledger()
        self.injector = Injector(rates, streams.anomalies, book, ref, self.ledger)
        self.subs = Subscriptions(customers, ref, streams.lifecycle)
        self._next = {"invoice": 0, "payment": 0}

    def _keys(self, kind: str, n: int) -> np.ndarray:
        start = self._next[kind]
        self._next[kind] = start + n
        return np.arange(start, start + n, dtype=np.int64)

    def invoice_keys(self, n: int) -> np.ndarray:
        return self._keys("invoice", n)

    def payment_keys(self, n: int) -> np.ndarray:
        return self._keys("payment", n)

    def run(self) -> Ledger:
        for month in range(self.calendar.months):
            self.step(month)
        live = np.flatnonzero(self.subs.state == LIVE)
        self.ledger.add("intervals", cust=live, start_day=self.subs.live_since[live], end_day=NEVER)
        return self.ledger

    def step(self, month: int) -> None:
        renewing, renew_day = self.boundaries(month)
        renewing, renew_day, cancelled, cancel_day = self.churn(renewing, renew_day)
        self.downgrade(renewing, renew_day)
        new, new_day = self.start(month)
        back, back_day = self.reactivate(month)
        idx = np.concatenate([renewing, new, back])
        day = np.concatenate([renew_day, new_day, back_day])
        # A comeback bills as a cycle: only the very first invoice is a `subscription_create`.
        reason = np.concatenate(
            [
                np.full(len(renewing), REASON["subscription_cycle"]),
                np.full(len(new), REASON["subscription_create"]),
                np.full(len(back), REASON["subscription_cycle"]),
            ]
        )
        self.bill(month, idx, day, reason, cancelled, cancel_day)
        self.lapse(month)

    # --- events and state transitions -------------------------------------------------

    def event(
        self,
        sub: np.ndarray,
        name: str,
        day: np.ndarray,
        product: np.ndarray | int = -1,
        qty: np.ndarray | int = -1,
        reason: np.ndarray | int = -1,
    ) -> None:
        if len(sub):
            self.ledger.add(
                "events",
                sub=sub,
                event=EVENT[name],
                product=product,
                qty=qty,
                effective_us=day * DAY_US,
                reason=reason,
            )

    def end(self, idx: np.ndarray, day: np.ndarray) -> None:
        s = self.subs
        s.state[idx] = ENDED
        self.ledger.add("intervals", cust=idx, start_day=s.live_since[idx], end_day=day)
        back = ~s.reactivated[idx] & ~s.no_return[idx] & (self.rng.random(len(idx)) < P_REACTIVATE)
        later = self.rng.integers(REACTIVATE_AFTER_MONTHS[0], REACTIVATE_AFTER_MONTHS[1] + 1, len(idx))
        s.react_month[idx] = np.where(back, self.calendar.month_of(day) + later, -1)
        s.react_day[idx] = self.rng.integers(1, MAX_ANCHOR_DAY + 1, len(idx))

    def boundaries(self, month: int) -> tuple[np.ndarray, np.ndarray]:
        s = self.subs
        idx = np.flatnonzero((s.state == LIVE) & (s.next_month == month))
        day = self.calendar.day(month, s.anchor_day[idx])
        billed = day < s.lapse_day[idx]  # periods starting at or after a lapse are never billed
        return idx[billed], day[billed]

    def churn(self, idx: np.ndarray, day: np.ndarray) -> tuple[np.ndarray, ...]:
        s = self.subs
        hurt = s.billed[idx] - s.last_anomaly[idx] < MEMORY_PERIODS
        failed = s.billed[idx] - s.last_failure[idx] < MEMORY_PERIODS
        p = (
            s.theta[idx]
            * np.where(hurt, ANOMALY_CHURN_MULTIPLIER, 1.0)
            * np.where(failed, FAILURE_CHURN_MULTIPLIER, 1.0)
        )
        # A subscription heading for a lapse ends that way, not by cancelling.
        go = (s.lapse_day[idx] == NEVER) & (self.rng.random(len(idx)) < p)
        gone, gone_day = idx[go], day[go]
        reason = self.rng.integers(0, len(CANCEL_REASONS), len(gone))
        blame = hurt[go] & (self.rng.random(len(gone)) < 0.5)
        reason = np.where(blame, CANCEL_REASONS.index("billing_issues"), reason)
        self.event(gone, "cancelled", gone_day, reason=reason)
        self.end(gone, gone_day)
        return idx[~go], day[~go], gone, gone_day

    def downgrade(self, idx: np.ndarray, day: np.ndarray) -> None:
        """Downgrades take effect at the renewal itself: no proration."""
        s = self.subs
        pick = (s.lapse_day[idx] == NEVER) & (self.rng.random(len(idx)) < P_DOWNGRADE)
        idx, day = idx[pick], day[pick]
        allowed = np.column_stack([s.tier[idx] > 0, s.qty[idx] > 1, s.addon_qty[idx].any(axis=1)])
        kind = pick_kind(self.rng, allowed, DOWNGRADE_KIND_SHARE)
        for k, apply in ((PLAN, self._tier_down), (SEATS, self._seats_down), (ADDON, self._addon_off)):
            apply(idx[kind == k], day[kind == k])
        s.last_change[idx[kind >= 0]] = s.billed[idx[kind >= 0]] + 1

    def _tier_down(self, idx: np.ndarray, day: np.ndarray) -> None:
        self.subs.tier[idx] -= 1
        self.event(
            idx,
            "plan_changed",
            day,
            self.subs.plan_product(idx),
            self.subs.qty[idx],
            EVENT_REASONS.index("downgrade"),
        )

    def _seats_down(self, idx: np.ndarray, day: np.ndarray) -> None:
        s = self.subs
        cut = np.maximum(1, np.rint(s.qty[idx] * self.rng.uniform(*SEAT_SHRINK, len(idx)))).astype(np.int64)
        s.qty[idx] = np.maximum(1, s.qty[idx] - cut)
        self.event(idx, "quantity_changed", day, s.plan_product(idx), s.qty[idx], EVENT_REASONS.index("downgrade"))

    def _addon_off(self, idx: np.ndarray, day: np.ndarray) -> None:
        s = self.subs
        held = s.addon_qty[idx] > 0
        slot = np.where(held.all(axis=1), self.rng.integers(0, 2, len(idx)), held.argmax(axis=1))
        s.addon_qty[idx, slot] = 0
        product = product_index(np.array(ADDON_FAMILIES)[slot], s.period[idx])
        self.event(idx, "addon_removed", day, product, reason=EVENT_REASONS.index("downgrade"))

    def start(self, month: int) -> tuple[np.ndarray, np.ndarray]:
        s, c = self.subs, self.customers
        idx = np.flatnonzero((s.state == PENDING) & (c.signup_month == month))
        day = self.calendar.day(month, c.signup_day[idx])
        s.state[idx] = LIVE
        s.live_since[idx] = day
        s.loyalty_day[idx] = self.calendar.add_months(day, self.ref.loyalty_after_months)
        self.event(idx, "created", day, s.plan_product(idx), s.qty[idx])
        # Add-ons bought at sign-up start with the subscription: no proration.
        for slot, family in enumerate(ADDON_FAMILIES):
            held = np.flatnonzero(s.addon_qty[idx, slot] > 0)
            product = product_index(family, s.period[idx[held]])
            self.event(idx[held], "addon_added", day[held], product, s.addon_qty[idx[held], slot])
        return idx, day

    def reactivate(self, month: int) -> tuple[np.ndarray, np.ndarray]:
        """A returning customer restarts the plan in the event, add-ons gone, anchored anew."""
        s = self.subs
        idx = np.flatnonzero((s.state == ENDED) & (s.react_month == month))
        day = self.calendar.day(month, s.react_day[idx])
        s.state[idx] = LIVE
        s.anchor_day[idx] = s.react_day[idx]
        s.addon_qty[idx] = 0
        s.lapse_day[idx] = NEVER
        s.live_since[idx] = day
        s.react_month[idx] = -1
        s.reactivated[idx] = True
        s.last_change[idx] = s.billed[idx] + 1
        self.event(idx, "reactivated", day, s.plan_product(idx), s.qty[idx])
        return idx, day

    def lapse(self, month: int) -> None:
        s = self.subs
        idx = np.flatnonzero((s.state == LIVE) & (s.lapse_day < self.calendar.month_first[month + 1]))
        day = s.lapse_day[idx]
        self.event(idx, "lapsed", day, reason=EVENT_REASONS.index("non_payment"))
        self.end(idx, day)
        s.lapse_day[idx] = NEVER

    # --- invoices and payments --------------------------------------------------------

    def spec(
        self,
        idx: np.ndarray,
        start: np.ndarray,
        end: np.ndarray,
        reason: np.ndarray | int,
        forced: bool,
    ) -> RecurringSpec:
        """Invoices issued at their period start, at 00:00 UTC."""
        n, c = len(idx), self.customers
        return RecurringSpec(
            key=self.invoice_keys(n),
            cust=idx,
            reason=np.broadcast_to(reason, n).copy(),
            issued_us=start * DAY_US,
            start_day=start,
            end_day=end,
            currency=c.currency[idx],
            tax_bp=c.tax_bp[idx],
            loyalty_due=start >= self.subs.loyalty_day[idx],
            forced=np.full(n, forced),
        )

    def bill(
        self,
        month: int,
        idx: np.ndarray,
        day: np.ndarray,
        reason: np.ndarray,
        cancelled: np.ndarray,
        cancel_day: np.ndarray,
    ) -> None:
        s = self.subs
        end = self.calendar.add_months(day, s.months[idx])
        s.start_day[idx], s.end_day[idx], s.next_month[idx] = day, end, month + s.months[idx]
        s.billed[idx] += 1
        spec = self.spec(idx, day, end, reason, forced=False)
        batch = recurring_batch(spec, s.holdings(idx), self.book, self.ref.loyalty_bp)
        ctx = RecurringContext(
            loyalty_due=spec.loyalty_due,
            # A spike needs a clean "usual": two earlier invoices, no recent change or anomaly.
            spike_eligible=(s.billed[idx] >= SPIKE_HISTORY_PERIODS)
            & (s.billed[idx] - s.last_change[idx] >= 2)
            & (s.billed[idx] - s.last_anomaly[idx] >= SPIKE_HISTORY_PERIODS),
            doomed=s.lapse_day[idx] < NEVER,
        )
        injected = inject_recurring(self.injector, batch, ctx, self.invoice_keys)
        s.last_anomaly[injected.hit_customers] = s.billed[injected.hit_customers]
        rogue = self.after_cancellation(cancelled, cancel_day)
        batch = concat([injected.batch, rogue])
        anomalous = np.concatenate([injected.anomalous, np.ones(len(rogue), bool)])
        batch, rows = self.settle(batch)
        paid = (batch.paid_us < NEVER) & ~anomalous & ~batch.forced
        extra, hit = inject_payments(self.injector, batch, rows, paid, self.payment_keys)
        anomalous[hit] = True
        s.last_anomaly[batch.cust[hit]] = s.billed[batch.cust[hit]]
        self.record(batch, {k: np.concatenate([rows[k], extra[k]]) for k in rows})
        self.upgrade(batch, anomalous)

    def after_cancellation(self, cancelled: np.ndarray, cancel_day: np.ndarray) -> Batch:
        """The injected cycle invoice for the period after a cancellation took effect."""
        s = self.subs
        pos = choose_after_cancellation(self.injector, len(cancelled))
        idx, day = cancelled[pos], cancel_day[pos]
        s.no_return[idx] = True  # a comeback would overlap the bogus period
        s.react_month[idx] = -1
        end = self.calendar.add_months(day, s.months[idx])
        spec = self.spec(idx, day, end, REASON["subscription_cycle"], forced=True)
        rogue = recurring_batch(spec, s.holdings(idx), self.book, self.ref.loyalty_bp)
        record_after_cancellation(self.injector, rogue)
        return rogue

    def settle(self, batch: Batch) -> tuple[Batch, dict[str, np.ndarray]]:
        s, c, cust = self.subs, self.customers, batch.cust
        doomed = s.lapse_day[cust] < NEVER
        segment = c.segment[cust]
        payer = Payer(
            batch.issued_us,
            self.ref.terms_days[segment],
            batch.total,
            segment,
            c.method[cust],
            doomed,
            batch.forced,
        )
        result = settle(payer, self.ref.retry_days, self.pay_rng)
        doom = result.never_paid & ~doomed & ~batch.forced
        np.minimum.at(s.lapse_day, cust[doom], payer.due_us[doom] // DAY_US + self.ref.lapse_days)
        lapse_day = np.where(doomed | doom, s.lapse_day[cust], NEVER)
        s.last_failure[cust[result.first_failed]] = s.billed[cust[result.first_failed]]
        pos = result.rows["inv"]
        rows = {
            **{k: result.rows[k] for k in ("at_us", "amount", "status", "failure", "method", "attempt")},
            "key": self.payment_keys(len(pos)),
            "inv_key": batch.key[pos],
            "cust": cust[pos],
            "currency": batch.currency[pos].copy(),
            "pos": pos,
        }
        uncollectible_us = np.where(lapse_day < NEVER, lapse_day * DAY_US, NEVER)
        return batch.settled(result.paid_us, uncollectible_us), rows

    def record(self, batch: Batch, rows: dict[str, np.ndarray]) -> None:
        self.ledger.add_batch(batch)
        self.ledger.add("payments", **{k: rows[k] for k in PAYMENT_SCHEMA})

    def upgrade(self, batch: Batch, anomalous: np.ndarray) -> None:
        """Mid-period upgrades: an event inside the period and a proration invoice that day."""
        s, change_day = self.subs, self.book.change_day
        straddles = (batch.start_day < change_day) & (change_day < batch.end_day)
        recurring = batch.reason != REASON["subscription_update"]
        candidate = recurring & ~anomalous & ~batch.forced & ~straddles & (s.lapse_day[batch.cust] == NEVER)
        chance = 1 - (1 - UPGRADES_PER_MONTH) ** s.months[batch.cust]
        change = batch.start_day + self.rng.integers(1, batch.end_day - batch.start_day)  # strictly inside
        # An upgrade after the window end is not part of this world.
        happens = candidate & (self.rng.random(len(batch)) < chance) & (change < self.calendar.end_day)
        pos = np.flatnonzero(happens)
        idx, start, end, change = batch.cust[pos], batch.start_day[pos], batch.end_day[pos], change[pos]
        allowed = np.column_stack([s.tier[idx] < 2, np.ones(len(idx), bool), (s.addon_qty[idx] == 0).any(axis=1)])
        kind = pick_kind(self.rng, allowed, UPGRADE_KIND_SHARE)
        product, qty, unit, old_value = self._apply_upgrade(idx, kind, start, change)
        full = unit * qty - old_value
        amount = half_up_div(full * (end - change), end - start)
        spec = self.spec(idx, change, end, REASON["subscription_update"], forced=False)
        proration = proration_batch(spec, product, qty, unit, amount)
        hit = inject_proration(self.injector, proration, full)
        s.last_anomaly[idx[hit]] = s.billed[idx[hit]]
        s.last_change[idx] = s.billed[idx]
        proration, rows = self.settle(proration)
        self.record(proration, rows)

    def _apply_upgrade(
        self, idx: np.ndarray, kind: np.ndarray, start: np.ndarray, change: np.ndarray
    ) -> tuple[np.ndarray, ...]:
        """New state for each upgrade; returns the proration line's product, qty, unit and the old value."""
        s, currency = self.subs, self.customers.currency[idx]
        old_plan = s.plan_product(idx)
        old_value = self.book.price(old_plan, currency, start) * s.qty[idx]
        new_tier = np.where(kind == PLAN, s.tier[idx] + 1, s.tier[idx])
        grow = np.maximum(1, np.rint(s.qty[idx] * self.rng.uniform(*SEAT_GROWTH, len(idx)))).astype(np.int64)
        new_qty = np.where(kind == SEATS, s.qty[idx] + grow, s.qty[idx])
        free = s.addon_qty[idx] == 0
        slot = np.where(free.all(axis=1), self.rng.integers(0, 2, len(idx)), free.argmax(axis=1))
        addon = product_index(np.array(ADDON_FAMILIES)[slot], s.period[idx])
        plan = product_index(new_tier, s.period[idx])
        product = np.where(kind == ADDON, addon, plan)
        unit = self.book.price(product, currency, start)
        old_value = np.where(kind == ADDON, 0, old_value)
        s.tier[idx], s.qty[idx] = new_tier, new_qty
        is_addon = np.flatnonzero(kind == ADDON)
        s.addon_qty[idx[is_addon], slot[is_addon]] = new_qty[is_addon]
        for k, name in ((PLAN, "plan_changed"), (SEATS, "quantity_changed"), (ADDON, "addon_added")):
            m = kind == k
            self.event(idx[m], name, change[m], product[m], new_qty[m], EVENT_REASONS.index("upgrade"))
        return product, new_qty, unit, old_value
