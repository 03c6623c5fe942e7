"""Loader: files into raw tables once each, whole or not at all, every row accounted for."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl
import pytest

from orchestration.lib import loader
from orchestration.lib.loader import (
    ConservationError,
    ensure_warehouse_schema,
    ingest_source,
    raw_table_columns,
)

HEADER = "payment_id,invoice_id,customer_id,attempted_at,amount,currency,status,attempt_number"
GOOD_ROWS = [
    "pay_1,inv_1,cus_1,2024-07-01T10:00:00+02:00,1200,JPY,succeeded,1",
    "pay_2,inv_2,cus_2,2024-07-01T10:00:00Z,12.50,EUR,failed,2",
]
# What GOOD_ROWS must become in raw, whatever the file format.
EXPECTED = [
    ("pay_1", datetime(2024, 7, 1, 8, 0), Decimal("1200"), "JPY", 1),
    ("pay_2", datetime(2024, 7, 1, 10, 0), Decimal("12.5"), "EUR", 2),
]


@pytest.fixture()
def landing(tmp_path: Path) -> Path:
    return tmp_path / "landing"


@pytest.fixture()
def conn(tmp_path: Path):
    connection = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield connection
    connection.close()


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(gzip.compress(content) if path.name.endswith(".gz") else content)
    return path


def csv_text(*rows: str, header: str = HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


def jsonl_text(*rows: str) -> str:
    keys = HEADER.split(",")
    records = [dict(zip(keys, r.split(","), strict=True)) for r in rows]
    # Native JSON numbers where a JSON export would have them.
    for record in records:
        record["attempt_number"] = int(record["attempt_number"])
    return "".join(json.dumps(r) + "\n" for r in records)


def write_parquet(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(
        {
            "payment_id": ["pay_1", "pay_2"],
            "invoice_id": ["inv_1", "inv_2"],
            "customer_id": ["cus_1", "cus_2"],
            "attempted_at": [datetime(2024, 7, 1, 10, 0), datetime(2024, 7, 1, 12, 0)],
            "amount": [Decimal("1200.00"), Decimal("12.50")],
            "currency": ["JPY", "EUR"],
            "status": ["succeeded", "failed"],
            "attempt_number": [1, 2],
        },
        schema_overrides={"amount": pl.Decimal(18, 2)},
    ).with_columns(pl.col("attempted_at").dt.replace_time_zone("Europe/Berlin")).write_parquet(path)


def raw_payments(conn) -> list[tuple]:
    return conn.execute(
        "select payment_id, attempted_at, amount, currency, attempt_number from raw.payments order by payment_id"
    ).fetchall()


def manifest(conn) -> list[tuple]:
    return conn.execute(
        "select batch_id, batch_file, status, rows_in_file, rows_loaded, rows_quarantined, duplicate_of "
        "from raw._load_manifest order by batch_id"
    ).fetchall()


def quarantine(conn) -> list[tuple]:
    return conn.execute(
        "select batch_file, row_number, column_name, reason from raw._quarantine order by batch_file, row_number"
    ).fetchall()


def seed_parents(conn) -> None:
    """The customers, invoices and FX currencies the rows above reference, written straight
    into raw: a batch whose references are not loaded is rejected by its expectation suite
    (tests/integration/test_ingest_expectations.py), and these tests are about loading."""
    ensure_warehouse_schema(conn)
    if conn.execute("select count(*) from raw.customers").fetchall()[0][0]:
        return
    lineage = "0, 'seed', 'seed', i, timestamp '2024-01-01'"
    conn.execute(
        "insert into raw.customers (customer_id, country, currency, company_size, created_at, "
        "_batch_id, _batch_file, _batch_hash, _row_number, _loaded_at) "
        f"select 'cus_' || i, 'DE', 'EUR', 'smb', timestamp '2024-01-01', {lineage} from range(1, 9) as t(i)"
    )
    conn.execute(
        "insert into raw.invoices (invoice_id, customer_id, invoice_number, issued_at, due_at, period_start, "
        "period_end, currency, subtotal, discount_amount, tax_amount, total, status, billing_reason, "
        "_batch_id, _batch_file, _batch_hash, _row_number, _loaded_at) "
        "select 'inv_' || i, 'cus_' || i, 'N' || i, timestamp '2024-07-01', timestamp '2024-07-31', "
        "timestamp '2024-07-01', timestamp '2024-08-01', 'EUR', 10, 0, 0, 10, 'open', 'manual', "
        f"{lineage} from range(1, 9) as t(i)"
    )
    conn.execute(
        "insert into raw.fx_rates (rate_date, currency, usd_per_unit, "
        "_batch_id, _batch_file, _batch_hash, _row_number, _loaded_at) "
        f"select date '2024-07-01', currency, 1.0, {lineage} "
        "from (values (1, 'EUR'), (2, 'JPY')) as t(i, currency)"
    )


def ingest(conn, landing: Path, source: str = "payments", log: list[str] | None = None):
    seed_parents(conn)
    return ingest_source(conn, landing, source, log=(log.append if log is not None else lambda _: None))


@pytest.mark.parametrize("file_format", ["csv", "csv.gz", "parquet", "jsonl", "jsonl.gz"])
def test_each_format_loads_with_contract_types(conn, landing, file_format):
    path = landing / "payments" / f"2024-07.{file_format}"
    if file_format == "parquet":
        write_parquet(path)
    elif file_format.startswith("csv"):
        write(path, csv_text(*GOOD_ROWS))
    else:
        write(path, jsonl_text(*GOOD_ROWS))

    report = ingest(conn, landing)

    assert raw_payments(conn) == EXPECTED
    assert manifest(conn) == [(1, f"payments/2024-07.{file_format}", "loaded", 2, 2, 0, None)]
    assert (report.rows_loaded, report.rows_quarantined, len(report.loaded_batches)) == (2, 0, 1)


def test_raw_rows_carry_their_lineage(conn, landing):
    path = write(landing / "payments" / "a.csv", csv_text(*GOOD_ROWS))
    ingest(conn, landing)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert conn.execute(
        "select _batch_id, _batch_file, _batch_hash, _row_number from raw.payments order by _row_number"
    ).fetchall() == [(1, "payments/a.csv", digest, 1), (1, "payments/a.csv", digest, 2)]


def test_a_batch_with_good_and_bad_rows_accounts_for_every_row(conn, landing):
    write(
        landing / "payments" / "mixed.csv",
        csv_text(
            GOOD_ROWS[0],
            "pay_2,inv_2,cus_2,2024-07-01T10:00:00Z,abc,EUR,failed,1",  # wrong type
            "pay_3,inv_3,,2024-07-01T10:00:00Z,1.00,EUR,failed,1",  # missing required value
            "pay_4,inv_4,cus_4,2024-07-01T10:00:00Z,1.00,EUR,refunded,1",  # unknown enum
            ",inv_5,cus_5,2024-07-01T10:00:00Z,1.00,EUR,failed,1",  # null key
            "pay_6,inv_6,cus_6,2024-07-01T10:00:00Z,-1.00,EUR,failed,1",  # negative amount
            "pay_7,inv_7,cus_7,2024-07-01T10:00:00Z,1.00,EUR,failed,1",
            "pay_7,inv_7,cus_7,2024-07-01T10:00:00Z,2.00,EUR,failed,1",  # conflicting duplicate key
            "pay_8,inv_8,cus_8,2024-07-01T10:00:00Z,1.00,EUR,failed",  # one field short
        ),
    )
    report = ingest(conn, landing)

    assert raw_payments(conn) == [EXPECTED[0]]
    assert manifest(conn) == [(1, "payments/mixed.csv", "loaded", 9, 1, 8, None)]
    duplicate = "payment_id: duplicate key with different values (2 rows in this batch, first at row 7)"
    assert quarantine(conn) == [
        ("payments/mixed.csv", 2, "amount", "amount: not a decimal number ('abc')"),
        ("payments/mixed.csv", 3, "customer_id", "customer_id: required value missing"),
        (
            "payments/mixed.csv",
            4,
            "status",
            "status: unknown value 'refunded' (expected one of succeeded, failed, pending)",
        ),
        ("payments/mixed.csv", 5, "payment_id", "payment_id: required value missing"),
        ("payments/mixed.csv", 6, "amount", "amount: negative value ('-1.00')"),
        ("payments/mixed.csv", 7, "payment_id", duplicate),
        ("payments/mixed.csv", 8, "payment_id", duplicate),
        ("payments/mixed.csv", 9, None, "record has 7 fields, header has 8"),
    ]
    assert report.rows_loaded + report.rows_quarantined == 9


def test_a_missing_required_column_quarantines_every_row_of_the_file(conn, landing):
    header = HEADER.replace(",amount", "")
    rows = [",".join(r.split(",")[:4] + r.split(",")[5:]) for r in GOOD_ROWS]
    write(landing / "payments" / "no_amount.csv", csv_text(*rows, header=header))
    ingest(conn, landing)
    assert raw_payments(conn) == []
    assert manifest(conn) == [(1, "payments/no_amount.csv", "loaded", 2, 0, 2, None)]
    assert quarantine(conn) == [
        ("payments/no_amount.csv", 1, "amount", "missing required column amount"),
        ("payments/no_amount.csv", 2, "amount", "missing required column amount"),
    ]


def test_rerunning_loads_nothing_and_adds_no_manifest_rows(conn, landing):
    write(landing / "payments" / "a.csv", csv_text(GOOD_ROWS[0]))
    write(landing / "payments" / "b.csv", csv_text(GOOD_ROWS[1], "bad,inv,cus,x,1,EUR,failed,1"))
    ingest(conn, landing)
    before = (manifest(conn), raw_payments(conn), quarantine(conn))

    report = ingest(conn, landing)

    assert (manifest(conn), raw_payments(conn), quarantine(conn)) == before
    assert (report.batches, report.files_already_loaded) == ([], 2)


def test_a_touched_file_is_hashed_again_and_recognised_as_already_loaded(conn, landing):
    path = write(landing / "payments" / "a.csv", csv_text(*GOOD_ROWS))
    ingest(conn, landing)
    os.utime(path, (1_700_000_000, 1_700_000_000))

    report = ingest(conn, landing)

    assert [(b.status, b.duplicate_of) for b in report.batches] == [("duplicate_content", "payments/a.csv")]
    assert len(raw_payments(conn)) == 2
    assert ingest(conn, landing).files_already_loaded == 1


def test_the_same_content_under_another_name_loads_once(conn, landing):
    write(landing / "payments" / "2024-07.csv", csv_text(*GOOD_ROWS))
    write(landing / "payments" / "redelivery__2024-07.csv", csv_text(*GOOD_ROWS))

    report = ingest(conn, landing)

    assert raw_payments(conn) == EXPECTED
    assert manifest(conn) == [
        (1, "payments/2024-07.csv", "loaded", 2, 2, 0, None),
        (2, "payments/redelivery__2024-07.csv", "duplicate_content", None, 0, 0, "payments/2024-07.csv"),
    ]
    assert [b.status for b in report.batches] == ["loaded", "duplicate_content"]


def test_the_same_content_in_another_source_folder_is_not_a_duplicate(conn, landing):
    empty_header_only = "x\n"
    write(landing / "payments" / "a.csv", empty_header_only)
    write(landing / "invoices" / "a.csv", empty_header_only)
    ingest(conn, landing, "payments")
    ingest(conn, landing, "invoices")
    assert [row[2] for row in manifest(conn)] == ["loaded", "loaded"]


def test_unreadable_files_are_recorded_and_the_other_files_and_sources_still_load(conn, landing):
    write(landing / "payments" / "a.csv", csv_text(GOOD_ROWS[0]))
    (landing / "payments" / "b.csv.gz").write_bytes(gzip.compress(csv_text(GOOD_ROWS[1]).encode())[:-8])
    (landing / "payments" / "c.parquet").write_bytes(b"PAR1 not really")
    write(landing / "payments" / "d.csv", csv_text(GOOD_ROWS[1]))
    write(
        landing / "credit_notes" / "a.csv",
        "credit_note_id,invoice_id,issued_at,amount,currency,kind,reason\n"
        "cn_1,inv_1,2024-07-01,5.00,EUR,refund,goodwill\n",
    )
    log: list[str] = []

    report = ingest(conn, landing, log=log)
    ingest(conn, landing, "credit_notes")

    assert raw_payments(conn) == EXPECTED
    assert conn.execute("select credit_note_id, amount from raw.credit_notes").fetchall() == [
        ("cn_1", Decimal("5")),
    ]
    errors = {b.batch_file: b.error for b in report.unreadable}
    assert list(errors) == ["payments/b.csv.gz", "payments/c.parquet"]
    assert errors["payments/b.csv.gz"].startswith("payments/b.csv.gz: not a readable gzip file (")
    assert errors["payments/c.parquet"].startswith("payments/c.parquet: not a readable Parquet file (")
    assert conn.execute(
        "select batch_file, status, error is not null from raw._load_manifest where status = 'unreadable'"
    ).fetchall() == [("payments/b.csv.gz", "unreadable", True), ("payments/c.parquet", "unreadable", True)]
    assert sum("UNREADABLE" in line for line in log) == 2


def test_an_unreadable_file_is_retried_and_replaced_by_its_outcome_once_fixed(conn, landing):
    broken = landing / "payments" / "b.csv.gz"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"\x1f\x8b not gzip")
    ingest(conn, landing)
    ingest(conn, landing)
    assert [row[1:3] for row in manifest(conn)] == [("payments/b.csv.gz", "unreadable")]

    write(broken, csv_text(*GOOD_ROWS))
    report = ingest(conn, landing)

    assert [b.status for b in report.batches] == ["loaded"]
    assert [row[1:3] for row in manifest(conn)] == [("payments/b.csv.gz", "loaded")]
    assert raw_payments(conn) == EXPECTED


def test_extra_columns_are_kept_in_extra(conn, landing):
    write(
        landing / "payments" / "a.csv",
        csv_text(GOOD_ROWS[0] + ",web,", GOOD_ROWS[1] + ",,", header=HEADER + ",channel,legacy id"),
    )
    ingest(conn, landing)
    assert conn.execute("select payment_id, _extra from raw.payments order by 1").fetchall() == [
        ("pay_1", '{"channel":"web","legacy id":null}'),
        ("pay_2", None),
    ]


def test_truth_files_are_never_read_and_other_files_are_ignored_with_a_log_line(conn, landing):
    write(landing / "_truth" / "batches.csv", "payment_id\nnot a payment\n")
    write(landing / "payments" / "a.csv", csv_text(GOOD_ROWS[0]))
    write(landing / "payments" / "notes.txt", "hello")
    write(landing / "payments" / ".partial.csv", "half")
    (landing / "payments" / "truth.csv").symlink_to(landing / "_truth" / "batches.csv")
    log: list[str] = []

    ingest(conn, landing, log=log)

    assert [row[1] for row in manifest(conn)] == ["payments/a.csv"]
    assert [line for line in log if "ignored" in line] == [
        "payments/.partial.csv: ignored, hidden file",
        "payments/notes.txt: ignored, not a batch file (.csv, .csv.gz, .parquet, .jsonl, .jsonl.gz)",
        "payments/truth.csv: ignored, points into _truth/",
    ]


def test_batch_ids_follow_the_sorted_relative_path(conn, landing):
    for name in ("2024-03/b.csv", "2024-01.csv", "2024-03/a.jsonl"):
        write(landing / "payments" / name, csv_text(GOOD_ROWS[0].replace("pay_1", name)))
    (landing / "payments" / "2024-03" / "a.jsonl").write_text(jsonl_text(GOOD_ROWS[1]))
    ingest(conn, landing)
    assert [row[:2] for row in manifest(conn)] == [
        (1, "payments/2024-01.csv"),
        (2, "payments/2024-03/a.jsonl"),
        (3, "payments/2024-03/b.csv"),
    ]


def test_a_crash_mid_batch_leaves_nothing_of_that_batch(conn, landing, monkeypatch):
    write(landing / "payments" / "a.csv", csv_text(GOOD_ROWS[0]))
    write(landing / "payments" / "b.csv", csv_text(GOOD_ROWS[1], "bad,inv,cus,x,1,EUR,failed,1"))
    real_insert = loader._insert_quarantine

    def crash_on_b(conn, source_name, frame, lineage):
        if lineage[1] == "payments/b.csv":
            raise RuntimeError("disk full")
        return real_insert(conn, source_name, frame, lineage)

    monkeypatch.setattr(loader, "_insert_quarantine", crash_on_b)
    with pytest.raises(RuntimeError, match="disk full"):
        ingest(conn, landing)

    assert raw_payments(conn) == [EXPECTED[0]]
    assert [row[1] for row in manifest(conn)] == ["payments/a.csv"]
    assert quarantine(conn) == []

    monkeypatch.setattr(loader, "_insert_quarantine", real_insert)
    ingest(conn, landing)
    assert raw_payments(conn) == EXPECTED
    assert [row[1:6] for row in manifest(conn)] == [
        ("payments/a.csv", "loaded", 1, 1, 0),
        ("payments/b.csv", "loaded", 2, 1, 1),
    ]


def test_a_batch_that_does_not_add_up_is_refused_before_commit(conn, landing, monkeypatch):
    write(landing / "payments" / "a.csv", csv_text(*GOOD_ROWS))
    monkeypatch.setattr(loader, "_insert_raw_rows", lambda *args: None)

    with pytest.raises(ConservationError, match=r"payments/a.csv: 2 rows in file but 0 loaded and 0 quarantined"):
        ingest(conn, landing)

    assert manifest(conn) == []


def test_the_log_has_one_line_per_new_file_and_a_summary(conn, landing):
    write(landing / "payments" / "a.csv", csv_text(*GOOD_ROWS))
    write(landing / "payments" / "b.csv", csv_text(*GOOD_ROWS))
    log: list[str] = []
    ingest(conn, landing, log=log)
    assert len(log) == 3
    assert log[0].startswith("payments/a.csv: loaded 2 rows, quarantined 0 (batch 1, ")
    assert log[1] == "payments/b.csv: same content as payments/a.csv, nothing loaded"
    assert log[2] == (
        "payments: 1 file(s) loaded (2 rows loaded, 0 quarantined), 1 duplicate, 0 unreadable, 0 rejected, "
        "0 held back behind a rejected file, 0 already loaded"
    )


def test_a_source_without_a_landing_folder_loads_nothing(conn, landing):
    landing.mkdir()
    report = ingest(conn, landing, "fx_rates")
    assert (report.batches, report.files_already_loaded) == ([], 0)


def test_the_warehouse_schema_is_created_idempotently_with_contract_types(conn):
    ensure_warehouse_schema(conn)
    ensure_warehouse_schema(conn)
    columns = conn.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = 'raw' and table_name = 'invoice_lines' order by ordinal_position"
    ).fetchall()
    assert columns[:7] == [
        ("line_id", "VARCHAR"),
        ("invoice_id", "VARCHAR"),
        ("product_id", "VARCHAR"),
        ("description", "VARCHAR"),
        ("quantity", "DOUBLE"),
        ("unit_amount", "DECIMAL(18,4)"),
        ("amount", "DECIMAL(18,4)"),
    ]
    assert columns[8] == ("proration", "BOOLEAN")
    assert [c for c, _ in columns[-6:]] == [
        "_extra",
        "_batch_id",
        "_batch_file",
        "_batch_hash",
        "_row_number",
        "_loaded_at",
    ]
    tables = {
        t
        for (t,) in conn.execute(
            "select table_name from information_schema.tables where table_schema = 'raw'"
        ).fetchall()
    }
    assert {"_load_manifest", "_quarantine", "payments", "fx_rates"} <= tables


def test_a_raw_table_that_no_longer_matches_the_contract_is_refused(conn):
    conn.execute("create schema raw")
    conn.execute("create table raw.fx_rates (rate_date date, currency varchar)")
    with pytest.raises(RuntimeError, match="raw.fx_rates has columns"):
        ensure_warehouse_schema(conn)


def test_raw_table_columns_follow_the_contract_then_lineage():
    assert [name for name, _ in raw_table_columns(loader.SOURCES["fx_rates"])] == [
        "rate_date",
        "currency",
        "usd_per_unit",
        "_extra",
        "_batch_id",
        "_batch_file",
        "_batch_hash",
        "_row_number",
        "_loaded_at",
    ]


def test_a_loaded_file_whose_content_changes_loads_again_with_a_warning(conn, landing):
    path = write(landing / "payments" / "a.csv", csv_text(GOOD_ROWS[0]))
    ingest(conn, landing)
    write(path, csv_text(GOOD_ROWS[0].replace("1200", "1300")))
    os.utime(path, (1_800_000_000, 1_800_000_000))
    log: list[str] = []

    ingest(conn, landing, log=log)

    assert conn.execute("select amount, _batch_id from raw.payments order by _batch_id").fetchall() == [
        (Decimal("1200"), 1),
        (Decimal("1300"), 2),
    ]
    assert "payments/a.csv: WARNING, loaded before with different content; both versions are in raw" in log


def test_files_after_a_rejected_batch_wait_so_the_later_version_of_a_row_still_wins(conn, landing):
    # Payments have no updated_at: the later batch's version of pay_1 must win downstream,
    # which ranks versions by batch id. Batch 1 (pending) is rejected: pay_9 is on inv_9,
    # not delivered yet. Batch 2 (succeeded) must not load before batch 1 does.
    write(
        landing / "payments" / "2024-07-01.csv",
        csv_text(
            "pay_1,inv_1,cus_1,2024-07-01T10:00:00Z,10.00,EUR,pending,1",
            "pay_9,inv_9,cus_1,2024-07-01T11:00:00Z,10.00,EUR,succeeded,1",
        ),
    )
    write(
        landing / "payments" / "2024-07-02.csv",
        csv_text("pay_1,inv_1,cus_1,2024-07-01T10:00:00Z,10.00,EUR,succeeded,1"),
    )
    log: list[str] = []
    first = ingest(conn, landing, log=log)
    assert [b.batch_file for b in first.rejected] == ["payments/2024-07-01.csv"]
    assert first.held_back == ["payments/2024-07-02.csv"]
    assert "payments/2024-07-02.csv: held back until payments/2024-07-01.csv loads (batches load in order)" in log
    assert conn.execute("select count(*) from raw.payments").fetchall() == [(0,)]

    # inv_9 arrives; both batches load, in delivery order
    conn.execute(
        "insert into raw.invoices (invoice_id, customer_id, invoice_number, issued_at, due_at, period_start, "
        "period_end, currency, subtotal, discount_amount, tax_amount, total, status, billing_reason, "
        "_batch_id, _batch_file, _batch_hash, _row_number, _loaded_at) values ('inv_9', 'cus_1', 'N9', "
        "timestamp '2024-07-01', timestamp '2024-07-31', timestamp '2024-07-01', timestamp '2024-08-01', 'EUR', "
        "10, 0, 0, 10, 'open', 'manual', 0, 'seed', 'seed', 9, timestamp '2024-01-01')"
    )
    second = ingest(conn, landing)
    assert [b.batch_file for b in second.loaded_batches] == ["payments/2024-07-01.csv", "payments/2024-07-02.csv"]
    assert second.held_back == []
    newest = conn.execute(
        "select status from raw.payments where payment_id = 'pay_1' order by _batch_id desc limit 1"
    ).fetchall()
    assert newest == [("succeeded",)]


def test_an_empty_file_is_unreadable_and_retried_until_it_has_content(conn, landing):
    path = write(landing / "payments" / "a.csv", b"")
    ingest(conn, landing)
    assert conn.execute("select status, rows_in_file, error from raw._load_manifest").fetchall() == [
        (
            "unreadable",
            None,
            "payments/a.csv: empty file (0 bytes): nothing to load; "
            "retried next run, in case it is still being written",
        )
    ]

    write(path, csv_text(GOOD_ROWS[0]))
    ingest(conn, landing)
    assert [row[2:6] for row in manifest(conn)] == [("loaded", 1, 1, 0)]
