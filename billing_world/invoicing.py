"""Invoice batches: lines priced from the book, loyalty discount, tax, headers.

One code path computes every invoice (first, cycle, proration, injected
copies), so a correct invoice and an injected anomaly differ only in the
parameters an injector changed, never in how the arithmetic is done.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np

from billing_world.catalog import ADDON_FAMILIES, PriceBook, product_index
from billing_world.money import apply_bp
from billing_world.timeline import NEVER


def sum_by(index: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros(size, dtype=np.int64)
    np.add.at(out, index, values)
    return out


@dataclass
class Lines:
    inv: np.ndarray  # position of the line's invoice in its batch
    product: np.ndarray
    qty: np.ndarray
    unit: np.ndarray
    amount: np.ndarray  # unit x qty, except proration lines whose amount the caller sets
    disc_bp: np.ndarray  # loyalty discount rate applied
    tax_bp: np.ndarray  # tax rate applied
    rate_bp: np.ndarray  # tax rate printed on the line
    proration: np.ndarray
    start_day: np.ndarray
    end_day: np.ndarray
    discount: np.ndarray = field(default=None)  # type: ignore[assignment]
    tax: np.ndarray = field(default=None)  # type: ignore[assignment]

    def take(self, rows: np.ndarray, inv: np.ndarray) -> Lines:
        values = {f.name: getattr(self, f.name)[rows] for f in fields(self) if getattr(self, f.name) is not None}
        return Lines(**{**values, "inv": inv})

    def compute(self) -> None:
        self.amount = np.where(self.proration, self.amount, self.unit * self.qty)
        self.discount = apply_bp(self.amount, self.disc_bp)
        self.tax = apply_bp(self.amount - self.discount, self.tax_bp)


@dataclass
class Batch:
    key: np.ndarray
    cust: np.ndarray
    reason: np.ndarray
    issued_us: np.ndarray
    start_day: np.ndarray
    end_day: np.ndarray
    currency: np.ndarray
    forced: np.ndarray  # always paid in the end: injected copies and post-cancellation invoices
    lines: Lines
    subtotal: np.ndarray = field(default=None)  # type: ignore[assignment]
    discount: np.ndarray = field(default=None)  # type: ignore[assignment]
    tax: np.ndarray = field(default=None)  # type: ignore[assignment]
    total: np.ndarray = field(default=None)  # type: ignore[assignment]
    paid_us: np.ndarray = field(default=None)  # type: ignore[assignment]
    uncollectible_us: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __len__(self) -> int:
        return len(self.key)

    def compute(self) -> None:
        self.lines.compute()
        n, inv = len(self), self.lines.inv
        self.subtotal = sum_by(inv, self.lines.amount, n)
        self.discount = sum_by(inv, self.lines.discount, n)
        self.tax = sum_by(inv, self.lines.tax, n)
        self.total = self.subtotal - self.discount + self.tax

    def first_line(self) -> np.ndarray:
        """Index of each invoice's first line (the plan line of a recurring invoice)."""
        return np.searchsorted(self.lines.inv, np.arange(len(self)))

    def take(self, positions: np.ndarray) -> Batch:
        """The invoices at `positions` (in that order) with their lines."""
        new_position = np.full(len(self), -1)
        new_position[positions] = np.arange(len(positions))
        kept = new_position[self.lines.inv]
        rows = np.flatnonzero(kept >= 0)
        rows = rows[np.argsort(kept[rows], kind="stable")]
        values = {
            f.name: getattr(self, f.name)[positions]
            for f in fields(self)
            if f.name != "lines" and getattr(self, f.name) is not None
        }
        return Batch(**values, lines=self.lines.take(rows, kept[rows]))

    def settled(self, paid_us: np.ndarray, uncollectible_us: np.ndarray) -> Batch:
        return replace(self, paid_us=paid_us, uncollectible_us=uncollectible_us)


def concat(batches: list[Batch]) -> Batch:
    offsets = np.cumsum([0] + [len(b) for b in batches[:-1]])
    lines = {
        f.name: np.concatenate(
            [getattr(b.lines, f.name) + (o if f.name == "inv" else 0) for b, o in zip(batches, offsets, strict=True)]
        )
        for f in fields(Lines)
        if getattr(batches[0].lines, f.name) is not None
    }
    values = {
        f.name: np.concatenate([getattr(b, f.name) for b in batches])
        for f in fields(Batch)
        if f.name != "lines" and getattr(batches[0], f.name) is not None
    }
    return Batch(**values, lines=Lines(**lines))


@dataclass(frozen=True)
class Holdings:
    """What a subscription bills for in one period."""

    tier: np.ndarray
    qty: np.ndarray
    addon_qty: np.ndarray  # [n, 2]; 0 = add-on not held
    period: np.ndarray


def recurring_lines(holdings: Holdings, start_day: np.ndarray, end_day: np.ndarray) -> Lines:
    n = len(holdings.tier)
    inv = [np.arange(n)]
    product = [product_index(holdings.tier, holdings.period)]
    qty = [holdings.qty]
    for slot, family in enumerate(ADDON_FAMILIES):
        held = np.flatnonzero(holdings.addon_qty[:, slot] > 0)
        inv.append(held)
        product.append(product_index(family, holdings.period[held]))
        qty.append(holdings.addon_qty[held, slot])
    inv_all = np.concatenate(inv)
    order = np.argsort(inv_all, kind="stable")  # plan line first within each invoice
    inv_all = inv_all[order]
    zeros = np.zeros(len(inv_all), dtype=np.int64)
    return Lines(
        inv=inv_all,
        product=np.concatenate(product)[order],
        qty=np.concatenate(qty)[order],
        unit=zeros.copy(),
        amount=zeros.copy(),
        disc_bp=zeros.copy(),
        tax_bp=zeros.copy(),
        rate_bp=zeros.copy(),
        proration=np.zeros(len(inv_all), dtype=bool),
        start_day=start_day[inv_all],
        end_day=end_day[inv_all],
    )


def price_lines(batch: Batch, book: PriceBook, invoices: np.ndarray | None = None) -> None:
    """Book price at the invoice's currency and period start, for recurring lines."""
    lines = batch.lines
    mask = ~lines.proration
    if invoices is not None:
        mask &= np.isin(lines.inv, invoices)
    inv = lines.inv[mask]
    lines.unit[mask] = book.price(lines.product[mask], batch.currency[inv], batch.start_day[inv])


@dataclass(frozen=True)
class RecurringSpec:
    key: np.ndarray
    cust: np.ndarray
    reason: np.ndarray
    issued_us: np.ndarray
    start_day: np.ndarray
    end_day: np.ndarray
    currency: np.ndarray
    tax_bp: np.ndarray
    loyalty_due: np.ndarray
    forced: np.ndarray


def recurring_batch(spec: RecurringSpec, holdings: Holdings, book: PriceBook, loyalty_bp: int) -> Batch:
    lines = recurring_lines(holdings, spec.start_day, spec.end_day)
    lines.disc_bp = np.where(spec.loyalty_due[lines.inv], loyalty_bp, 0)
    lines.tax_bp = spec.tax_bp[lines.inv].copy()
    lines.rate_bp = lines.tax_bp.copy()
    batch = Batch(
        key=spec.key,
        cust=spec.cust,
        reason=spec.reason,
        issued_us=spec.issued_us,
        start_day=spec.start_day,
        end_day=spec.end_day,
        currency=spec.currency.copy(),
        forced=spec.forced,
        lines=lines,
    )
    price_lines(batch, book)
    batch.compute()
    return batch


def proration_batch(
    spec: RecurringSpec, product: np.ndarray, qty: np.ndarray, unit: np.ndarray, amount: np.ndarray
) -> Batch:
    """One proration line per invoice; the line covers the invoice period."""
    n = len(spec.key)
    zeros = np.zeros(n, dtype=np.int64)
    lines = Lines(
        inv=np.arange(n),
        product=product,
        qty=qty,
        unit=unit,
        amount=amount,
        disc_bp=zeros,  # the loyalty discount applies to recurring lines only
        tax_bp=spec.tax_bp.copy(),
        rate_bp=spec.tax_bp.copy(),
        proration=np.ones(n, dtype=bool),
        start_day=spec.start_day,
        end_day=spec.end_day,
    )
    batch = Batch(
        spec.key,
        spec.cust,
        spec.reason,
        spec.issued_us,
        spec.start_day,
        spec.end_day,
        spec.currency.copy(),
        spec.forced,
        lines,
    )
    batch.compute()
    return batch


def unsettled(batch: Batch) -> Batch:
    never = np.full(len(batch), NEVER)
    return batch.settled(never, never.copy())
