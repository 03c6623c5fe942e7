"""Entry point: simulate a seeded, deterministic billing world.

`simulate_world` returns clean contract-shaped frames plus ground truth; the
delivery half (batch files, formats, bad rows) is separate. One seed gives one
world: every random draw comes from streams spawned from
`Generator(PCG64(seed))` in a fixed order.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl
from numpy.random import PCG64, Generator

from billing_world import catalog, feedback
from billing_world.assemble import Assembler, error_invoices, parameters
from billing_world.lifecycle import Simulation, Streams
from billing_world.reference import ANOMALY_TYPES, load_reference
from billing_world.timeline import Calendar
from billing_world.window import cut


@dataclass(frozen=True)
class WorldConfig:
    customers: int = 2000
    months: int = 24
    start: datetime.date = datetime.date(2024, 1, 1)  # first of a month
    seed: int = 7
    anomaly_rate: float = 0.01  # per-type share of eligible documents; 0 = clean world
    anomaly_rates: Mapping[str, float] | None = None  # per-type override

    def __post_init__(self) -> None:
        unknown = set(self.anomaly_rates or {}) - set(ANOMALY_TYPES)
        if unknown:
            raise ValueError(f"unknown anomaly types {sorted(unknown)}; known: {ANOMALY_TYPES}")
        if self.customers < 1 or self.months < 1:
            raise ValueError("a world needs at least one customer and one month")
        if self.start.day != 1:
            raise ValueError("the window starts on the first of a month")
        bad = {k: v for k, v in self.rates().items() if not 0.0 <= v <= 1.0}
        if bad:
            raise ValueError(f"anomaly rates must be within [0, 1]: {bad}")

    def rates(self) -> dict[str, float]:
        overrides = dict(self.anomaly_rates or {})
        return {name: float(overrides.get(name, self.anomaly_rate)) for name in ANOMALY_TYPES}


@dataclass
class SimulatedWorld:
    tables: dict[str, pl.DataFrame]  # one per contract source, contract columns in contract order
    truth: dict[str, pl.DataFrame]  # anomalies, churn_events, error_invoices, parameters


STREAMS = ("catalog", "lifecycle", "payments", "anomalies", "feedback")


def simulate_world(config: WorldConfig) -> SimulatedWorld:
    ref = load_reference()
    calendar = Calendar.build(config.start, config.months)
    rng = dict(zip(STREAMS, Generator(PCG64(config.seed)).spawn(len(STREAMS)), strict=True))
    customers = catalog.build_customers(rng["catalog"], config.customers, calendar, ref)
    book = catalog.build_price_book(calendar, ref)
    fx_rates = catalog.build_fx_rates(rng["catalog"], calendar, ref)
    streams = Streams(rng["lifecycle"], rng["payments"], rng["anomalies"])
    # The ledger's numpy chunks die here: only the concatenated frames live on.
    frames = cut(Simulation(customers, book, calendar, ref, streams, config.rates()).run().frames(), calendar.end_day)
    history = feedback.History(
        frames["invoices"],
        frames["payments"],
        frames["anomalies"],
        frames["events"],
        frames["intervals"],
        calendar,
    )
    credits = feedback.credit_notes(history, rng["feedback"])
    created_us = customers.frame["created_at"].cast(pl.Int64).to_numpy()
    tickets = feedback.tickets(history, credits, created_us, rng["feedback"])
    surveys = feedback.surveys(history, tickets, rng["feedback"])
    return _assemble(Assembler(ref, customers), frames, credits, tickets, surveys, book, fx_rates)


def _assemble(
    asm: Assembler,
    frames: dict[str, pl.DataFrame],
    credits: pl.DataFrame,
    tickets: pl.DataFrame,
    surveys: pl.DataFrame,
    book: catalog.PriceBook,
    fx_rates: pl.DataFrame,
) -> SimulatedWorld:
    invoice_ids = asm.invoice_ids(frames["invoices"])
    pay_ids = asm.payment_ids(frames["payments"])
    tables = {
        "customers": asm.customers.frame,
        "products": book.frame,
        "subscription_events": asm.events(frames["events"]),
        "invoices": asm.invoices(frames["invoices"], invoice_ids),
        "invoice_lines": asm.lines(frames["lines"], frames["invoices"], invoice_ids),
        "payments": asm.payments(frames["payments"], invoice_ids, pay_ids),
        "credit_notes": asm.credit_notes(credits, invoice_ids),
        "support_tickets": asm.tickets(tickets, invoice_ids),
        "survey_responses": asm.surveys(surveys, invoice_ids),
        "fx_rates": fx_rates,
    }
    anomalies = asm.anomalies(frames["anomalies"], invoice_ids, pay_ids)
    truth = {
        "anomalies": anomalies,
        "churn_events": asm.churn(frames["events"]),
        "error_invoices": error_invoices(anomalies),
        "parameters": parameters(),
    }
    return SimulatedWorld(tables=tables, truth=truth)


__all__ = ["WorldConfig", "SimulatedWorld", "simulate_world"]
