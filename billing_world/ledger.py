"""Append-only store of simulated rows, as numpy chunks per table.

The month loop produces a chunk per table per month; concatenating once at the
end keeps the loop free of DataFrame churn.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import polars as pl

from billing_world.invoicing import Batch

INVOICE_SCHEMA = {
    "key": pl.Int64,
    "cust": pl.Int64,
    "reason": pl.Int64,
    "issued_us": pl.Int64,
    "start_day": pl.Int64,
    "end_day": pl.Int64,
    "currency": pl.Int64,
    "subtotal": pl.Int64,
    "discount": pl.Int64,
    "tax": pl.Int64,
    "total": pl.Int64,
    "paid_us": pl.Int64,
    "uncollectible_us": pl.Int64,
}
LINE_SCHEMA = {
    "inv_key": pl.Int64,
    "product": pl.Int64,
    "qty": pl.Int64,
    "unit": pl.Int64,
    "amount": pl.Int64,
    "discount": pl.Int64,
    "tax": pl.Int64,
    "rate_bp": pl.Int64,
    "proration": pl.Boolean,
    "start_day": pl.Int64,
    "end_day": pl.Int64,
}
PAYMENT_SCHEMA = {
    "key": pl.Int64,
    "inv_key": pl.Int64,
    "cust": pl.Int64,
    "at_us": pl.Int64,
    "amount": pl.Int64,
    "currency": pl.Int64,
    "status": pl.Int64,
    "failure": pl.Int64,
    "method": pl.Int64,
    "attempt": pl.Int64,
}
EVENT_SCHEMA = {
    "sub": pl.Int64,
    "event": pl.Int64,
    "product": pl.Int64,
    "qty": pl.Int64,
    "effective_us": pl.Int64,
    "reason": pl.Int64,
}
ANOMALY_SCHEMA = {
    "anomaly": pl.Int64,
    "detail": pl.Int64,
    "inv_key": pl.Int64,
    "pay_key": pl.Int64,
    "ref_inv_key": pl.Int64,
    "cust": pl.Int64,
    "start_day": pl.Int64,
    "value_kind": pl.Int64,
    "expected": pl.Int64,
    "actual": pl.Int64,
    "expected_currency": pl.Int64,
    "actual_currency": pl.Int64,
    "overcharge": pl.Int64,
    "noticed_us": pl.Int64,
}
INTERVAL_SCHEMA = {"cust": pl.Int64, "start_day": pl.Int64, "end_day": pl.Int64}
SCHEMAS = {
    "invoices": INVOICE_SCHEMA,
    "lines": LINE_SCHEMA,
    "payments": PAYMENT_SCHEMA,
    "events": EVENT_SCHEMA,
    "anomalies": ANOMALY_SCHEMA,
    "intervals": INTERVAL_SCHEMA,
}


def broadcast_columns(columns: dict[str, np.ndarray | int]) -> dict[str, np.ndarray]:
    """Scalars stretched to the length of the array columns (which may be empty)."""
    size = max((len(v) for v in columns.values() if np.ndim(v)), default=1)
    return {k: np.broadcast_to(v, size) for k, v in columns.items()}


class Ledger:
    def __init__(self) -> None:
        self._chunks: dict[str, list[dict[str, np.ndarray]]] = defaultdict(list)

    def add(self, table: str, **columns: np.ndarray | int) -> None:
        self._chunks[table].append(broadcast_columns(columns))

    def add_batch(self, batch: Batch) -> None:
        self.add("invoices", **{c: getattr(batch, c) for c in INVOICE_SCHEMA if c != "key"}, key=batch.key)
        lines = batch.lines
        self.add(
            "lines",
            inv_key=batch.key[lines.inv],
            **{c: getattr(lines, c) for c in LINE_SCHEMA if c != "inv_key"},
        )

    def frame(self, table: str) -> pl.DataFrame:
        schema = SCHEMAS[table]
        chunks = self._chunks.get(table, [])
        if not chunks:
            return pl.DataFrame(schema=schema)
        return pl.DataFrame({c: np.concatenate([chunk[c] for chunk in chunks]) for c in schema}, schema=schema)

    def frames(self) -> dict[str, pl.DataFrame]:
        return {table: self.frame(table) for table in SCHEMAS}
