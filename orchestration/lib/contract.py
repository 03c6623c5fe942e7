"""The landing contract (`shared/spec/landing.md`) as data.

One definition read by the generator (what to write), the ingestion validator
(what to accept) and a test that keeps the dbt sources in step with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Logical column types of the contract; `raw_sql_type` maps each to DuckDB.
STRING = "string"
TIMESTAMP = "timestamp"
DATE = "date"
MONEY = "money"
INTEGER = "integer"
NUMBER = "number"
BOOLEAN = "boolean"
CURRENCY = "currency"
COUNTRY = "country"

RAW_SQL_TYPES = {
    STRING: "VARCHAR",
    TIMESTAMP: "TIMESTAMP",  # UTC, offset applied at load
    DATE: "DATE",
    MONEY: "DECIMAL(18,4)",
    INTEGER: "BIGINT",
    NUMBER: "DOUBLE",
    BOOLEAN: "BOOLEAN",
    CURRENCY: "VARCHAR",
    COUNTRY: "VARCHAR",
}


@dataclass(frozen=True)
class Column:
    name: str
    type: str = STRING
    required: bool = False
    enum: tuple[str, ...] | None = None

    @property
    def raw_sql_type(self) -> str:
        return RAW_SQL_TYPES[self.type]


@dataclass(frozen=True)
class Source:
    name: str
    primary_key: tuple[str, ...]
    columns: tuple[Column, ...]
    # Column that orders versions of one key; None = later batch wins.
    version_column: str | None = None
    description: str = ""
    column_names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "column_names", tuple(c.name for c in self.columns))

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)


def _c(name: str, type_: str = STRING, required: bool = False, enum: tuple[str, ...] | None = None) -> Column:
    return Column(name, type_, required, enum)


COMPANY_SIZES = ("smb", "mid_market", "enterprise")
PRODUCT_TYPES = ("plan", "addon", "usage")
TIERS = ("basic", "pro", "enterprise")
BILLING_PERIODS = ("month", "quarter", "year")
SUBSCRIPTION_EVENT_TYPES = (
    "created",
    "plan_changed",
    "quantity_changed",
    "addon_added",
    "addon_removed",
    "cancelled",
    "lapsed",
    "reactivated",
)
INVOICE_STATUSES = ("draft", "open", "paid", "void", "uncollectible")
BILLING_REASONS = ("subscription_create", "subscription_cycle", "subscription_update", "manual")
PAYMENT_STATUSES = ("succeeded", "failed", "pending")
PAYMENT_METHODS = ("card", "ach", "sepa_debit", "bank_transfer", "paypal")
CREDIT_NOTE_KINDS = ("credit", "refund")
CREDIT_NOTE_REASONS = (
    "billing_error",
    "duplicate_charge",
    "order_change",
    "product_unsatisfactory",
    "goodwill",
    "other",
)
TICKET_CATEGORIES = ("billing", "technical", "account", "other")
TICKET_SUBCATEGORIES = (
    "duplicate_charge",
    "wrong_amount",
    "missing_discount",
    "wrong_tax",
    "late_invoice",
    "confusing_invoice",
    "refund_request",
    "payment_failed",
    "cancellation",
    "other",
)
SATISFACTION = ("good", "bad")
SURVEYS = ("invoice_clarity", "csat", "nps")
# Score range per survey, inclusive; checked by the validator.
SURVEY_SCORE_RANGES = {"invoice_clarity": (1, 5), "csat": (1, 5), "nps": (0, 10)}

SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            "customers",
            ("customer_id",),
            (
                _c("customer_id", required=True),
                _c("name"),
                _c("email"),
                _c("country", COUNTRY, True),
                _c("currency", CURRENCY, True),
                _c("company_size", required=True, enum=COMPANY_SIZES),
                _c("industry"),
                _c("acquisition_channel"),
                _c("created_at", TIMESTAMP, True),
                _c("updated_at", TIMESTAMP),
            ),
            version_column="updated_at",
            description="Billing accounts: one row per customer.",
        ),
        Source(
            "products",
            ("product_id", "currency", "valid_from"),
            (
                _c("product_id", required=True),
                _c("name", required=True),
                _c("product_type", required=True, enum=PRODUCT_TYPES),
                _c("tier", enum=TIERS),
                _c("billing_period", required=True, enum=BILLING_PERIODS),
                _c("currency", CURRENCY, True),
                _c("unit_amount", MONEY, True),
                _c("valid_from", DATE, True),
                _c("valid_to", DATE),
            ),
            description="The price book: one row per product, currency and price validity start.",
        ),
        Source(
            "subscription_events",
            ("event_id",),
            (
                _c("event_id", required=True),
                _c("subscription_id", required=True),
                _c("customer_id", required=True),
                _c("event_type", required=True, enum=SUBSCRIPTION_EVENT_TYPES),
                _c("product_id"),
                _c("quantity", INTEGER),
                _c("effective_at", TIMESTAMP, True),
                _c("reason"),
            ),
            description="Subscription lifecycle events: one row per event.",
        ),
        Source(
            "invoices",
            ("invoice_id",),
            (
                _c("invoice_id", required=True),
                _c("customer_id", required=True),
                _c("subscription_id"),
                _c("invoice_number", required=True),
                _c("issued_at", TIMESTAMP, True),
                _c("due_at", TIMESTAMP, True),
                _c("period_start", TIMESTAMP, True),
                _c("period_end", TIMESTAMP, True),
                _c("currency", CURRENCY, True),
                _c("subtotal", MONEY, True),
                _c("discount_amount", MONEY, True),
                _c("tax_amount", MONEY, True),
                _c("total", MONEY, True),
                _c("status", required=True, enum=INVOICE_STATUSES),
                _c("billing_reason", required=True, enum=BILLING_REASONS),
                _c("paid_at", TIMESTAMP),
                _c("voided_at", TIMESTAMP),
                _c("uncollectible_at", TIMESTAMP),
                _c("updated_at", TIMESTAMP),
            ),
            version_column="updated_at",
            description="Invoice headers: one row per invoice.",
        ),
        Source(
            "invoice_lines",
            ("line_id",),
            (
                _c("line_id", required=True),
                _c("invoice_id", required=True),
                _c("product_id"),
                _c("description", required=True),
                _c("quantity", NUMBER, True),
                _c("unit_amount", MONEY, True),
                _c("amount", MONEY, True),
                _c("discount_amount", MONEY),
                _c("proration", BOOLEAN, True),
                _c("period_start", TIMESTAMP, True),
                _c("period_end", TIMESTAMP, True),
                _c("tax_rate", NUMBER),
                _c("tax_amount", MONEY),
            ),
            description="Invoice lines: one row per line.",
        ),
        Source(
            "payments",
            ("payment_id",),
            (
                _c("payment_id", required=True),
                _c("invoice_id", required=True),
                _c("customer_id", required=True),
                _c("attempted_at", TIMESTAMP, True),
                _c("amount", MONEY, True),
                _c("currency", CURRENCY, True),
                _c("status", required=True, enum=PAYMENT_STATUSES),
                _c("failure_code"),
                _c("method", enum=PAYMENT_METHODS),
                _c("gateway"),
                _c("attempt_number", INTEGER),
            ),
            description="Payment attempts, failed ones included: one row per attempt.",
        ),
        Source(
            "credit_notes",
            ("credit_note_id",),
            (
                _c("credit_note_id", required=True),
                _c("invoice_id", required=True),
                _c("issued_at", TIMESTAMP, True),
                _c("amount", MONEY, True),
                _c("currency", CURRENCY, True),
                _c("kind", required=True, enum=CREDIT_NOTE_KINDS),
                _c("reason", required=True, enum=CREDIT_NOTE_REASONS),
            ),
            description="Credit notes and refunds against an invoice: one row per credit note.",
        ),
        Source(
            "support_tickets",
            ("ticket_id",),
            (
                _c("ticket_id", required=True),
                _c("customer_id", required=True),
                _c("created_at", TIMESTAMP, True),
                _c("solved_at", TIMESTAMP),
                _c("category", required=True, enum=TICKET_CATEGORIES),
                _c("subcategory", enum=TICKET_SUBCATEGORIES),
                _c("invoice_id"),
                _c("priority"),
                _c("status", required=True),
                _c("channel"),
                _c("satisfaction", enum=SATISFACTION),
            ),
            description="Help-desk tickets: one row per ticket.",
        ),
        Source(
            "survey_responses",
            ("response_id",),
            (
                _c("response_id", required=True),
                _c("customer_id", required=True),
                _c("survey", required=True, enum=SURVEYS),
                _c("score", INTEGER, True),
                _c("responded_at", TIMESTAMP, True),
                _c("invoice_id"),
                _c("comment"),
            ),
            description="Survey answers (invoice clarity, CSAT, NPS): one row per response.",
        ),
        Source(
            "fx_rates",
            ("rate_date", "currency"),
            (
                _c("rate_date", DATE, True),
                _c("currency", CURRENCY, True),
                _c("usd_per_unit", NUMBER, True),
            ),
            description="Daily FX rates to USD: one row per date and currency.",
        ),
    )
}

SOURCE_NAMES: tuple[str, ...] = tuple(SOURCES)

# Columns a row must not carry negative values in (contract: amounts are
# non-negative except where a line is a credit, which the contract does not have).
NON_NEGATIVE_COLUMNS: dict[str, tuple[str, ...]] = {
    "products": ("unit_amount",),
    "invoices": ("subtotal", "discount_amount", "tax_amount", "total"),
    "invoice_lines": ("quantity", "unit_amount"),
    "payments": ("amount",),
    "credit_notes": ("amount",),
    "fx_rates": ("usd_per_unit",),
}

# ISO-4217 codes a currency column accepts: those in circulation in 2026 (CLDR),
# plus codes withdrawn since 2015 that older invoices still carry. A well-formed
# code outside this list ('ABC') is a typo, quarantined with its row; a listed
# code without FX rates rejects its batch until the rates arrive (expectations).
_ISO_4217_CODES = """
    AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD
    CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP
    GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD
    KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN
    NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP
    SLE SOS SRD SSP STN SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV
    WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
    ANG BYR CUC HRK LTL MRO SLL STD VEF ZWL
"""
ISO_4217_CURRENCIES = frozenset(_ISO_4217_CODES.split())

# Minor units per currency (ISO-4217 exponent); anything not listed has 2.
ZERO_DECIMAL_CURRENCIES = ("JPY", "KRW")


def minor_units(currency: str) -> int:
    return 0 if currency in ZERO_DECIMAL_CURRENCIES else 2


# The billing-anomaly types of metrics.md (marts.billing_anomalies): injected
# by the generator, detected by the anomaly models.
ANOMALY_TYPES = (
    "duplicate_charge",
    "price_mismatch",
    "proration_error",
    "discount_error",
    "tax_error",
    "total_mismatch",
    "currency_mismatch",
    "missed_invoice",
    "invoice_after_cancellation",
    "amount_spike",
)

# Landing batch file endings the readers understand.
BATCH_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".jsonl", ".jsonl.gz")
TRUTH_FOLDER = "_truth"
