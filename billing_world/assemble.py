"""Keyed simulation rows -> contract-shaped frames and ground-truth tables.

The loop works with integer keys and codes; here they become the public ids
(`in_000001`, `INV-000001`, ...), contract dtypes and contract column order.
Ids are numbered in time order, so numbering carries no hint of which
documents were injected or dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from billing_world import feedback
from billing_world.anomalies import COUNT, CURRENCY, DETAIL, DETAILS
from billing_world.catalog import Customers, id_width, plan_product_names, product_ids
from billing_world.lifecycle import CHURN_BETA, EVENT_REASONS
from billing_world.money import decimal_series
from billing_world.payments import FAILURE_CODES
from billing_world.reference import ANOMALY_TYPES, EVENT, SEGMENTS, Reference
from billing_world.timeline import DAY_US
from orchestration.lib import contract

GATEWAY_BY_METHOD = {
    "card": "stripe",
    "ach": "stripe",
    "sepa_debit": "adyen",
    "paypal": "paypal",
    "bank_transfer": "bank",
}
PRORATION_PREFIX = "Remaining time on "


def lookup(values: tuple[str, ...] | list[str | None], codes: pl.Expr) -> pl.Expr:
    """Code -> text; negative codes are null."""
    mapping = {i: v for i, v in enumerate(values)}
    return pl.when(codes >= 0).then(codes.replace_strict(mapping, default=None, return_dtype=pl.String))


def numbered(prefix: str, rank: pl.Expr, count: int) -> pl.Expr:
    return pl.lit(prefix) + (rank + 1).cast(pl.String).str.zfill(id_width(count))


def stamp(column: str) -> pl.Expr:
    return pl.col(column).cast(pl.Datetime("us"))


def day_stamp(column: str) -> pl.Expr:
    return (pl.col(column) * DAY_US).cast(pl.Datetime("us"))


def in_contract_order(frame: pl.DataFrame, source: str) -> pl.DataFrame:
    return frame.select(contract.SOURCES[source].column_names)


@dataclass(frozen=True)
class Assembler:
    ref: Reference
    customers: Customers

    def money(self, frame: pl.DataFrame, minor: str, currency: str = "currency", name: str | None = None) -> pl.Series:
        exponent = self.ref.exponent[frame[currency].to_numpy()]
        return decimal_series(name or minor, frame[minor].to_numpy(), exponent)

    def currency(self, column: str = "currency") -> pl.Expr:
        return lookup(self.ref.currencies, pl.col(column))

    def customer_id(self, column: str = "cust") -> pl.Expr:
        return numbered("cus_", pl.col(column), self.customers.count)

    def subscription_id(self, column: str = "cust") -> pl.Expr:
        return self.customer_id(column).str.replace("cus_", "sub_", literal=True)

    def invoice_ids(self, invoices: pl.DataFrame) -> pl.DataFrame:
        n = len(invoices)
        return (
            invoices.select("key", "issued_us")
            .sort("issued_us", "key")
            .with_row_index("rank")
            .select(
                inv_key="key",
                inv_rank="rank",
                invoice_id=numbered("in_", pl.col("rank"), n),
                invoice_number=numbered("INV-", pl.col("rank"), n),
            )
        )

    def invoices(self, invoices: pl.DataFrame, ids: pl.DataFrame) -> pl.DataFrame:
        terms_us = pl.Series(self.ref.terms_days[self.customers.segment] * DAY_US)
        frame = invoices.join(ids, left_on="key", right_on="inv_key", maintain_order="left").with_columns(
            due_us=pl.col("issued_us") + pl.lit(terms_us).gather(pl.col("cust"))
        )
        frame = frame.with_columns(
            self.money(frame, "subtotal"),
            self.money(frame, "discount", name="discount_amount"),
            self.money(frame, "tax", name="tax_amount"),
            self.money(frame, "total"),
        )
        return in_contract_order(
            frame.sort("inv_rank").with_columns(
                customer_id=self.customer_id(),
                subscription_id=self.subscription_id(),
                issued_at=stamp("issued_us"),
                due_at=stamp("due_us"),
                period_start=day_stamp("start_day"),
                period_end=day_stamp("end_day"),
                currency=self.currency(),
                status=lookup(contract.INVOICE_STATUSES, pl.col("status")),
                billing_reason=lookup(contract.BILLING_REASONS, pl.col("reason")),
                paid_at=stamp("paid_us"),
                voided_at=pl.lit(None, pl.Datetime("us")),
                uncollectible_at=stamp("uncollectible_us"),
                updated_at=pl.coalesce(stamp("paid_us"), stamp("uncollectible_us")),
            ),
            "invoices",
        )

    def lines(self, lines: pl.DataFrame, invoices: pl.DataFrame, ids: pl.DataFrame) -> pl.DataFrame:
        frame = (
            lines.with_row_index("row")
            .join(ids, on="inv_key", maintain_order="left")
            .join(invoices.select(inv_key="key", currency="currency"), on="inv_key", maintain_order="left")
            .sort("inv_rank", "row")
            .with_row_index("line_rank")
        )
        names = plan_product_names().to_list()
        frame = frame.with_columns(
            self.money(frame, "unit", name="unit_amount"),
            self.money(frame, "amount"),
            self.money(frame, "discount", name="discount_amount"),
            self.money(frame, "tax", name="tax_amount"),
        )
        name = lookup(names, pl.col("product"))
        return in_contract_order(
            frame.with_columns(
                line_id=numbered("il_", pl.col("line_rank"), len(frame)),
                product_id=lookup(product_ids().to_list(), pl.col("product")),
                description=pl.when(pl.col("proration")).then(PRORATION_PREFIX + name).otherwise(name),
                quantity=pl.col("qty").cast(pl.Float64),
                period_start=day_stamp("start_day"),
                period_end=day_stamp("end_day"),
                tax_rate=pl.col("rate_bp").cast(pl.Float64) / 10_000,
            ),
            "invoice_lines",
        )

    def payment_ids(self, payments: pl.DataFrame) -> pl.DataFrame:
        return (
            payments.select("key", "at_us")
            .sort("at_us", "key")
            .with_row_index("rank")
            .select(pay_key="key", payment_id=numbered("py_", pl.col("rank"), len(payments)))
        )

    def payments(self, payments: pl.DataFrame, invoice_ids: pl.DataFrame, pay_ids: pl.DataFrame) -> pl.DataFrame:
        frame = payments.join(pay_ids, left_on="key", right_on="pay_key", maintain_order="left").join(
            invoice_ids, on="inv_key", maintain_order="left"
        )
        frame = frame.with_columns(self.money(frame, "amount"))
        method = lookup(contract.PAYMENT_METHODS, pl.col("method"))
        return in_contract_order(
            frame.sort("at_us", "key").with_columns(
                customer_id=self.customer_id(),
                attempted_at=stamp("at_us"),
                currency=self.currency(),
                status=lookup(contract.PAYMENT_STATUSES, pl.col("status")),
                failure_code=lookup(FAILURE_CODES, pl.col("failure")),
                method=method,
                gateway=method.replace_strict(GATEWAY_BY_METHOD, default=None),
                attempt_number=pl.col("attempt"),
            ),
            "payments",
        )

    def events(self, events: pl.DataFrame) -> pl.DataFrame:
        frame = events.with_row_index("row").sort("effective_us", "sub", "row").with_row_index("rank")
        return in_contract_order(
            frame.with_columns(
                event_id=numbered("ev_", pl.col("rank"), len(frame)),
                subscription_id=self.subscription_id("sub"),
                customer_id=self.customer_id("sub"),
                event_type=lookup(contract.SUBSCRIPTION_EVENT_TYPES, pl.col("event")),
                product_id=lookup(product_ids().to_list(), pl.col("product")),
                quantity=pl.when(pl.col("qty") >= 0).then(pl.col("qty")),
                effective_at=stamp("effective_us"),
                reason=lookup(EVENT_REASONS, pl.col("reason")),
            ),
            "subscription_events",
        )

    def credit_notes(self, credits: pl.DataFrame, invoice_ids: pl.DataFrame) -> pl.DataFrame:
        frame = credits.with_row_index("row").sort("issued_us", "inv_key", "row").with_row_index("rank")
        frame = frame.join(invoice_ids, on="inv_key", maintain_order="left")
        frame = frame.with_columns(self.money(frame, "amount"))
        return in_contract_order(
            frame.with_columns(
                credit_note_id=numbered("cn_", pl.col("rank"), len(frame)),
                issued_at=stamp("issued_us"),
                currency=self.currency(),
                kind=lookup(contract.CREDIT_NOTE_KINDS, pl.col("kind")),
                reason=lookup(contract.CREDIT_NOTE_REASONS, pl.col("reason")),
            ),
            "credit_notes",
        )

    def tickets(self, tickets: pl.DataFrame, invoice_ids: pl.DataFrame) -> pl.DataFrame:
        frame = tickets.with_row_index("rank").join(invoice_ids, on="inv_key", how="left", maintain_order="left")
        return in_contract_order(
            frame.with_columns(
                ticket_id=numbered("tk_", pl.col("rank"), len(frame)),
                customer_id=self.customer_id(),
                created_at=stamp("created_us"),
                solved_at=stamp("solved_us"),
                category=lookup(contract.TICKET_CATEGORIES, pl.col("category")),
                subcategory=lookup(contract.TICKET_SUBCATEGORIES, pl.col("subcategory")),
                priority=lookup(feedback.PRIORITIES, pl.col("priority")),
                status=lookup(feedback.TICKET_STATUSES, pl.col("status")),
                channel=lookup(feedback.TICKET_CHANNELS, pl.col("channel")),
                satisfaction=lookup(contract.SATISFACTION, pl.col("satisfaction")),
            ),
            "support_tickets",
        )

    def surveys(self, surveys: pl.DataFrame, invoice_ids: pl.DataFrame) -> pl.DataFrame:
        frame = surveys.with_row_index("row").sort("responded_us", "cust", "row").with_row_index("rank")
        frame = frame.join(invoice_ids, on="inv_key", how="left", maintain_order="left")
        return in_contract_order(
            frame.with_columns(
                response_id=numbered("sr_", pl.col("rank"), len(frame)),
                customer_id=self.customer_id(),
                survey=lookup(contract.SURVEYS, pl.col("survey")),
                responded_at=stamp("responded_us"),
                comment=lookup(feedback.COMMENT_TEXTS, pl.col("comment")),
            ),
            "survey_responses",
        )

    # --- ground truth ---------------------------------------------------------------

    def anomalies(self, anomalies: pl.DataFrame, invoice_ids: pl.DataFrame, pay_ids: pl.DataFrame) -> pl.DataFrame:
        frame = (
            anomalies.with_row_index("row")
            .join(invoice_ids, on="inv_key", how="left", maintain_order="left")
            .join(pay_ids, on="pay_key", how="left", maintain_order="left")
            .join(
                invoice_ids.select(ref_inv_key="inv_key", original_id="invoice_id"),
                on="ref_inv_key",
                how="left",
                maintain_order="left",
            )
            .sort("start_day", "cust", "row")
        )
        frame = frame.with_columns(
            self.money(frame, "expected", "expected_currency", "expected_money").cast(pl.String),
            self.money(frame, "actual", "actual_currency", "actual_money").cast(pl.String),
        )
        detail = lookup(DETAILS, pl.col("detail"))
        return frame.select(
            anomaly_type=lookup(ANOMALY_TYPES, pl.col("anomaly")),
            invoice_id="invoice_id",
            payment_id="payment_id",
            customer_id=self.customer_id(),
            subscription_id=self.subscription_id(),
            period_start=day_stamp("start_day"),
            expected=self._truth_value("expected"),
            actual=self._truth_value("actual"),
            detail=pl.when(pl.col("detail") == DETAIL["duplicate_invoice"])
            .then(detail + " of " + pl.col("original_id"))
            .otherwise(detail),
        )

    def _truth_value(self, side: str) -> pl.Expr:
        """Money as a decimal in its currency, a currency code, or a document count."""
        return (
            pl.when(pl.col("value_kind") == CURRENCY)
            .then(self.currency(f"{side}_currency"))
            .when(pl.col("value_kind") == COUNT)
            .then(pl.col(side).cast(pl.String))
            .otherwise(pl.col(f"{side}_money"))
        )

    def churn(self, events: pl.DataFrame) -> pl.DataFrame:
        ends = events.filter(pl.col("event").is_in([EVENT["cancelled"], EVENT["lapsed"]]))
        return ends.sort("effective_us", "sub").select(
            customer_id=self.customer_id("sub"),
            subscription_id=self.subscription_id("sub"),
            event_type=lookup(contract.SUBSCRIPTION_EVENT_TYPES, pl.col("event")),
            effective_at=stamp("effective_us"),
        )


def error_invoices(anomalies: pl.DataFrame) -> pl.DataFrame:
    return (
        anomalies.filter(pl.col("invoice_id").is_not_null())
        .select("invoice_id", "customer_id", "anomaly_type")
        .unique("invoice_id", keep="first", maintain_order=True)
    )


def parameters() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "segment": list(SEGMENTS),
            "alpha": [CHURN_BETA[s][0] for s in SEGMENTS],
            "beta": [CHURN_BETA[s][1] for s in SEGMENTS],
        }
    )
