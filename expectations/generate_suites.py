"""Write the Great Expectations suites of this folder from the landing contract and the mart specs.

    python expectations/generate_suites.py           # rewrite every raw_*.json and marts_*.json
    python expectations/generate_suites.py --check   # exit 1 when a committed file differs

The suites are GX Core 1.x JSON, but nobody edits them by hand: keys, enums,
non-negative columns and survey score ranges come from
orchestration/lib/contract.py, so a contract change reaches the suites when
this script runs again, and a test fails until it has. What the contract does
not say (which timestamps are schedule dates, which reference blocks a batch,
the marts' columns) is written down below, once.

Every expectation carries `meta.severity` (`block`: a failure rejects the
batch or blocks publication; `warn`: reported only) and a one-line `meta.why`.
Values known only at validation time are suite parameters
(`{"$PARAMETER": name}`), filled by orchestration/lib/expectations.py:

- `earliest_timestamp`, `latest_plausible_timestamp`: the window no timestamp
  may leave (2000-01-01 .. now + 2 years: 2150 is a typo), blocking;
  `latest_event_timestamp` (now + a day of clock skew): an event column's
  latest value beyond it only warns, since a feed whose last month runs a few
  weeks past today (a generated world, a clock ahead) is odd, not wrong data;
- `<column>_absent_from_raw_<parent>`: the values of `<column>` the batch
  references that raw.<parent> does not hold (`meta.references` names the
  parent column). GX rejects the rows holding them. Passing the absent keys,
  not the present ones, keeps the parameter small: GX copies an
  expectation's arguments dozens of times per validation, and a value set of
  100,000 present invoice ids made one batch take 12 s instead of 0.1 s;
- `as_of_month`: the data's as-of month (the month of the latest subscription
  event or invoice in raw), which each mart's latest month must equal.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import great_expectations as gx
import great_expectations.expectations as gxe
from great_expectations.expectations.row_conditions import Column as RowColumn

from orchestration.defs.value.assets import SEGMENT_DIMENSIONS
from orchestration.lib.check_runs import SEVERITIES
from orchestration.lib.contract import (
    ANOMALY_TYPES,
    CURRENCY,
    DATE,
    NON_NEGATIVE_COLUMNS,
    SOURCES,
    SURVEY_SCORE_RANGES,
    TICKET_SUBCATEGORIES,
    TIMESTAMP,
    Source,
)
from orchestration.lib.readers import ROW_NUMBER

SUITES_DIR = Path(__file__).resolve().parent
BLOCK, WARN = "block", "warn"
# GX's own severity field, kept in step with meta.severity for GX's renderers.
GX_SEVERITY = {BLOCK: "critical", WARN: "warning"}
# The reporting currency: amounts in it need no FX row (DECISIONS.md, staging).
ALWAYS_KNOWN_CURRENCIES = ("USD",)

# Marts table-level expectations are evaluated once, on the chunk holding the
# latest months (the whole table when it fits one chunk); row-level ones on every chunk.
LATEST_CHUNK = "latest_chunk"

# --- raw suites -------------------------------------------------------------

# Timestamp and date columns that hold a plan, not a fact: they may lie ahead
# (a yearly period ends a year after it is invoiced). Every other timestamp
# or date of the contract records something that happened, and is also
# expected (warn) not to lie in the future.
SCHEDULED_COLUMNS: dict[str, tuple[str, ...]] = {
    "products": ("valid_from", "valid_to"),
    "invoices": ("due_at", "period_start", "period_end"),
    "invoice_lines": ("period_start", "period_end"),
}


@dataclass(frozen=True)
class Reference:
    """`source.column` must name a row of raw.<parent> (`parent_column`)."""

    source: str
    column: str
    parent: str
    parent_column: str
    severity: str
    why: str


REFERENCES: tuple[Reference, ...] = (
    Reference(
        "subscription_events",
        "customer_id",
        "customers",
        "customer_id",
        BLOCK,
        "MRR and churn are counted per customer and segment: an event of an unknown customer has no segment",
    ),
    Reference(
        "subscription_events",
        "product_id",
        "products",
        "product_id",
        BLOCK,
        "MRR prices every live item from the price book: an unknown product has no price",
    ),
    Reference(
        "invoices",
        "customer_id",
        "customers",
        "customer_id",
        BLOCK,
        "revenue, AR and error rates are segmented by the invoice's customer",
    ),
    Reference(
        "invoices",
        "subscription_id",
        "subscription_events",
        "subscription_id",
        WARN,
        "an invoice's plan is found through its subscription; without one it reports as plan unknown",
    ),
    Reference(
        "invoice_lines",
        "invoice_id",
        "invoices",
        "invoice_id",
        BLOCK,
        "a line without its invoice has no currency, date or customer: it can be neither converted nor checked",
    ),
    Reference(
        "invoice_lines",
        "product_id",
        "products",
        "product_id",
        WARN,
        "the price check compares a line with its product's book price; the line's own amount stands",
    ),
    Reference(
        "payments",
        "invoice_id",
        "invoices",
        "invoice_id",
        BLOCK,
        "a payment settles an invoice: without it balances, DSO and collections are wrong",
    ),
    Reference(
        "payments",
        "customer_id",
        "customers",
        "customer_id",
        BLOCK,
        "a payment from an unknown customer cannot be segmented",
    ),
    Reference(
        "credit_notes",
        "invoice_id",
        "invoices",
        "invoice_id",
        BLOCK,
        "a credit note reduces its invoice's balance and marks it as an error",
    ),
    Reference(
        "support_tickets",
        "customer_id",
        "customers",
        "customer_id",
        BLOCK,
        "tickets are counted per 100 customers of the customer's segment",
    ),
    Reference(
        "support_tickets",
        "invoice_id",
        "invoices",
        "invoice_id",
        WARN,
        "a ticket's invoice only links it to an invoice error; the ticket counts without it",
    ),
    Reference(
        "survey_responses",
        "customer_id",
        "customers",
        "customer_id",
        BLOCK,
        "survey scores are averaged per segment of the responding customer",
    ),
    Reference(
        "survey_responses",
        "invoice_id",
        "invoices",
        "invoice_id",
        WARN,
        "an answer's invoice is context only; the score counts without it",
    ),
)


def absent_keys_parameter(column: str, parent: str) -> str:
    """Name of the suite parameter holding the batch's `column` values missing from raw.<parent>."""
    return f"{column}_absent_from_raw_{parent}"


def _expect(cls: type, severity: str, why: str, extra_meta: dict | None = None, **kwargs) -> gxe.Expectation:
    if severity not in SEVERITIES:
        raise ValueError(f"severity {severity!r} is not one of {SEVERITIES}")
    meta = {"severity": severity, "why": why} | (extra_meta or {})
    return cls(**kwargs, meta=meta, severity=GX_SEVERITY[severity])


def _parameter(name: str) -> dict:
    return {"$PARAMETER": name}


def _key_expectations(source: Source) -> list[gxe.Expectation]:
    keys = source.primary_key
    role = f"is the key of {source.name}" if len(keys) == 1 else f"is part of the key ({', '.join(keys)})"
    found = [
        _expect(
            gxe.ExpectColumnValuesToNotBeNull,
            BLOCK,
            f"{column} {role}: a row without it cannot be told from the others",
            column=column,
        )
        for column in keys
    ]
    repeat_why = "two rows with one key in one batch: nothing says which version is right"
    if len(keys) == 1:
        found.append(_expect(gxe.ExpectColumnValuesToBeUnique, BLOCK, repeat_why, column=keys[0]))
    else:
        found.append(_expect(gxe.ExpectCompoundColumnsToBeUnique, BLOCK, repeat_why, column_list=list(keys)))
    return found


def _enum_expectations(source: Source) -> list[gxe.Expectation]:
    return [
        _expect(
            gxe.ExpectColumnValuesToBeInSet,
            BLOCK,
            f"the metrics count {column.name} by its contract values; any other value would drop out of every count",
            column=column.name,
            value_set=list(column.enum),
        )
        for column in source.columns
        if column.enum is not None
    ]


def _range_expectations(source: Source) -> list[gxe.Expectation]:
    found = [
        _expect(
            gxe.ExpectColumnValuesToBeBetween,
            BLOCK,
            f"the contract forbids a negative {column} (money given back is a credit note)",
            column=column,
            min_value=0,
        )
        for column in NON_NEGATIVE_COLUMNS.get(source.name, ())
    ]
    if "survey" in source.column_names and "score" in source.column_names:
        found += [
            _expect(
                gxe.ExpectColumnValuesToBeBetween,
                BLOCK,
                f"{survey} scores run from {low} to {high}; a score outside would skew its mean",
                column="score",
                min_value=low,
                max_value=high,
                row_condition=RowColumn("survey") == survey,
            )
            for survey, (low, high) in SURVEY_SCORE_RANGES.items()
        ]
    return found


def _reference_expectations(source: Source) -> list[gxe.Expectation]:
    references = [r for r in REFERENCES if r.source == source.name]
    if source.name != "fx_rates":
        references += [
            Reference(
                source.name,
                column.name,
                "fx_rates",
                "currency",
                BLOCK,
                "an amount in a currency without FX rates cannot be converted to USD",
            )
            for column in source.columns
            if column.type == CURRENCY
        ]
    found = []
    for reference in references:
        meta = {"references": f"raw.{reference.parent}.{reference.parent_column}"}
        if reference.parent == "fx_rates":
            meta["always_known"] = list(ALWAYS_KNOWN_CURRENCIES)
        found.append(
            _expect(
                gxe.ExpectColumnValuesToNotBeInSet,
                reference.severity,
                reference.why,
                meta,
                column=reference.column,
                value_set=_parameter(absent_keys_parameter(reference.column, reference.parent)),
            )
        )
    return found


def _timestamp_expectations(source: Source) -> list[gxe.Expectation]:
    scheduled = SCHEDULED_COLUMNS.get(source.name, ())
    found = []
    for column in source.columns:
        if column.type not in (TIMESTAMP, DATE):
            continue
        found.append(
            _expect(
                gxe.ExpectColumnValuesToBeBetween,
                BLOCK,
                f"{column.name} outside 2000 .. two years ahead is a typo or a parse slip (2150, 1970)",
                column=column.name,
                min_value=_parameter("earliest_timestamp"),
                max_value=_parameter("latest_plausible_timestamp"),
            )
        )
        if column.name not in scheduled:
            found.append(
                _expect(
                    gxe.ExpectColumnValuesToBeBetween,
                    WARN,
                    f"{column.name} records something that happened, so it should not lie in the future",
                    column=column.name,
                    max_value=_parameter("latest_event_timestamp"),
                )
            )
    return found


def raw_suite(source: Source) -> gx.ExpectationSuite:
    expectations = [
        _expect(
            gxe.ExpectTableRowCountToBeBetween,
            WARN,
            "a batch with no contract-valid row adds nothing: the file may be empty or broken throughout",
            min_value=1,
        ),
        *_key_expectations(source),
        *_enum_expectations(source),
        *_range_expectations(source),
        *_reference_expectations(source),
        *_timestamp_expectations(source),
    ]
    return gx.ExpectationSuite(
        name=f"raw_{source.name}",
        expectations=expectations,
        meta={
            "layer": "ingest",
            "table": f"raw.{source.name}",
            "validated": "each new batch file's contract-valid rows, before they are written",
            "index_columns": [ROW_NUMBER],  # failing rows are named by their record number in the file
        },
    )


# --- mart suites ------------------------------------------------------------

MONTH_SEGMENT_GRAIN = ("month", "segment_dimension", "segment_value")


@dataclass(frozen=True)
class MartSpec:
    """What a published mart must satisfy. Columns are named in the dbt model's yml."""

    model: str
    grain: tuple[str, ...]
    # The column whose month chunks the validation; `date_trunc('month', ...)` of it.
    month_column: str
    # `all`: every month, in chunks; `latest`: only the as-of month (large marts).
    months: str
    counts: tuple[str, ...] = ()  # required, >= 0
    money: tuple[str, ...] = ()  # required, >= 0 (USD)
    non_negative: tuple[str, ...] = ()  # may be null (nothing to divide by), else >= 0
    rates: tuple[str, ...] = ()  # may be null, else in [0, 1]
    # may be null, else in [low, high]; None = unbounded on that side
    ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    required: tuple[str, ...] = ()  # not null, beyond the grain and the above
    enums: dict[str, tuple[str, ...]] = field(default_factory=dict)
    at_least_one_row: bool = True
    fresh: bool = True  # max(month_column) = as_of_month
    note: str = ""


_SEGMENT_DIMENSIONS = ("all", *SEGMENT_DIMENSIONS)
_CLARITY, _CSAT = SURVEY_SCORE_RANGES["invoice_clarity"], SURVEY_SCORE_RANGES["csat"]
_TICKET_COUNTS = tuple(f"billing_tickets_{s}" for s in TICKET_SUBCATEGORIES)

MARTS: tuple[MartSpec, ...] = (
    MartSpec(
        "kpi_invoice_error_rate",
        MONTH_SEGMENT_GRAIN,
        "month",
        "all",
        counts=(
            "invoices_issued",
            "invoices_with_error",
            "invoices_with_error_credit_note",
            "invoices_with_error_ticket",
            "invoices_flagged",
        ),
        money=("invoiced_usd",),
        ranges={"error_rate_per_100": (0, 100), "anomalies_flagged_per_100": (0, 100)},
    ),
    MartSpec(
        "kpi_dso",
        MONTH_SEGMENT_GRAIN,
        "month",
        "all",
        counts=("open_invoices",),
        money=(
            "credit_sales_usd",
            "ar_end_usd",
            "ar_current_usd",
            "overdue_ar_usd",
            "ar_1_30_usd",
            "ar_31_60_usd",
            "ar_61_90_usd",
            "ar_90_plus_usd",
        ),
        non_negative=("dso_days", "dso_countback_days"),
        ranges={"days_in_month": (28, 31)},
        required=("days_in_month",),
    ),
    MartSpec(
        "kpi_churn",
        MONTH_SEGMENT_GRAIN,
        "month",
        "all",
        counts=(
            "customers_start",
            "churned",
            "churned_voluntary",
            "churned_involuntary",
            "customers_up_for_renewal",
            "new_customers",
            "reactivated_customers",
        ),
        money=(
            "mrr_start_usd",
            "new_mrr_usd",
            "expansion_mrr_usd",
            "contraction_mrr_usd",
            "churned_mrr_usd",
            "reactivation_mrr_usd",
            "mrr_end_usd",
        ),
        non_negative=("net_revenue_retention",),
        rates=("logo_churn_rate", "renewal_churn_rate", "gross_revenue_retention"),
    ),
    MartSpec(
        "kpi_clv",
        MONTH_SEGMENT_GRAIN,
        "month",
        "all",
        counts=("customers_start",),
        money=("mrr_start_usd",),
        non_negative=("arpa_usd", "clv_simple_usd", "clv_sbg_usd"),
        rates=("trailing_12m_logo_churn_rate", "clv_sbg_coverage"),
    ),
    MartSpec(
        "kpi_collections",
        MONTH_SEGMENT_GRAIN,
        "month",
        "all",
        counts=(
            "invoices_with_attempt",
            "invoices_first_attempt_failed",
            "invoices_recovered",
            "invoices_paid",
            "invoices_uncollectible",
        ),
        money=("recovered_usd", "involuntary_churn_usd", "overdue_ar_usd"),
        non_negative=("median_days_to_payment",),
        rates=("first_attempt_failure_rate", "recovered_rate"),
    ),
    MartSpec(
        "kpi_customer_voice",
        MONTH_SEGMENT_GRAIN,
        "month",
        "all",
        counts=(
            "active_customers",
            "billing_tickets",
            *_TICKET_COUNTS,
            "invoice_clarity_responses",
            "csat_responses",
            "nps_responses",
            "nps_promoters",
            "nps_detractors",
        ),
        non_negative=("billing_tickets_per_100", *(f"{c}_per_100" for c in _TICKET_COUNTS)),
        rates=("invoice_clarity_low_share",),
        ranges={"invoice_clarity_mean": _CLARITY, "csat_mean": _CSAT, "nps": (-100, 100)},
    ),
    MartSpec(
        "billing_anomalies",
        ("anomaly_id",),
        "detected_at",
        "latest",
        money=("amount_at_stake_usd",),
        # invoice_id is null for missed_invoice (no invoice was issued); dbt tests it per type
        required=("anomaly_type", "severity", "customer_id", "detected_at"),
        enums={"anomaly_type": ANOMALY_TYPES, "severity": SEVERITIES},
        at_least_one_row=False,
        fresh=False,
        note=(
            "a clean month has no anomaly, so no row-count or freshness expectation; "
            "only the as-of month is validated (the period the dashboard and the anomaly gate look at)"
        ),
    ),
    MartSpec(
        "customer_risk",
        ("customer_id",),
        "as_of_month",
        "all",
        counts=("tenure_months",),
        money=("current_mrr_usd",),
        non_negative=("expected_residual_lifetime_usd", "value_at_risk_usd"),
        rates=("risk_score",),
        ranges={"risk_rank": (1, None), "risk_decile": (1, 10)},
        required=("risk_score", "risk_rank", "risk_decile", "risk_drivers"),
    ),
)


def _not_null(column: str, why: str) -> gxe.Expectation:
    return _expect(gxe.ExpectColumnValuesToNotBeNull, BLOCK, why, column=column)


def _between(column: str, low: float | None, high: float | None, why: str) -> gxe.Expectation:
    return _expect(gxe.ExpectColumnValuesToBeBetween, BLOCK, why, column=column, min_value=low, max_value=high)


def mart_suite(spec: MartSpec) -> gx.ExpectationSuite:
    grain = ", ".join(spec.grain)
    found: list[gxe.Expectation] = []
    if spec.at_least_one_row:
        found.append(
            _expect(
                gxe.ExpectTableRowCountToBeBetween,
                BLOCK,
                "an empty mart would publish blank dashboards and exports",
                {"scope": LATEST_CHUNK},
                min_value=1,
            )
        )
    if spec.fresh:
        found.append(
            _expect(
                gxe.ExpectColumnMaxToBeBetween,
                BLOCK,
                "the latest month must be the data's as-of month, else a stale month is shown as current",
                {"scope": LATEST_CHUNK},
                column=spec.month_column,
                min_value=_parameter("as_of_month"),
                max_value=_parameter("as_of_month"),
            )
        )
    found += [_not_null(c, f"{c} is part of the grain ({grain}): a null row cannot be found") for c in spec.grain]
    if len(spec.grain) == 1:
        found.append(
            _expect(
                gxe.ExpectColumnValuesToBeUnique,
                BLOCK,
                f"one row per {grain}: a repeat double-counts",
                column=spec.grain[0],
            )
        )
    else:
        found.append(
            _expect(
                gxe.ExpectCompoundColumnsToBeUnique,
                BLOCK,
                f"one row per {grain}: a repeat double-counts in every total",
                column_list=list(spec.grain),
            )
        )
    if "segment_dimension" in spec.grain:
        found.append(
            _expect(
                gxe.ExpectColumnValuesToBeInSet,
                BLOCK,
                "dashboards filter on these segment dimensions; another value would never be shown",
                column="segment_dimension",
                value_set=list(_SEGMENT_DIMENSIONS),
            )
        )
    for column, values in spec.enums.items():
        found.append(
            _expect(
                gxe.ExpectColumnValuesToBeInSet,
                BLOCK,
                f"{column} is one of a fixed list; another value would fall out of every filter",
                column=column,
                value_set=list(values),
            )
        )
    for column in spec.required:
        if column not in spec.grain:
            found.append(_not_null(column, f"{column} is shown on every row; a null would leave a blank"))
    for column in spec.counts:
        found.append(_not_null(column, f"{column} is a count: zero when nothing happened, never null"))
        found.append(_between(column, 0, None, f"{column} is a count and cannot be negative"))
    for column in spec.money:
        found.append(_not_null(column, f"{column} is an amount: zero when there is none, never null"))
        found.append(_between(column, 0, None, f"{column} is an amount in USD that cannot be negative"))
    for column in spec.non_negative:
        found.append(_between(column, 0, None, f"{column} cannot be negative (null when there is nothing to divide)"))
    for column in spec.rates:
        found.append(_between(column, 0, 1, f"{column} is a share: outside [0, 1] it is a computation error"))
    for column, (low, high) in spec.ranges.items():
        shown = f"[{low:g}, {high:g}]" if high is not None else f"[{low:g}, ...)"
        found.append(_between(column, low, high, f"{column} lies in {shown} by definition"))
    if spec.model == "billing_anomalies":
        found.append(
            _expect(
                gxe.ExpectColumnValuesToBeBetween,
                BLOCK,
                "an anomaly is dated by its document, which lies within the plausible window",
                column="detected_at",
                min_value=_parameter("earliest_timestamp"),
                max_value=_parameter("latest_plausible_timestamp"),
            )
        )
    meta = {
        "layer": "mart",
        "table": f"marts.{spec.model}",
        "grain": list(spec.grain),
        "month_column": spec.month_column,
        "months_validated": spec.months,
        "index_columns": list(spec.grain),
    }
    if spec.note:
        meta["note"] = spec.note
    return gx.ExpectationSuite(name=f"marts_{spec.model}", expectations=found, meta=meta)


# --- files ------------------------------------------------------------------


def build_suites() -> dict[str, dict]:
    """Every suite as the JSON GX writes, by file name."""
    suites = [raw_suite(source) for source in SOURCES.values()] + [mart_suite(spec) for spec in MARTS]
    return {f"{suite.name}.json": suite.to_json_dict() for suite in suites}


def render(suite: dict) -> str:
    return json.dumps(suite, indent=2, sort_keys=False) + "\n"


def stale_files(directory: Path = SUITES_DIR) -> list[str]:
    """Suite files that differ from what the contract and the specs generate, or are missing or extra."""
    wanted = {name: render(suite) for name, suite in build_suites().items()}
    present = {p.name for p in directory.glob("*.json")}
    differ = [n for n, text in wanted.items() if not (directory / n).exists() or (directory / n).read_text() != text]
    return sorted(differ + sorted(present - wanted.keys()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report suite files that are out of date")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        for name in stale:
            print(f"out of date: expectations/{name}", file=sys.stderr)
        return 1 if stale else 0
    wanted = build_suites()
    for path in SUITES_DIR.glob("*.json"):
        if path.name not in wanted:
            path.unlink()
            print(f"removed {path.name}")
    for name, suite in wanted.items():
        (SUITES_DIR / name).write_text(render(suite))
    print(f"wrote {len(wanted)} suites to {SUITES_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
