"""Readers: every batch format becomes string columns plus the record number."""

from __future__ import annotations

import gzip
import io
import json
from datetime import date, datetime
from decimal import Decimal

import polars as pl
import pytest

from orchestration.lib.readers import ROW_NUMBER, UnreadableBatchError, batch_format, read_batch


def rows(data: bytes, file_format: str) -> list[dict]:
    return read_batch(data, file_format, f"src/batch.{file_format}").frame.to_dicts()


def rejected(data: bytes, file_format: str) -> list[tuple]:
    return read_batch(data, file_format, f"src/batch.{file_format}").rejected.rows()


def test_csv_values_arrive_as_strings_and_empty_fields_as_null():
    data = b'a,b,c\n1,"x, y",\n"",  ,"q ""u"""\n'
    assert rows(data, "csv") == [
        {"a": "1", "b": "x, y", "c": None, ROW_NUMBER: 1},
        {"a": None, "b": "  ", "c": 'q "u"', ROW_NUMBER: 2},
    ]


def test_a_utf8_bom_is_not_part_of_the_first_column_name():
    assert rows(b"\xef\xbb\xbfa,b\r\n1,2\r\n", "csv") == [{"a": "1", "b": "2", ROW_NUMBER: 1}]


def test_csv_gz_reads_like_csv():
    assert rows(gzip.compress(b"a,b\n1,2\n"), "csv.gz") == [{"a": "1", "b": "2", ROW_NUMBER: 1}]


def test_csv_records_with_the_wrong_number_of_fields_are_rejected_with_their_row_number():
    batch = read_batch(b"a,b,c\n1,2,3\n4,5\n6,7,8,9\n10,11,12\n", "csv", "src/b.csv")
    assert batch.frame[ROW_NUMBER].to_list() == [1, 4]
    assert batch.rejected.rows() == [
        (2, "record has 2 fields, header has 3", '{"_raw":"4,5"}'),
        (3, "record has 4 fields, header has 3", '{"_raw":"6,7,8,9"}'),
    ]
    assert batch.rows_in_file == 4


def test_a_quoted_value_spanning_lines_is_one_record():
    batch = read_batch(b'a,b\n1,"two\nlines"\n2,x,extra\n3,y\n', "csv", "src/b.csv")
    assert batch.frame.to_dicts() == [
        {"a": "1", "b": "two\nlines", ROW_NUMBER: 1},
        {"a": "3", "b": "y", ROW_NUMBER: 3},
    ]
    assert batch.rejected.rows() == [(2, "record has 3 fields, header has 2", '{"_raw":"2,x,extra"}')]


def test_a_csv_with_only_a_header_has_no_rows_and_an_empty_file_no_columns():
    assert read_batch(b"a,b\n", "csv", "x.csv").frame.columns == ["a", "b", ROW_NUMBER]
    empty = read_batch(b"", "csv", "x.csv")
    assert (empty.columns, empty.rows_in_file) == ([], 0)


def test_a_repeated_column_name_makes_the_file_unreadable():
    with pytest.raises(UnreadableBatchError, match=r"src/b.csv: column 'a' appears twice in the header"):
        read_batch(b"a,b,a\n1,2,3\n", "csv", "src/b.csv")


def test_a_file_that_is_not_utf8_is_unreadable_and_the_error_gives_the_line():
    with pytest.raises(UnreadableBatchError, match=r"src/b.csv: not UTF-8 at line 3"):
        read_batch(b"a,b\n1,2\n\xff,3\n", "csv", "src/b.csv")


def test_a_truncated_gzip_is_unreadable_and_the_error_names_the_file():
    truncated = gzip.compress(b"a,b\n" + b"1,2\n" * 1000)[:-20]
    with pytest.raises(UnreadableBatchError, match=r"^src/b.csv.gz: not a readable gzip file"):
        read_batch(truncated, "csv.gz", "src/b.csv.gz")


def test_jsonl_numbers_and_booleans_become_their_text_and_missing_keys_null():
    data = b'{"a": 1, "b": 12.5, "c": true, "d": null}\n{"a": "x", "e": {"k": [1, 2]}}\n'
    assert rows(data, "jsonl") == [
        {"a": "1", "b": "12.5", "c": "true", "d": None, "e": None, ROW_NUMBER: 1},
        {"a": "x", "b": None, "c": None, "d": None, "e": '{"k": [1, 2]}', ROW_NUMBER: 2},
    ]


def test_a_line_that_is_not_json_is_rejected_and_the_other_lines_load():
    data = b'{"a": "1"}\n{"a": \n\n{"a": 12.50}\n[1]\n'
    batch = read_batch(gzip.compress(data), "jsonl.gz", "src/b.jsonl.gz")
    # Row numbers are line numbers; the blank line 3 is no record.
    assert batch.frame.to_dicts() == [{"a": "1", ROW_NUMBER: 1}, {"a": "12.50", ROW_NUMBER: 4}]
    assert batch.rejected.rows() == [
        (2, "line 2: not valid JSON (Expecting value at column 7)", '{"_raw":"{\\"a\\": "}'),
        (5, "line 5: an array, not a JSON object", '{"_raw":"[1]"}'),
    ]
    assert batch.rows_in_file == 4


def test_parquet_native_types_become_text_duckdb_parses_back():
    frame = pl.DataFrame(
        {
            "at_berlin": [datetime(2024, 7, 1, 10, 0)],
            "at_naive": [datetime(2024, 7, 1, 10, 0, 0, 500)],
            "day": [date(2024, 2, 29)],
            "amount": [Decimal("1200.00")],
            "rate": [0.19],
            "count": [3],
            "flag": [True],
            "text": [""],
        },
        schema_overrides={"amount": pl.Decimal(18, 2)},
    ).with_columns(pl.col("at_berlin").dt.replace_time_zone("Europe/Berlin"))
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    assert rows(buffer.getvalue(), "parquet") == [
        {
            "at_berlin": "2024-07-01T08:00:00Z",
            "at_naive": "2024-07-01T10:00:00.000500",
            "day": "2024-02-29",
            "amount": "1200.00",
            "rate": "0.19",
            "count": "3",
            "flag": "true",
            "text": None,
            ROW_NUMBER: 1,
        }
    ]


def test_parquet_nested_values_become_json_text():
    buffer = io.BytesIO()
    pl.DataFrame({"tags": [["a", "b"], None], "meta": [{"k": 1}, None]}).write_parquet(buffer)
    assert [(r["tags"], r["meta"]) for r in rows(buffer.getvalue(), "parquet")] == [
        ('["a","b"]', '{"k":1}'),
        (None, None),
    ]
    assert json.loads(rows(buffer.getvalue(), "parquet")[0]["tags"]) == ["a", "b"]


def test_a_file_that_is_not_parquet_is_unreadable_and_the_error_names_the_file():
    with pytest.raises(UnreadableBatchError, match=r"^src/b.parquet: not a readable Parquet file"):
        read_batch(b"PAR1 this is not parquet", "parquet", "src/b.parquet")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("2024-01.csv", "csv"),
        ("2024-01.CSV.GZ", "csv.gz"),
        ("x.parquet", "parquet"),
        ("x.jsonl", "jsonl"),
        ("x.jsonl.gz", "jsonl.gz"),
        ("x.json", None),
        ("x.csv.tmp", None),
        ("README.md", None),
        (".csv", None),
    ],
)
def test_batch_format_recognises_exactly_the_contract_endings(name, expected):
    assert batch_format(name) == expected


def test_when_lines_are_read_one_by_one_numbers_keep_their_written_text():
    data = b'{"a": 12.50, "b": 7, "c": false, "d": {"x": 1.5}}\nnot json\n'
    assert rows(data, "jsonl") == [{"a": "12.50", "b": "7", "c": "false", "d": '{"x":1.5}', ROW_NUMBER: 1}]


@pytest.mark.parametrize("ending", [b"\n\n", b"\r\n\r\n\r\n", b"\n\n\n"])
def test_blank_lines_at_the_end_of_a_csv_are_layout_not_records(ending):
    batch = read_batch(b"a,b\n1,2\n3,4" + ending, "csv", "src/b.csv")
    assert batch.frame.to_dicts() == [{"a": "1", "b": "2", ROW_NUMBER: 1}, {"a": "3", "b": "4", ROW_NUMBER: 2}]
    assert batch.rejected.height == 0
    assert batch.rows_in_file == 2


def test_a_one_column_header_holding_semicolons_makes_the_file_unreadable_and_names_the_separator():
    with pytest.raises(UnreadableBatchError) as raised:
        read_batch(b"customer_id;name;country\nc1;Ann;DE\n", "csv", "src/b.csv")
    assert str(raised.value) == (
        "src/b.csv: the header is one column containing ';' ('customer_id;name;country'): "
        "the contract separates fields with ','; re-export the file comma-separated"
    )


def test_a_single_column_without_another_separator_is_an_ordinary_file():
    assert rows(b"customer_id\nc1\n", "csv") == [{"customer_id": "c1", ROW_NUMBER: 1}]


def test_not_utf8_names_line_record_and_column_but_never_the_value():
    # Record 2 spans lines 3 and 4; the bad byte is on line 4, in column name.
    data = b'id,name\n1,Ann\n2,"Line\nM\xfcller"\n'
    with pytest.raises(UnreadableBatchError) as raised:
        read_batch(data, "csv", "src/b.csv")
    assert str(raised.value) == (
        "src/b.csv: not UTF-8 at line 4, record 2, column name (byte 0xfc): "
        "the contract requires UTF-8; re-export the file as UTF-8"
    )
    assert "ller" not in str(raised.value)


def test_not_utf8_in_the_header_or_a_jsonl_record_is_located_too():
    with pytest.raises(UnreadableBatchError, match=r"not UTF-8 at line 1, header, column 2 \(byte 0xfc\)"):
        read_batch(b"id,n\xfcme\n1,2\n", "csv", "src/b.csv")
    with pytest.raises(UnreadableBatchError, match=r"not UTF-8 at line 2, record 2, column name \(byte 0xe9\)"):
        read_batch(b'{"id": "1"}\n{"id": "2", "name": "Ren\xe9"}\n', "jsonl", "src/b.jsonl")


def test_a_quote_never_closed_makes_the_file_unreadable_instead_of_swallowing_the_records_after_it():
    data = b'a,b\n1,"x\ny",z\n3,"open\n4,5\n'
    with pytest.raises(UnreadableBatchError) as raised:
        read_batch(data, "csv", "src/b.csv")
    assert str(raised.value) == (
        "src/b.csv: a quoted value opened in record 2 (line 4) is never closed, "
        "so the rest of the file would be one value"
    )


def test_a_stray_quote_inside_an_unquoted_value_is_kept_as_text():
    assert rows(b'a,b\n1,x"y\n2,"z\nw"\n', "csv") == [
        {"a": "1", "b": 'x"y', ROW_NUMBER: 1},
        {"a": "2", "b": "z\nw", ROW_NUMBER: 2},
    ]


def test_a_jsonl_line_nested_too_deeply_is_a_rejected_record_not_a_crash():
    data = b'{"a": "1"}\n' + b"[" * 100_000 + b"]" * 100_000 + b"\n"
    batch = read_batch(data, "jsonl", "src/b.jsonl")
    assert batch.frame.to_dicts() == [{"a": "1", ROW_NUMBER: 1}]
    assert [(r, reason) for r, reason, _ in batch.rejected.rows()] == [
        (2, "line 2: not valid JSON (nested too deeply)")
    ]
