"""Broken deliveries, each with the exact outcome a user should get from ingestion.

Every case writes one or more batch files into a landing folder that already
holds a small valid world (tests/unit/world_sample.py, one `000-world.csv` per
source), and states per file: the manifest status, how many records it
delivered (counted here, as the file is built), which rows are quarantined
with which column and reason, or the file-level error. The integration test
tests/integration/test_bad_input_corpus.py runs the Dagster ingest assets on
all cases at once and checks every statement; docs/data_quality.md shows
`outcome_table()`, and a test keeps the two equal.

All cases share one landing folder, so they are built to stay independent:
new keys per case, references only to the world's rows, and at most one
rejected file per source, sorting after every other file of that source (a
rejected batch holds back the files after it) and only in sources nothing
else waits for (a rejected source holds back its children).

Write the corpus to look at it: `python -m tests.corpus.bad_deliveries <folder>`.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from orchestration.lib.contract import SOURCES
from orchestration.lib.expectations import parent_sources
from tests.unit.world_sample import sample_tables

WORLD_FILE = "000-world.csv"
LOADED, UNREADABLE, REJECTED = "loaded", "unreadable", "rejected"
TEN_MB = 10 * 1024 * 1024


@dataclass(frozen=True)
class Quarantined:
    """One quarantined row: its record number in the file, first failing column, full reason."""

    row: int
    column: str | None
    reason: str


@dataclass(frozen=True)
class Delivery:
    """One batch file of a case and what ingestion must make of it."""

    path: str  # relative to the landing folder, as the load manifest names it
    content: bytes
    delivered: int  # records written into the file, counted while building it
    status: str  # manifest status: LOADED, UNREADABLE or REJECTED
    quarantined: tuple[Quarantined, ...] = ()
    # Fragments the file-level error (manifest `error`) must contain, in order.
    error_parts: tuple[str, ...] = ()

    @property
    def source(self) -> str:
        return self.path.split("/", 1)[0]

    @property
    def loaded(self) -> int:
        return self.delivered - len(self.quarantined) if self.status == LOADED else 0


@dataclass(frozen=True)
class Case:
    name: str
    broken: str  # what is wrong with the delivery, for the table in the docs
    outcome: str  # what ingestion does with it, for the table in the docs
    files: tuple[Delivery, ...]
    # Queries on the warehouse after the run, with the rows each must return.
    raw_checks: tuple[tuple[str, list[tuple]], ...] = ()


# --- building blocks ---------------------------------------------------------


@functools.cache
def world_text() -> dict[str, pl.DataFrame]:
    """The valid world as the text its CSV files hold (what a case row starts from)."""
    return {
        source: pl.read_csv(io.BytesIO(frame.write_csv().encode()), infer_schema=False)
        for source, frame in sample_tables().items()
    }


def world_files() -> dict[str, bytes]:
    """One CSV per source with the whole valid world."""
    return {f"{source}/{WORLD_FILE}": frame.write_csv().encode() for source, frame in sample_tables().items()}


def world_rows(source: str) -> int:
    return world_text()[source].height


def row(source: str, index: int = 0, **changes: str | None) -> dict[str, str | None]:
    """A world row of `source` as text, with some values changed."""
    values = world_text()[source].row(index, named=True)
    unknown = changes.keys() - values.keys()
    if unknown:
        raise KeyError(f"{source} has no columns {sorted(unknown)}")
    return values | changes


def csv_bytes(
    records: list[dict[str, str | None]],
    *,
    delimiter: str = ",",
    line_end: str = "\n",
    bom: bool = False,
    encoding: str = "utf-8",
    columns: Iterable[str] | None = None,
) -> bytes:
    """Records as a CSV file, header from the first record (or `columns`), null as an empty field."""
    header = list(columns if columns is not None else records[0])
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator=line_end)
    writer.writerow(header)
    for record in records:
        writer.writerow(["" if record.get(c) is None else record[c] for c in header])
    return (b"\xef\xbb\xbf" if bom else b"") + out.getvalue().encode(encoding)


def csv_delivery(path: str, records: list[dict[str, str | None]], status: str = LOADED, **options) -> Delivery:
    quarantined = options.pop("quarantined", ())
    error_parts = options.pop("error_parts", ())
    return Delivery(path, csv_bytes(records, **options), len(records), status, tuple(quarantined), tuple(error_parts))


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the cases ------------------------------------------------------------------


def _wrong_delimiter() -> Case:
    records = [row("customers", 0, customer_id="cus_semicolon_1"), row("customers", 1, customer_id="cus_semicolon_2")]
    return Case(
        "wrong_delimiter",
        "CSV separated by `;` instead of `,`",
        "file unreadable (nothing loaded, retried next run): the error names the header and the separator",
        (
            csv_delivery(
                "customers/wrong-delimiter.csv",
                records,
                UNREADABLE,
                delimiter=";",
                error_parts=(
                    "customers/wrong-delimiter.csv: the header is one column containing ';' "
                    "('customer_id;name;email;country;currency;..."
                    "'): the contract separates fields with ','",
                ),
            ),
        ),
    )


def _utf8_bom() -> Case:
    records = [
        row("customers", 0, customer_id="cus_bom_1", name="Bom One"),
        row("customers", 1, customer_id="cus_bom_2", name="Bom Two"),
    ]
    path = "customers/utf8-bom.csv"
    return Case(
        "utf8_bom",
        "UTF-8 file starting with a byte-order mark",
        "loads in full; the BOM is not part of the first column name",
        (csv_delivery(path, records, bom=True),),
        (
            (
                f"select customer_id from raw.customers where _batch_file = '{path}' order by 1",
                [("cus_bom_1",), ("cus_bom_2",)],
            ),
        ),
    )


def _crlf() -> Case:
    # status last: a '\r' left on the line's last value would make it an unknown enum value
    columns = [c for c in world_text()["payments"].columns if c != "status"] + ["status"]
    records = [
        row("payments", 0, payment_id="py_crlf_1"),
        row("payments", 1, payment_id="py_crlf_2"),
    ]
    path = "payments/crlf-line-endings.csv"
    return Case(
        "crlf_line_endings",
        "Windows line endings (CRLF)",
        "loads in full; no value keeps a trailing `\\r`",
        (csv_delivery(path, records, line_end="\r\n", columns=columns),),
        (
            (
                f"select payment_id, status from raw.payments where _batch_file = '{path}' order by 1",
                [("py_crlf_1", "succeeded"), ("py_crlf_2", "failed")],
            ),
        ),
    )


def _quoted_newlines() -> Case:
    records = [
        row("survey_responses", 0, response_id="rsp_qn_1", comment="one line"),
        row("survey_responses", 0, response_id="rsp_qn_2", comment='first line\nsecond line, with "quotes"'),
        row("survey_responses", 0, response_id="rsp_qn_3", comment="after the multi-line record"),
    ]
    path = "survey_responses/quoted-newlines.csv"
    return Case(
        "quoted_newlines",
        "a quoted field spanning two lines",
        "loads in full; the newline stays in the value and row numbers count records, not lines",
        (csv_delivery(path, records),),
        (
            (
                f"select response_id, comment, _row_number from raw.survey_responses "
                f"where _batch_file = '{path}' order by 1",
                [
                    ("rsp_qn_1", "one line", 1),
                    ("rsp_qn_2", 'first line\nsecond line, with "quotes"', 2),
                    ("rsp_qn_3", "after the multi-line record", 3),
                ],
            ),
        ),
    )


def _non_utf8() -> Case:
    records = [
        row("customers", 0, customer_id="cus_latin1_1"),
        row("customers", 1, customer_id="cus_latin1_2", name="M\u00fcller GmbH"),
        row("customers", 2, customer_id="cus_latin1_3"),
    ]
    return Case(
        "non_utf8_bytes",
        "Latin-1 encoded file (`ü` as byte 0xfc) in record 2",
        "file unreadable (nothing loaded, retried next run): the error names line, record and column, not the value",
        (
            csv_delivery(
                "customers/latin-1-encoded.csv",
                records,
                UNREADABLE,
                encoding="latin-1",
                error_parts=(
                    "customers/latin-1-encoded.csv: not UTF-8 at line 3, record 2, column name (byte 0xfc): "
                    "the contract requires UTF-8",
                ),
            ),
        ),
    )


def _truncated_gzip() -> Case:
    records = [row("payments", i, payment_id=f"py_gz_{i + 1}") for i in range(3)]
    whole = gzip.compress(csv_bytes(records))
    path = "payments/truncated.csv.gz"
    return Case(
        "truncated_gzip",
        "`.csv.gz` cut off half-way (a copy in progress)",
        "file unreadable (nothing loaded, retried next run)",
        (
            Delivery(
                path,
                whole[: len(whole) // 2],
                len(records),
                UNREADABLE,
                error_parts=(f"{path}: not a readable gzip file (",),
            ),
        ),
    )


def _empty_file() -> Case:
    path = "credit_notes/empty.csv"
    return Case(
        "empty_file",
        "0 bytes",
        "file unreadable (retried next run: it may still be being written); nothing to load",
        (Delivery(path, b"", 0, UNREADABLE, error_parts=(f"{path}: empty file (0 bytes)",)),),
    )


def _header_only() -> Case:
    path = "credit_notes/header-only.csv"
    header = ",".join(SOURCES["credit_notes"].column_names) + "\n"
    return Case(
        "header_only",
        "a header and no records",
        "loaded with 0 rows; the `row count >= 1` expectation warns",
        (Delivery(path, header.encode(), 0, LOADED),),
        (
            (
                f"select check_name, severity from quality.check_runs where target = '{path}' and not passed",
                [("expect_table_row_count_to_be_between(rows >= 1)", "warn")],
            ),
        ),
    )


def _missing_required_column() -> Case:
    columns = [c for c in world_text()["products"].columns if c != "unit_amount"]
    records = [
        row("products", 0, product_id="prod_no_price_1"),
        row("products", 1, product_id="prod_no_price_2"),
    ]
    reason = "missing required column unit_amount"
    return Case(
        "missing_required_column",
        "products without the required `unit_amount` column",
        "every row quarantined: `missing required column unit_amount`",
        (
            csv_delivery(
                "products/missing-required-column.csv",
                records,
                columns=columns,
                quarantined=[Quarantined(1, "unit_amount", reason), Quarantined(2, "unit_amount", reason)],
            ),
        ),
    )


def _extra_columns() -> Case:
    records = [
        row("invoice_lines", 0, line_id="il_extra_1") | {"sku": "SKU-1", "note": "from the new export"},
        row("invoice_lines", 1, line_id="il_extra_2") | {"sku": "SKU-2", "note": None},
    ]
    path = "invoice_lines/extra-columns.csv"
    return Case(
        "extra_columns",
        "two columns the contract does not know (`sku`, `note`)",
        "loads in full; the extra values are kept as JSON in `_extra`",
        (csv_delivery(path, records),),
        (
            (
                f"select line_id, _extra from raw.invoice_lines where _batch_file = '{path}' order by 1",
                [
                    ("il_extra_1", '{"sku":"SKU-1","note":"from the new export"}'),
                    ("il_extra_2", '{"sku":"SKU-2","note":null}'),
                ],
            ),
        ),
    )


def _unclosed_quote() -> Case:
    records = [row("invoice_lines", i, line_id=f"il_quote_{i + 1}") for i in range(3)]
    content = csv_bytes(records).replace(b",Basic plan,", b',"Basic plan,', 1)
    path = "invoice_lines/unclosed-quote.csv"
    return Case(
        "unclosed_quote",
        "a quote opened in record 1 and never closed",
        "file unreadable (nothing loaded, retried next run): read leniently, the rest of the file would be "
        "one value, so records would vanish into it",
        (
            Delivery(
                path,
                content,
                len(records),
                UNREADABLE,
                error_parts=(
                    f"{path}: a quoted value opened in record 1 (line 2) is never closed, "
                    "so the rest of the file would be one value",
                ),
            ),
        ),
    )


def _wrong_types() -> Case:
    records = [
        row("invoice_lines", 0, line_id="il_types_1"),
        row("invoice_lines", 0, line_id="il_types_2", quantity="two"),
        row("invoice_lines", 0, line_id="il_types_3", proration="yes"),
        row("invoice_lines", 0, line_id="il_types_4", period_start="01/02/2023"),
        row("invoice_lines", 0, line_id="il_types_5", unit_amount="12.5.0", tax_rate="19%"),
    ]
    return Case(
        "wrong_types",
        "a number, boolean, timestamp and money value that do not parse",
        "4 of 5 rows quarantined, each naming its column and value; the valid row loads",
        (
            csv_delivery(
                "invoice_lines/wrong-types.csv",
                records,
                quarantined=[
                    Quarantined(2, "quantity", "quantity: not a number ('two')"),
                    Quarantined(3, "proration", "proration: not a boolean (true/false/1/0) ('yes')"),
                    Quarantined(4, "period_start", "period_start: not an ISO-8601 timestamp ('01/02/2023')"),
                    Quarantined(
                        5, "unit_amount", "unit_amount: not a decimal number ('12.5.0'); tax_rate: not a number ('19%')"
                    ),
                ],
            ),
        ),
    )


def _unknown_enum_values() -> Case:
    records = [
        row("invoices", 0, invoice_id="in_enum_1", invoice_number="INV-ENUM-1"),
        row("invoices", 0, invoice_id="in_enum_2", invoice_number="INV-ENUM-2", status="refunded"),
        row("invoices", 0, invoice_id="in_enum_3", invoice_number="INV-ENUM-3", billing_reason="renewal"),
    ]
    return Case(
        "unknown_enum_values",
        "invoice `status` `refunded`, `billing_reason` `renewal`",
        "those 2 rows quarantined with the allowed values; the valid row loads",
        (
            csv_delivery(
                "invoices/unknown-enum-values.csv",
                records,
                quarantined=[
                    Quarantined(
                        2,
                        "status",
                        "status: unknown value 'refunded' (expected one of draft, open, paid, void, uncollectible)",
                    ),
                    Quarantined(
                        3,
                        "billing_reason",
                        "billing_reason: unknown value 'renewal' (expected one of subscription_create, "
                        "subscription_cycle, subscription_update, manual)",
                    ),
                ],
            ),
        ),
    )


def _unknown_currency() -> Case:
    not_iso = [
        row("payments", 0, payment_id="py_cur_1"),
        row("payments", 0, payment_id="py_cur_2", currency="usd"),
        row("payments", 0, payment_id="py_cur_3", currency="ABC"),
    ]
    no_rate = [
        row("payments", 0, payment_id="py_cur_4"),
        row("payments", 0, payment_id="py_cur_5", currency="CHF"),
    ]
    rejected = "payments/unknown-currency-2-no-fx-rate.csv"
    return Case(
        "unknown_currency",
        "`usd` and `ABC` (not ISO-4217) in one file; `CHF` (ISO, but no FX rate delivered) in another",
        "`usd`, `ABC`: row quarantined, rest loads; `CHF`: batch rejected whole (retried next run, "
        "loads once CHF rates arrive)",
        (
            csv_delivery(
                "payments/unknown-currency-1-not-iso.csv",
                not_iso,
                quarantined=[
                    Quarantined(2, "currency", "currency: not an ISO-4217 upper-case code ('usd')"),
                    Quarantined(3, "currency", "currency: not an ISO-4217 currency ('ABC')"),
                ],
            ),
            csv_delivery(
                rejected,
                no_rate,
                REJECTED,
                error_parts=(
                    f"{rejected}: rejected, nothing loaded (retried next run): ",
                    "expect_column_values_to_not_be_in_set(currency) [block]: 1 of 2 rows reference currency "
                    "values absent from raw.fx_rates.currency, e.g. row 2: currency='CHF'",
                ),
            ),
        ),
    )


def _negative_or_absurd_amounts() -> Case:
    records = [
        row("payments", 0, payment_id="py_amt_1", amount="-15.00"),
        row("payments", 0, payment_id="py_amt_2", amount="1e20"),
        row("payments", 0, payment_id="py_amt_3", amount="NaN"),
        row("payments", 0, payment_id="py_amt_4", amount="999999999.99"),
    ]
    return Case(
        "negative_or_absurd_amounts",
        "amounts `-15.00`, `1e20`, `NaN`, `999999999.99`",
        "the first 3 rows quarantined (negative; beyond DECIMAL(18,4); not a number); "
        "999,999,999.99 loads (the contract sets no ceiling; the anomaly models judge size)",
        (
            csv_delivery(
                "payments/negative-or-absurd-amounts.csv",
                records,
                quarantined=[
                    Quarantined(1, "amount", "amount: negative value ('-15.00')"),
                    Quarantined(2, "amount", "amount: out of range, at most 14 digits before the point ('1e20')"),
                    Quarantined(3, "amount", "amount: not a decimal number ('NaN')"),
                ],
            ),
        ),
    )


def _dates(now: datetime) -> Case:
    impossible = [
        row("support_tickets", 0, ticket_id="tkt_date_1"),
        row("support_tickets", 0, ticket_id="tkt_date_2", created_at="2023-02-30T10:00:00Z"),
        row("support_tickets", 0, ticket_id="tkt_date_3", solved_at="2023-13-01"),
    ]
    soon = (now + timedelta(days=60)).replace(hour=9, minute=0, second=0, microsecond=0)
    future = [row("support_tickets", 0, ticket_id="tkt_date_4", created_at=_iso(soon), solved_at=None)]
    out_of_range = [
        row("support_tickets", 0, ticket_id="tkt_date_5"),
        row("support_tickets", 0, ticket_id="tkt_date_6", created_at="1899-12-31T00:00:00Z", solved_at=None),
        row("support_tickets", 0, ticket_id="tkt_date_7", created_at="2150-01-01T00:00:00Z", solved_at=None),
    ]
    future_path = "support_tickets/dates-2-future-within-two-years.csv"
    rejected = "support_tickets/dates-3-out-of-range.csv"
    return Case(
        "dates_out_of_range_and_future",
        "`2023-02-30`, month 13; a ticket 60 days ahead; years 1899 and 2150",
        "impossible dates: row quarantined; 60 days ahead: loads with a warning; "
        "1899 / 2150 (outside 2000 .. now + 2 years): batch rejected whole, naming rows 2 and 3",
        (
            csv_delivery(
                "support_tickets/dates-1-impossible-calendar-dates.csv",
                impossible,
                quarantined=[
                    Quarantined(2, "created_at", "created_at: not an ISO-8601 timestamp ('2023-02-30T10:00:00Z')"),
                    Quarantined(3, "solved_at", "solved_at: not an ISO-8601 timestamp ('2023-13-01')"),
                ],
            ),
            csv_delivery(future_path, future),
            csv_delivery(
                rejected,
                out_of_range,
                REJECTED,
                error_parts=(
                    f"{rejected}: rejected, nothing loaded (retried next run): ",
                    "expect_column_values_to_be_between(created_at in earliest_timestamp..latest_plausible_timestamp)"
                    " [block]: 2 of 3 rows fail on column created_at, e.g. row 2: created_at='1899-12-31T00:00:00'; "
                    "row 3: created_at='2150-01-01T00:00:00'",
                ),
            ),
        ),
        (
            (
                f"select check_name, severity, examples from quality.check_runs where target = '{future_path}' "
                "and not passed",
                [
                    (
                        "expect_column_values_to_be_between(created_at <= latest_event_timestamp)",
                        "warn",
                        json.dumps([{"row": 1, "created_at": soon.strftime("%Y-%m-%dT%H:%M:%S")}]),
                    )
                ],
            ),
        ),
    )


def _duplicate_keys() -> Case:
    same = row("customers", 5, customer_id="cus_dup_1")
    records = [
        same,
        dict(same),
        row("customers", 6, customer_id="cus_dup_2", company_size="smb"),
        row("customers", 6, customer_id="cus_dup_2", company_size="enterprise"),
        row("customers", 7, customer_id="cus_dup_3"),
    ]
    conflict = "customer_id: duplicate key with different values (2 rows in this batch, first at row 3)"
    return Case(
        "duplicate_keys_in_batch",
        "one customer twice, identical; another twice with different values and the same `updated_at`",
        "the identical copy quarantined as `exact duplicate of row 1` (the first loads); both conflicting rows "
        "quarantined (nothing says which is right)",
        (
            csv_delivery(
                "customers/duplicate-keys.csv",
                records,
                quarantined=[
                    Quarantined(2, "customer_id", "customer_id: exact duplicate of row 1"),
                    Quarantined(3, "customer_id", conflict),
                    Quarantined(4, "customer_id", conflict),
                ],
            ),
        ),
    )


def _row_updated_twice() -> Case:
    world = row("customers", 3)
    key = world["customer_id"]
    first, second = "2023-09-01T08:00:00Z", "2023-10-01T08:00:00Z"
    batch_1 = [row("customers", 3, industry="logistics", updated_at=first)]
    batch_2 = [row("customers", 3, industry="energy", updated_at=second)]
    in_one = [
        row("customers", 4, company_size="enterprise", updated_at="2023-11-02T08:00:00Z"),
        row("customers", 4, company_size="mid_market", updated_at="2023-11-01T08:00:00Z"),
    ]
    in_one_key = in_one[0]["customer_id"]
    return Case(
        "row_updated_twice",
        "a customer updated in two later batches (later `updated_at` each); another twice in one batch",
        "every version across batches loads (raw keeps all, the latest `updated_at` wins downstream); "
        "inside one batch the latest version loads and the older one is quarantined as superseded",
        (
            csv_delivery("customers/row-updated-twice-1.csv", batch_1),
            csv_delivery("customers/row-updated-twice-2.csv", batch_2),
            csv_delivery(
                "customers/row-updated-twice-in-one-batch.csv",
                in_one,
                quarantined=[
                    Quarantined(
                        2,
                        "customer_id",
                        "customer_id: superseded by row 1 of this batch (later updated_at)",
                    ),
                ],
            ),
        ),
        (
            (
                "select industry, strftime(updated_at, '%Y-%m-%d %H:%M'), _batch_file from raw.customers "
                f"where customer_id = '{key}' order by updated_at",
                [
                    (world["industry"], world["updated_at"][:16].replace("T", " "), f"customers/{WORLD_FILE}"),
                    ("logistics", "2023-09-01 08:00", "customers/row-updated-twice-1.csv"),
                    ("energy", "2023-10-01 08:00", "customers/row-updated-twice-2.csv"),
                ],
            ),
            (
                "select company_size, _batch_file from raw.customers "
                f"where customer_id = '{in_one_key}' order by _batch_id",
                [
                    (world_text()["customers"]["company_size"][4], f"customers/{WORLD_FILE}"),
                    ("enterprise", "customers/row-updated-twice-in-one-batch.csv"),
                ],
            ),
        ),
    )


def _ten_mb_text_field() -> Case:
    sentence = "The invoice was clear but long. "
    huge = (sentence * (TEN_MB // len(sentence) + 1))[:TEN_MB]
    records = [
        row("survey_responses", 0, response_id="rsp_big_1", comment=huge),
        row("survey_responses", 0, response_id="rsp_big_2", comment="short one"),
    ]
    path = "survey_responses/ten-mb-comment.csv"
    return Case(
        "ten_mb_text_field",
        "a 10 MB free-text comment",
        "loads in full, the value unchanged (the contract sets no length limit)",
        (csv_delivery(path, records),),
        (
            (
                f"select response_id, length(comment) from raw.survey_responses where _batch_file = '{path}' "
                "order by 1",
                [("rsp_big_1", TEN_MB), ("rsp_big_2", 9)],
            ),
        ),
    )


def _parquet_different_schema() -> Case:
    # An older export: the amount is called paid_amount and is a float; ids and times are native types.
    frame = pl.DataFrame(
        {
            "payment_id": ["py_pq_1", "py_pq_2"],
            "invoice_id": ["in_000000_000", "in_000000_001"],
            "customer_id": ["cus_000000", "cus_000000"],
            "attempted_at": [datetime(2023, 1, 2, 0, 17), datetime(2023, 2, 1, 1, 0)],
            "paid_amount": [15.0, 15.0],
            "currency": ["USD", "USD"],
            "status": ["succeeded", "failed"],
            "attempt_number": [1, 1],
        }
    )
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    reason = "missing required column amount"
    return Case(
        "parquet_different_schema",
        "Parquet payments whose amount column is `paid_amount` (float)",
        "every row quarantined: `missing required column amount`; `paid_amount` kept in each quarantined record",
        (
            Delivery(
                "payments/different-schema.parquet",
                buffer.getvalue(),
                frame.height,
                LOADED,
                (Quarantined(1, "amount", reason), Quarantined(2, "amount", reason)),
            ),
        ),
        (
            (
                "select row_number, json_extract_string(record, '$.paid_amount') from raw._quarantine "
                "where batch_file = 'payments/different-schema.parquet' order by 1",
                [(1, "15.0"), (2, "15.0")],
            ),
        ),
    )


def _jsonl_not_json() -> Case:
    def line(i: int) -> str:
        record = row("survey_responses", 0, response_id=f"rsp_json_{i}")
        return json.dumps(record | {"score": int(record["score"])})

    broken = '{"response_id": "rsp_json_2", "customer_id": '
    too_deep = "[" * 100_000 + "]" * 100_000
    lines = [line(1), broken, line(3), "[1, 2]", too_deep]
    path = "survey_responses/not-json-line.jsonl"
    return Case(
        "jsonl_line_not_json",
        "JSONL whose line 2 is cut off, line 4 is an array and line 5 is nested 100,000 deep",
        "lines 2, 4 and 5 quarantined (`not valid JSON ... at column 46`, `an array, not a JSON object`, "
        "`nested too deeply`); lines 1 and 3 load",
        (
            Delivery(
                path,
                ("\n".join(lines) + "\n").encode(),
                len(lines),
                LOADED,
                (
                    Quarantined(2, None, "line 2: not valid JSON (Expecting value at column 46)"),
                    Quarantined(4, None, "line 4: an array, not a JSON object"),
                    Quarantined(5, None, "line 5: not valid JSON (nested too deeply)"),
                ),
            ),
        ),
        (
            (
                f"select response_id, _row_number from raw.survey_responses where _batch_file = '{path}' order by 2",
                [("rsp_json_1", 1), ("rsp_json_3", 3)],
            ),
        ),
    )


def _file_name_with_spaces_and_unicode() -> Case:
    path = "customers/Kunden März 2023 (Kopie) — ½.csv"
    records = [row("customers", 8, customer_id="cus_name_1"), row("customers", 9, customer_id="cus_name_2")]
    return Case(
        "file_name_spaces_unicode",
        "file name `Kunden März 2023 (Kopie) — ½.csv`",
        "loads in full; the manifest and raw name the file exactly",
        (csv_delivery(path, records),),
        (
            (
                "select batch_file, status from raw._load_manifest where batch_file like 'customers/Kunden%'",
                [(path, LOADED)],
            ),
        ),
    )


def build_cases(now: datetime | None = None) -> list[Case]:
    """Every case; `now` places the "future" dates (default: the current UTC time)."""
    now = now or datetime.now(UTC).replace(tzinfo=None)
    return [
        _wrong_delimiter(),
        _utf8_bom(),
        _crlf(),
        _quoted_newlines(),
        _non_utf8(),
        _truncated_gzip(),
        _empty_file(),
        _header_only(),
        _missing_required_column(),
        _extra_columns(),
        _unclosed_quote(),
        _wrong_types(),
        _unknown_enum_values(),
        _unknown_currency(),
        _negative_or_absurd_amounts(),
        _dates(now),
        _duplicate_keys(),
        _row_updated_twice(),
        _ten_mb_text_field(),
        _parquet_different_schema(),
        _jsonl_not_json(),
        _file_name_with_spaces_and_unicode(),
    ]


def check_independent(cases: list[Case]) -> None:
    """Refuse a corpus whose cases could disturb each other in one landing folder."""
    paths = [f.path for case in cases for f in case.files]
    repeated = {p for p in paths if paths.count(p) > 1}
    if repeated:
        raise ValueError(f"two cases write {sorted(repeated)}")
    by_source: dict[str, list[str]] = {}
    for path in paths + list(world_files()):
        by_source.setdefault(path.split("/", 1)[0], []).append(path)
    parents = {parent for source in SOURCES for parent in parent_sources(source)}
    for case in cases:
        for delivery in case.files:
            if delivery.status != REJECTED:
                continue
            if delivery.source in parents:
                raise ValueError(f"{delivery.path}: a rejected batch in a parent source holds back its children")
            if sorted(by_source[delivery.source])[-1] != delivery.path:
                raise ValueError(f"{delivery.path}: a rejected batch must sort last in its source")
            if sum(1 for p in by_source[delivery.source] if _rejected(cases, p)) > 1:
                raise ValueError(f"{delivery.source}: more than one rejected batch")


def _rejected(cases: list[Case], path: str) -> bool:
    return any(f.path == path and f.status == REJECTED for case in cases for f in case.files)


def write_corpus(landing: Path, cases: list[Case] | None = None) -> list[Case]:
    """The valid world plus every case's files under `landing`; returns the cases written."""
    cases = build_cases() if cases is None else cases
    check_independent(cases)
    files = world_files() | {f.path: f.content for case in cases for f in case.files}
    for relative, content in files.items():
        target = landing / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    return cases


def outcome_table(cases: list[Case] | None = None) -> str:
    """The Markdown table of docs/data_quality.md: case, files, what is broken, what happens."""
    cases = build_cases() if cases is None else cases
    lines = [
        "| case | file(s) | what is broken | delivered / loaded / quarantined | outcome |",
        "|---|---|---|---|---|",
    ]
    for case in cases:
        files = "<br>".join(f"`{f.path}`" for f in case.files)
        counts = "<br>".join(
            f"{f.delivered} / {f.loaded} / {len(f.quarantined)}" + ("" if f.status == LOADED else f" ({f.status})")
            for f in case.files
        )
        lines.append(f"| `{case.name}` | {files} | {case.broken} | {counts} | {case.outcome} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.corpus.bad_deliveries <landing folder>", file=sys.stderr)
        return 2
    landing = Path(argv[0])
    cases = write_corpus(landing)
    print(f"wrote the valid world and {len(cases)} broken deliveries under {landing}")
    print(outcome_table(cases))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
