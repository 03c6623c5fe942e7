"""Cut the simulated history at the window end and settle statuses as of then.

The loop decides some things ahead of time (a retry next month, a proration
invoice on a later day, a lapse): the delivered world is the state at the
window end, so anything later is dropped and invoices still waiting for money
are `open`.
"""

from __future__ import annotations

import polars as pl

from billing_world.reference import INVOICE_STATUS
from billing_world.timeline import DAY_US


def _status(end_us: int) -> pl.Expr:
    return (
        pl.when(pl.col("paid_us") < end_us)
        .then(INVOICE_STATUS["paid"])
        .when(pl.col("uncollectible_us") < end_us)
        .then(INVOICE_STATUS["uncollectible"])
        .otherwise(INVOICE_STATUS["open"])
    )


def cut(frames: dict[str, pl.DataFrame], end_day: int) -> dict[str, pl.DataFrame]:
    end_us = end_day * DAY_US
    invoices = (
        frames["invoices"]
        .filter(pl.col("issued_us") < end_us)
        .with_columns(status=_status(end_us))
        .with_columns(
            paid_us=pl.when(pl.col("status") == INVOICE_STATUS["paid"]).then(pl.col("paid_us")),
            uncollectible_us=pl.when(pl.col("status") == INVOICE_STATUS["uncollectible"]).then(
                pl.col("uncollectible_us")
            ),
        )
    )
    keys = invoices.select(inv_key="key")
    lapse = frames["invoices"].select(inv_key="key", lapse_us="uncollectible_us")
    # Dunning stops when the invoice is written off.
    payments = (
        frames["payments"]
        .join(lapse, on="inv_key", how="inner", maintain_order="left")
        .filter((pl.col("at_us") < end_us) & (pl.col("at_us") < pl.col("lapse_us")))
        .join(keys, on="inv_key", how="semi", maintain_order="left")
        .drop("lapse_us")
    )
    anomalies = frames["anomalies"].filter(
        ((pl.col("inv_key") < 0) | pl.col("inv_key").is_in(keys["inv_key"].implode()))
        & ((pl.col("pay_key") < 0) | pl.col("pay_key").is_in(payments["key"].implode()))
        & ((pl.col("noticed_us") < end_us) | (pl.col("inv_key") < 0))
    )
    return {
        **frames,
        "invoices": invoices,
        "lines": frames["lines"].join(keys, on="inv_key", how="semi", maintain_order="left"),
        "payments": payments,
        "events": frames["events"].filter(pl.col("effective_us") < end_us),
        "anomalies": anomalies,
        "intervals": frames["intervals"].with_columns(end_day=pl.min_horizontal("end_day", pl.lit(end_day))),
    }
