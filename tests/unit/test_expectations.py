"""GX expectation suites: in step with the contract, and each kind of expectation fires on a bad batch."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pytest

from orchestration.lib import expectations as ex
from orchestration.lib.check_runs import CheckRun
from orchestration.lib.contract import (
    CURRENCY,
    DATE,
    NON_NEGATIVE_COLUMNS,
    SOURCES,
    SURVEY_SCORE_RANGES,
    TIMESTAMP,
)
from orchestration.lib.loader import ensure_warehouse_schema
from orchestration.lib.readers import ROW_NUMBER
from orchestration.lib.settings import DBT_PROJECT_DIR, PROJECT_ROOT
from orchestration.lib.validation import validate_batch

# Every suite is evaluated as if it were this instant: worlds and hand-made rows are fixed in time.
NOW = datetime(2025, 1, 15, 12, 0)
PUBLISHED_MARTS = (
    "kpi_invoice_error_rate",
    "kpi_dso",
    "kpi_churn",
    "kpi_clv",
    "kpi_collections",
    "kpi_customer_voice",
    "billing_anomalies",
    "customer_risk",
)


def suite_json(name: str) -> dict:
    return json.loads((PROJECT_ROOT / "expectations" / f"{name}.json").read_text())


def expectations_of(name: str, type_: str) -> list[dict]:
    return [e for e in suite_json(name)["expectations"] if e["type"] == type_]


# --- the suites as files ------------------------------------------------------------------


def test_the_committed_suites_are_what_the_contract_generates():
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("generate_suites", PROJECT_ROOT / "expectations/generate_suites.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        assert module.stale_files() == [], "run: python expectations/generate_suites.py"
    finally:
        del sys.modules[spec.name]


def test_there_is_one_suite_per_raw_source_and_per_published_mart():
    names = {p.stem for p in (PROJECT_ROOT / "expectations").glob("*.json")}
    assert names == {f"raw_{s}" for s in SOURCES} | {f"marts_{m}" for m in PUBLISHED_MARTS}


@pytest.mark.parametrize("name", [f"raw_{s}" for s in SOURCES] + [f"marts_{m}" for m in PUBLISHED_MARTS])
def test_every_expectation_says_how_severe_it_is_and_why_in_one_line(name):
    for item in suite_json(name)["expectations"]:
        assert item["meta"]["severity"] in ("block", "warn"), item
        assert {"block": "critical", "warn": "warning"}[item["meta"]["severity"]] == item["severity"], item
        why = item["meta"]["why"]
        assert why.strip() and "\n" not in why and len(why) < 200, item


@pytest.mark.parametrize("source", list(SOURCES))
def test_every_contract_key_enum_range_currency_and_timestamp_is_covered(source):
    contract = SOURCES[source]
    name = f"raw_{source}"

    def kwargs(type_):
        return [e["kwargs"] for e in expectations_of(name, type_)]

    not_null = {k["column"] for k in kwargs("expect_column_values_to_not_be_null")}
    assert set(contract.primary_key) <= not_null
    if len(contract.primary_key) == 1:
        assert {k["column"] for k in kwargs("expect_column_values_to_be_unique")} == set(contract.primary_key)
    else:
        assert [k["column_list"] for k in kwargs("expect_compound_columns_to_be_unique")] == [
            list(contract.primary_key)
        ]
    in_set = {k["column"]: k["value_set"] for k in kwargs("expect_column_values_to_be_in_set")}
    assert in_set == {c.name: list(c.enum) for c in contract.columns if c.enum}
    between = kwargs("expect_column_values_to_be_between")
    for column in NON_NEGATIVE_COLUMNS.get(source, ()):
        assert {"column": column, "min_value": 0} in between, column
    times = [c.name for c in contract.columns if c.type in (TIMESTAMP, DATE)]
    plausible = {"$PARAMETER": "earliest_timestamp"}, {"$PARAMETER": "latest_plausible_timestamp"}
    for column in times:
        windows = [(k["min_value"], k["max_value"]) for k in between if k["column"] == column and "min_value" in k]
        assert windows == [plausible], column
    not_ahead = {
        e["kwargs"]["column"]
        for e in expectations_of(name, "expect_column_values_to_be_between")
        if e["kwargs"] == {"column": e["kwargs"]["column"], "max_value": {"$PARAMETER": "latest_event_timestamp"}}
        and e["meta"]["severity"] == "warn"
    }
    assert not_ahead == set(times) - PLANNED_DATES.get(source, set())
    references = {
        e["kwargs"]["column"]: e["meta"]["references"]
        for e in expectations_of(name, "expect_column_values_to_not_be_in_set")
    }
    for column in (c.name for c in contract.columns if c.type == CURRENCY and source != "fx_rates"):
        assert references[column] == "raw.fx_rates.currency"


# Dates that may lie ahead: a yearly period ends a year after it is invoiced.
PLANNED_DATES = {
    "products": {"valid_from", "valid_to"},
    "invoices": {"due_at", "period_start", "period_end"},
    "invoice_lines": {"period_start", "period_end"},
}


def test_survey_scores_are_ranged_per_survey_as_the_contract_says():
    ranges = {
        e["kwargs"]["row_condition"]["parameter"]: (e["kwargs"]["min_value"], e["kwargs"]["max_value"])
        for e in expectations_of("raw_survey_responses", "expect_column_values_to_be_between")
        if e["kwargs"]["column"] == "score"
    }
    assert ranges == SURVEY_SCORE_RANGES


def test_references_name_the_parents_that_must_be_loaded_first():
    assert ex.parent_sources("fx_rates") == ()
    assert ex.parent_sources("customers") == ("fx_rates",)
    assert ex.parent_sources("invoices") == ("customers", "fx_rates", "subscription_events")
    assert ex.parent_sources("invoice_lines") == ("invoices", "products")
    assert ex.parent_sources("payments") == ("customers", "fx_rates", "invoices")
    assert ex.parent_sources("credit_notes") == ("fx_rates", "invoices")
    assert ex.parent_sources("subscription_events") == ("customers", "products")
    # a load order exists: no source waits for itself through its parents
    ordered: list[str] = []
    while len(ordered) < len(SOURCES):
        ready = [s for s in SOURCES if s not in ordered and set(ex.parent_sources(s)) <= set(ordered)]
        assert ready, f"a cycle among {set(SOURCES) - set(ordered)}"
        ordered += ready
    assert ordered.index("invoices") < ordered.index("invoice_lines")


def test_mart_suites_name_only_columns_the_dbt_models_document():
    manifest = json.loads((DBT_PROJECT_DIR / "target" / "manifest.json").read_text())
    documented = {
        node["name"]: set(node["columns"]) for node in manifest["nodes"].values() if node["resource_type"] == "model"
    }
    for model in PUBLISHED_MARTS:
        suite = ex.mart_suite(model)
        assert set(suite.columns) <= documented[model], (model, set(suite.columns) - documented[model])


def test_mart_suites_check_grain_freshness_and_row_count_except_where_emptiness_is_fine():
    for model in PUBLISHED_MARTS:
        types = [e["type"] for e in suite_json(f"marts_{model}")["expectations"]]
        if model == "billing_anomalies":  # a clean month has no anomaly
            assert "expect_table_row_count_to_be_between" not in types
            assert "expect_column_max_to_be_between" not in types
        else:
            assert "expect_table_row_count_to_be_between" in types
            fresh = expectations_of(f"marts_{model}", "expect_column_max_to_be_between")
            assert fresh[0]["kwargs"]["min_value"] == fresh[0]["kwargs"]["max_value"] == {"$PARAMETER": "as_of_month"}
    churn = {e["kwargs"]["column"] for e in expectations_of("marts_kpi_churn", "expect_column_values_to_be_between")}
    assert {"logo_churn_rate", "renewal_churn_rate", "gross_revenue_retention", "mrr_end_usd"} <= churn


# --- raw batches, through the contract validator as the loader does --------------------


@pytest.fixture()
def conn(tmp_path: Path):
    """A warehouse holding customer c1, invoice in_1 (EUR), products p1 and FX rates for EUR only."""
    connection = duckdb.connect(str(tmp_path / "w.duckdb"))
    ensure_warehouse_schema(connection)
    lineage = "0, 'seed', 'seed', 1, timestamp '2024-01-01'"
    lineage_columns = "_batch_id, _batch_file, _batch_hash, _row_number, _loaded_at"
    connection.execute(
        f"insert into raw.customers (customer_id, country, currency, company_size, created_at, {lineage_columns}) "
        f"values ('c1', 'DE', 'EUR', 'smb', timestamp '2024-01-01', {lineage})"
    )
    connection.execute(
        "insert into raw.invoices (invoice_id, customer_id, invoice_number, issued_at, due_at, period_start, "
        "period_end, currency, subtotal, discount_amount, tax_amount, total, status, billing_reason, "
        f"{lineage_columns}) "
        "values ('in_1', 'c1', 'N1', timestamp '2024-07-01', timestamp '2024-07-31', timestamp '2024-07-01', "
        f"timestamp '2024-08-01', 'EUR', 10, 0, 0, 10, 'open', 'manual', {lineage})"
    )
    connection.execute(
        f"insert into raw.fx_rates (rate_date, currency, usd_per_unit, {lineage_columns}) "
        f"values (date '2024-07-01', 'EUR', 1.1, {lineage})"
    )
    yield connection
    connection.close()


LINES_HEADER = (
    "line_id",
    "invoice_id",
    "product_id",
    "description",
    "quantity",
    "unit_amount",
    "amount",
    "proration",
    "period_start",
    "period_end",
)
GOOD_LINE = ("l1", "in_1", "", "Pro plan", "2", "10.00", "20.00", "false", "2024-07-01", "2024-08-01")
PAYMENTS_HEADER = ("payment_id", "invoice_id", "customer_id", "attempted_at", "amount", "currency", "status")
GOOD_PAYMENT = ("p1", "in_1", "c1", "2024-07-02T10:00:00Z", "10.00", "EUR", "succeeded")


def contract_valid(source: str, header: tuple[str, ...], *rows: tuple[str, ...]) -> pl.DataFrame:
    """The rows as the loader hands them to the suite: read as text, then typed by the contract validator."""
    frame = pl.DataFrame([list(r) for r in rows], schema=list(header), orient="row").with_columns(
        pl.int_range(1, len(rows) + 1, dtype=pl.Int64).alias(ROW_NUMBER)
    )
    validated = validate_batch(frame, source)
    assert validated.quarantine.is_empty(), validated.quarantine.to_dicts()
    return validated.valid


def run(conn, source: str, rows: pl.DataFrame) -> dict[str, CheckRun]:
    return {r.check_name: r for r in ex.validate_raw_batch(conn, source, rows, f"{source}/batch.csv", now=NOW)}


def failed(runs: dict[str, CheckRun]) -> dict[str, CheckRun]:
    return {name: r for name, r in runs.items() if not r.passed}


def test_a_good_batch_passes_every_expectation_and_each_run_counts_its_rows(conn):
    lines = contract_valid("invoice_lines", LINES_HEADER, GOOD_LINE, ("l2", *GOOD_LINE[1:]))
    runs = ex.validate_raw_batch(conn, "invoice_lines", lines, "invoice_lines/2024-07.csv", now=NOW)
    assert [r.passed for r in runs] == [True] * len(ex.raw_suite("invoice_lines").expectations)
    assert {(r.layer, r.asset, r.target, r.rows_checked, r.failing_rows) for r in runs} == {
        ("ingest", "raw/invoice_lines", "invoice_lines/2024-07.csv", 2, 0)
    }


def test_a_line_pointing_at_an_invoice_that_does_not_exist_fails_with_file_column_count_and_example(conn):
    lines = contract_valid("invoice_lines", LINES_HEADER, GOOD_LINE, ("l2", "in_404", *GOOD_LINE[2:]))
    bad = failed(run(conn, "invoice_lines", lines))
    assert list(bad) == ["expect_column_values_to_not_be_in_set(invoice_id)"]
    check = bad["expect_column_values_to_not_be_in_set(invoice_id)"]
    assert (check.severity, check.rows_checked, check.failing_rows) == ("block", 2, 1)
    assert check.examples == [{"row": 2, "invoice_id": "in_404"}]
    assert "1 of 2 rows reference invoice_id values absent from raw.invoices.invoice_id" in check.message
    assert "row 2: invoice_id='in_404'" in check.message
    error = ex.rejection_error("invoice_lines/2024-07.csv", list(run(conn, "invoice_lines", lines).values()))
    assert error.startswith("invoice_lines/2024-07.csv: rejected, nothing loaded (retried next run): ")


def test_an_unknown_product_only_warns(conn):
    lines = contract_valid("invoice_lines", LINES_HEADER, ("l1", "in_1", "p_gone", *GOOD_LINE[3:]))
    bad = failed(run(conn, "invoice_lines", lines))
    assert {name: (r.severity, r.failing_rows) for name, r in bad.items()} == {
        "expect_column_values_to_not_be_in_set(product_id)": ("warn", 1)
    }
    assert not any(r.blocks for r in bad.values())


def test_a_currency_without_fx_rates_is_refused_but_usd_needs_none(conn):
    payments = contract_valid(
        "payments",
        PAYMENTS_HEADER,
        GOOD_PAYMENT,
        ("p2", "in_1", "c1", "2024-07-02T10:00:00Z", "10.00", "CHF", "failed"),
        ("p3", "in_1", "c1", "2024-07-02T10:00:00Z", "10.00", "USD", "succeeded"),
    )
    bad = failed(run(conn, "payments", payments))
    assert list(bad) == ["expect_column_values_to_not_be_in_set(currency)"]
    assert bad["expect_column_values_to_not_be_in_set(currency)"].examples == [{"row": 2, "currency": "CHF"}]


WINDOW = "expect_column_values_to_be_between(attempted_at in earliest_timestamp..latest_plausible_timestamp)"
NOT_AHEAD = "expect_column_values_to_be_between(attempted_at <= latest_event_timestamp)"


def test_a_timestamp_in_2150_or_1999_is_refused_while_a_planned_date_a_year_ahead_is_fine(conn):
    lines = contract_valid(
        "invoice_lines",
        LINES_HEADER,
        ("l1", "in_1", "", "Pro plan", "2", "10.00", "20.00", "false", "2025-01-01", "2026-01-01"),
    )
    assert failed(run(conn, "invoice_lines", lines)) == {}
    payments = contract_valid(
        "payments",
        PAYMENTS_HEADER,
        GOOD_PAYMENT,
        ("p2", "in_1", "c1", "2150-01-01T00:00:00Z", "10.00", "EUR", "failed"),
        ("p3", "in_1", "c1", "1999-12-31T00:00:00Z", "10.00", "EUR", "failed"),
    )
    bad = failed(run(conn, "payments", payments))
    assert set(bad) == {WINDOW, NOT_AHEAD}  # 2150 is also in the future, which alone would only warn
    assert (bad[WINDOW].severity, bad[WINDOW].failing_rows) == ("block", 2)
    assert bad[WINDOW].examples == [
        {"row": 2, "attempted_at": "2150-01-01T00:00:00"},
        {"row": 3, "attempted_at": "1999-12-31T00:00:00"},
    ]
    assert (bad[NOT_AHEAD].severity, bad[NOT_AHEAD].failing_rows) == ("warn", 1)


def test_an_event_a_week_ahead_of_now_only_warns_and_a_day_of_clock_skew_passes(conn):
    payments = contract_valid(
        "payments",
        PAYMENTS_HEADER,
        GOOD_PAYMENT,
        ("p2", "in_1", "c1", "2025-01-16T11:00:00Z", "10.00", "EUR", "failed"),  # NOW + 23 h
    )
    assert failed(run(conn, "payments", payments)) == {}
    payments = contract_valid(
        "payments",
        PAYMENTS_HEADER,
        GOOD_PAYMENT,
        ("p2", "in_1", "c1", "2025-01-22T00:00:00Z", "10.00", "EUR", "failed"),  # NOW + 6.5 days
    )
    bad = failed(run(conn, "payments", payments))
    assert {name: (r.severity, r.failing_rows, r.examples) for name, r in bad.items()} == {
        NOT_AHEAD: ("warn", 1, [{"row": 2, "attempted_at": "2025-01-22T00:00:00"}])
    }


def test_an_optional_timestamp_that_is_null_throughout_the_batch_passes(conn):
    tickets = contract_valid(
        "support_tickets",
        ("ticket_id", "customer_id", "created_at", "solved_at", "category", "status"),
        ("t1", "c1", "2024-07-01T09:00:00Z", "", "billing", "open"),
    )
    assert tickets["solved_at"].null_count() == 1
    assert failed(run(conn, "support_tickets", tickets)) == {}


def test_check_names_are_unique_within_each_suite_and_show_the_bounds():
    for name in [f"raw_{s}" for s in SOURCES] + [f"marts_{m}" for m in PUBLISHED_MARTS]:
        names = [spec.check_name for spec in ex.load_suite(name).expectations]
        assert len(names) == len(set(names)), name
    names = {spec.check_name for spec in ex.load_suite("marts_kpi_churn").expectations}
    assert {
        "expect_table_row_count_to_be_between(rows >= 1)",
        "expect_column_max_to_be_between(month = as_of_month)",
        "expect_column_values_to_be_between(logo_churn_rate in 0..1)",
        "expect_compound_columns_to_be_unique(month, segment_dimension, segment_value)",
    } <= names


# --- frames the contract validator would have stopped: the suite is a second, independent gate ---


def typed_lines(**overrides) -> pl.DataFrame:
    rows = {
        "line_id": ["l1", "l2"],
        "invoice_id": ["in_1", "in_1"],
        "product_id": [None, None],
        "quantity": [2.0, 1.0],
        "unit_amount": [Decimal("10.00"), Decimal("5.00")],
        "period_start": [datetime(2024, 7, 1)] * 2,
        "period_end": [datetime(2024, 8, 1)] * 2,
        ROW_NUMBER: [1, 2],
    } | overrides
    return pl.DataFrame(rows, schema_overrides={"unit_amount": pl.Decimal(18, 4), "product_id": pl.String})


def test_a_key_repeated_within_the_frame_fails_uniqueness_on_both_rows(conn):
    bad = failed(run(conn, "invoice_lines", typed_lines(line_id=["l1", "l1"])))
    assert list(bad) == ["expect_column_values_to_be_unique(line_id)"]
    assert bad["expect_column_values_to_be_unique(line_id)"].failing_rows == 2
    assert [e["row"] for e in bad["expect_column_values_to_be_unique(line_id)"].examples] == [1, 2]


def test_a_null_key_and_a_negative_amount_fail_their_own_expectations(conn):
    bad = failed(run(conn, "invoice_lines", typed_lines(line_id=["l1", None], unit_amount=[Decimal("-1"), Decimal(5)])))
    assert set(bad) == {
        "expect_column_values_to_not_be_null(line_id)",
        "expect_column_values_to_be_between(unit_amount >= 0)",
    }
    assert bad["expect_column_values_to_be_between(unit_amount >= 0)"].examples == [{"row": 1, "unit_amount": -1.0}]


def test_a_compound_key_repeated_within_the_frame_fails_compound_uniqueness(conn):
    rates = pl.DataFrame(
        {
            "rate_date": [date(2024, 7, 1), date(2024, 7, 1), date(2024, 7, 2)],
            "currency": ["EUR", "EUR", "EUR"],
            "usd_per_unit": [1.1, 1.2, 1.1],
            ROW_NUMBER: [1, 2, 3],
        }
    )
    bad = failed(run(conn, "fx_rates", rates))
    assert list(bad) == ["expect_compound_columns_to_be_unique(rate_date, currency)"]
    assert bad["expect_compound_columns_to_be_unique(rate_date, currency)"].failing_rows == 2


def test_an_enum_value_outside_the_contract_and_a_score_outside_its_survey_range_fail(conn):
    responses = pl.DataFrame(
        {
            "response_id": ["r1", "r2", "r3", "r4"],
            "customer_id": ["c1"] * 4,
            "survey": ["nps", "csat", "nps", "exit"],
            "score": [10, 6, 0, 3],
            "responded_at": [datetime(2024, 7, 1)] * 4,
            "invoice_id": [None] * 4,
            ROW_NUMBER: [1, 2, 3, 4],
        },
        schema_overrides={"invoice_id": pl.String},
    )
    bad = failed(run(conn, "survey_responses", responses))
    assert set(bad) == {
        "expect_column_values_to_be_in_set(survey)",
        "expect_column_values_to_be_between(score in 1..5 where survey == 'csat')",
    }
    assert bad["expect_column_values_to_be_in_set(survey)"].examples == [{"row": 4, "survey": "exit"}]
    assert bad["expect_column_values_to_be_between(score in 1..5 where survey == 'csat')"].examples == [
        {"row": 2, "score": 6}
    ]


def test_a_batch_without_a_valid_row_only_warns(conn):
    bad = failed(run(conn, "invoice_lines", typed_lines().clear()))
    assert {name: (r.severity, r.examples) for name, r in bad.items()} == {
        "expect_table_row_count_to_be_between(rows >= 1)": ("warn", [0])
    }
    assert bad["expect_table_row_count_to_be_between(rows >= 1)"].message.startswith(
        "expect_table_row_count_to_be_between(rows >= 1) [warn] failed: observed 0, expected min_value=1. "
    )


# --- the pieces --------------------------------------------------------------------------


def test_absent_keys_are_looked_up_among_the_referenced_keys_only(conn):
    spec = next(s for s in ex.raw_suite("payments").expectations if s.columns == ("currency",) and s.parent)
    conn.register(ex._BATCH_VIEW, pl.DataFrame({"currency": ["EUR", "USD", "GBP", None, "GBP"]}))
    assert ex.absent_keys(conn, spec) == ["GBP"]


def test_frames_reach_gx_with_nanosecond_times_float_money_and_far_dates_clipped():
    frame = pl.DataFrame(
        {
            "at": [datetime(2024, 7, 1, 10), datetime(3000, 1, 1)],
            "day": [date(2024, 7, 1), None],
            "amount": [Decimal("12.50"), None],
            "skipped": [1, 2],
        },
        schema_overrides={"amount": pl.Decimal(18, 4)},
    )
    data = ex.to_pandas(frame, ["at", "day", "amount", "missing"])
    assert list(data.columns) == ["at", "day", "amount"]
    assert [str(t) for t in data.dtypes] == ["datetime64[ns]", "datetime64[ns]", "float64"]
    assert data["at"].tolist() == [pd.Timestamp("2024-07-01 10:00"), pd.Timestamp("2262-01-01")]
    assert data["amount"].iloc[0] == 12.5


def test_months_are_chunked_whole_and_in_order():
    months = [(date(2024, m, 1), rows) for m, rows in zip(range(1, 6), (40, 40, 30, 100, 10), strict=True)]
    # 40 + 40 fit in 100; + 30 would not; 100 fills a chunk alone; 10 more would overflow it
    assert ex.month_chunks(months, 100) == [
        (date(2024, 1, 1), date(2024, 2, 1), 80),
        (date(2024, 3, 1), date(2024, 3, 1), 30),
        (date(2024, 4, 1), date(2024, 4, 1), 100),
        (date(2024, 5, 1), date(2024, 5, 1), 10),
    ]


def test_the_as_of_month_is_the_month_of_the_latest_event_or_invoice(conn):
    assert ex.data_as_of_month(conn) == date(2024, 7, 1)
    conn.execute(
        "insert into raw.subscription_events (event_id, subscription_id, customer_id, event_type, effective_at, "
        "_batch_id, _batch_file, _batch_hash, _row_number, _loaded_at) values "
        "('e1', 's1', 'c1', 'created', timestamp '2024-09-30 23:00', 0, 'seed', 'seed', 1, timestamp '2024-01-01')"
    )
    assert ex.data_as_of_month(conn) == date(2024, 9, 1)
