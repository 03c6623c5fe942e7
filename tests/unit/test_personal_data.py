"""Personal values are masked by column, email-shaped text is redacted anywhere, logs included."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import sys

import duckdb
import polars as pl
import pytest

from orchestration.lib import personal_data
from orchestration.lib.check_runs import CHECK_RUNS_TABLE, CheckRun, record_check_runs
from orchestration.lib.contract import SOURCES
from orchestration.lib.expectations import raw_suite, validate_raw_batch
from orchestration.lib.personal_data import (
    REDACTED_EMAIL,
    RedactEmails,
    install_log_redaction,
    mask_example,
    missing_from_contract,
    personal_columns,
    redact_text,
)
from orchestration.lib.quality_report import load_quality_report, render_html, render_markdown
from orchestration.lib.readers import ROW_NUMBER


def test_every_declared_personal_column_is_a_column_of_the_contract():
    assert missing_from_contract() == []
    assert {"name", "email"} <= set(SOURCES["customers"].column_names)


def test_personal_columns_are_found_by_bare_schema_or_asset_name_and_only_in_their_table():
    expected = {"name": "name", "email": "email"}
    assert personal_columns("customers") == expected
    assert personal_columns("raw.customers") == expected
    assert personal_columns("raw/customers") == expected
    # a product's name is not personal
    assert personal_columns("raw.products") == {}


def test_a_personal_value_keeps_only_its_kind_and_length():
    # "Nordwind Blue Fox GmbH" has 22 characters
    assert personal_data.mask_value("Nordwind Blue Fox GmbH", "name") == "[redacted name, 22 chars]"
    assert personal_data.mask_value(None, "email") is None


def test_emails_are_redacted_inside_any_text_and_other_text_is_untouched():
    text = "customer_id: unknown value 'billing+cus_07@nordwind-blue.test' (row 3), also a.b@x.co.uk."
    assert redact_text(text) == (f"customer_id: unknown value '{REDACTED_EMAIL}' (row 3), also {REDACTED_EMAIL}.")
    assert redact_text("cus_0042 at 2024-01-01 @ noon") == "cus_0042 at 2024-01-01 @ noon"


def test_an_example_row_masks_personal_columns_by_name_and_emails_in_the_others():
    example = {"row": 7, "email": "ops@acme.test", "name": "Acme Ltd.", "country": "x@y.test", "score": 11}
    assert mask_example(example, "raw.customers") == {
        "row": 7,
        "email": "[redacted email, 13 chars]",
        "name": "[redacted name, 9 chars]",
        "country": REDACTED_EMAIL,
        "score": 11,
    }
    # in products, `name` is a product's name: kept
    assert mask_example({"name": "Pro plan"}, "raw.products") == {"name": "Pro plan"}


def test_check_runs_are_stored_masked(tmp_path):
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    run = CheckRun(
        layer="ingest",
        asset="raw/customers",
        check_name="expect_column_values_to_be_unique(email)",
        passed=False,
        examples=[{"row": 2, "email": "jane@example.org"}, "jane@example.org"],
        message="1 of 3 rows fail on column email, e.g. row 2: email='jane@example.org'",
    )
    record_check_runs(conn, "run-1", [run])
    examples, message = conn.execute(f"select examples, message from {CHECK_RUNS_TABLE}").fetchone()
    assert json.loads(examples) == [{"row": 2, "email": "[redacted email, 16 chars]"}, REDACTED_EMAIL]
    assert message == f"1 of 3 rows fail on column email, e.g. row 2: email='{REDACTED_EMAIL}'"


def test_the_quality_report_masks_rows_stored_before_masking_existed(tmp_path):
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    record_check_runs(conn, "run-1", [CheckRun("ingest", "raw/customers", "c", passed=False)])
    # a row as an older version stored it: values in clear
    conn.execute(
        f"update {CHECK_RUNS_TABLE} set examples = ?, message = ?, target = ?",
        ['[{"row": 1, "name": "Jane Roe"}]', "e.g. jane@example.org", "customers/jane@example.org.csv"],
    )
    report = load_quality_report(conn)
    page = render_html(report) + render_markdown(report)
    assert "Jane Roe" not in page and "jane@example.org" not in page
    assert "[redacted name, 8 chars]" in page


def test_a_failing_expectation_on_a_survey_batch_gives_no_email_in_its_examples_or_message(tmp_path):
    """A survey tool that exports the respondent's address as customer_id: the referential
    expectation fails and quotes the value; what is kept must not carry it."""
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    conn.execute("create schema raw")
    conn.execute("create table raw.customers (customer_id varchar)")
    conn.execute("create table raw.invoices (invoice_id varchar)")
    conn.execute("insert into raw.customers values ('cus_1')")
    rows = pl.DataFrame(
        {
            ROW_NUMBER: [2, 3],
            "response_id": ["r1", "r2"],
            "customer_id": ["cus_1", "jane.roe@example.org"],
            "survey": ["csat", "csat"],
            "score": [4, 5],
            "responded_at": [dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 2)],
            "invoice_id": [None, None],
            "comment": ["Fine.", "Call me, Jane Roe"],
        },
        schema_overrides={"invoice_id": pl.String},
    )
    assert "customer_id" in {c for spec in raw_suite("survey_responses").expectations for c in spec.columns}
    runs = validate_raw_batch(conn, "survey_responses", rows, "survey_responses/b.csv")
    failed = [run for run in runs if not run.passed]
    assert [run.check_name for run in failed] == ["expect_column_values_to_not_be_in_set(customer_id)"]
    kept = json.dumps([failed[0].examples, failed[0].message])
    assert "jane.roe@example.org" not in kept
    assert REDACTED_EMAIL in kept
    assert '"row": 3' in kept  # the row number still leads to the value in the warehouse


@pytest.fixture()
def restore_record_factory():
    """Start from logging's plain factory (importing orchestration.definitions or running the
    CLI earlier in this process installs the redaction), and put back whatever was there."""
    factory, installed = logging.getLogRecordFactory(), personal_data._installed_factory
    logging.setLogRecordFactory(logging.LogRecord)
    personal_data._installed_factory = None
    yield
    logging.setLogRecordFactory(factory)
    personal_data._installed_factory = installed


def test_log_records_of_any_logger_are_redacted_once_installed(restore_record_factory):
    stream = io.StringIO()
    logger = logging.getLogger("tests.personal_data.any")
    logger.propagate = False
    logger.addHandler(logging.StreamHandler(stream))
    logger.warning("before: %s", "jane@example.org")
    install_log_redaction()
    install_log_redaction()  # idempotent: one wrapper, not two
    logger.warning("after: %s", "jane@example.org")
    try:
        raise ValueError("bad row for jane@example.org")
    except ValueError:
        logger.exception("failed")
    lines = stream.getvalue()
    assert "before: jane@example.org" in lines  # not installed yet: proves the check can see one
    assert f"after: {REDACTED_EMAIL}" in lines
    assert f"ValueError: bad row for {REDACTED_EMAIL}" in lines
    assert lines.count("jane@example.org") == 1


def test_the_filter_redacts_the_records_of_the_logger_it_is_attached_to():
    stream = io.StringIO()
    logger = logging.getLogger("tests.personal_data.filtered")
    logger.propagate = False
    logger.addHandler(logging.StreamHandler(stream))
    logger.addFilter(RedactEmails())
    logger.error("could not read %s", "customers/jane@example.org.csv")
    assert stream.getvalue() == f"could not read customers/{REDACTED_EMAIL}\n"


def test_console_redaction_rewrites_what_the_process_prints(monkeypatch, restore_record_factory):
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.setattr("sys.stderr", err)
    personal_data.install_console_redaction()
    personal_data.install_console_redaction()  # idempotent: wrapped once
    print("error: cannot read customers/jane@example.org.csv")
    print("jane@example.org", file=sys.stderr)
    assert out.getvalue() == f"error: cannot read customers/{REDACTED_EMAIL}\n"
    assert err.getvalue() == f"{REDACTED_EMAIL}\n"
