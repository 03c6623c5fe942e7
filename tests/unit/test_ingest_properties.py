"""Properties of the readers and the contract validator, checked on generated inputs (hypothesis).

What holds for every input, not just the examples in test_ingest_readers.py and
test_ingest_validation.py: text written as CSV or JSONL reads back unchanged;
every record ends up exactly once as a row, a rejected record or a quarantined
row; a quarantined row always names a column; a value of the wrong type is
never loaded.
"""

from __future__ import annotations

import json
import re

import polars as pl
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from orchestration.lib.contract import ISO_4217_CURRENCIES, SOURCES
from orchestration.lib.readers import ROW_NUMBER, read_batch
from orchestration.lib.validation import validate_batch

# Modest counts: the suite runs on a small shared machine.
FEW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

COLUMNS = ["id", "text", "note"]
# Any Unicode text a UTF-8 file can carry (lone surrogates cannot be encoded).
any_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)
records = st.lists(st.tuples(any_text, any_text, any_text), min_size=0, max_size=8)


def as_delivered(value: str) -> str | None:
    """What a delivered text becomes: the contract's empty field = null."""
    return None if value == "" else value


def rfc4180(rows: list[list[str]] | list[tuple[str, ...]], line_end: str) -> bytes:
    """CSV as RFC 4180 writes it: a value with a comma, quote, CR or LF is quoted.

    Python's csv.writer leaves a lone CR unquoted when the line ends in LF, which
    every reader (Python's own included) takes for a line break: not valid CSV.
    """

    def field(value: str) -> str:
        return '"' + value.replace('"', '""') + '"' if re.search('[,"\r\n]', value) else value

    lines = [",".join(COLUMNS)] + [",".join(field(v) for v in r) for r in rows]
    return "".join(line + line_end for line in lines).encode()


@FEW
@given(records, st.sampled_from(["\n", "\r\n"]))
@example([("\r0", "x,\r\ny", ' "q" '), ("\x00", "\ufeff\u2028", "")], "\n")
def test_any_text_written_as_csv_reads_back_unchanged(rows, line_end):
    batch = read_batch(rfc4180(rows, line_end), "csv", "p/batch.csv")

    assert batch.rejected.is_empty()
    assert batch.columns == COLUMNS
    assert batch.frame.drop(ROW_NUMBER).rows() == [tuple(as_delivered(v) for v in r) for r in rows]
    assert batch.frame[ROW_NUMBER].to_list() == list(range(1, len(rows) + 1))


@FEW
@given(records)
@example([("\r0", "x,\r\ny", ' "q" '), ("\x00", "\ufeff\u2028", "")])
def test_any_text_written_as_jsonl_reads_back_unchanged(rows):
    data = "".join(json.dumps(dict(zip(COLUMNS, r, strict=True))) + "\n" for r in rows).encode()

    batch = read_batch(data, "jsonl", "p/batch.jsonl")

    assert batch.rejected.is_empty()
    assert batch.frame.drop(ROW_NUMBER).rows() == [tuple(as_delivered(v) for v in r) for r in rows]
    assert batch.frame[ROW_NUMBER].to_list() == list(range(1, len(rows) + 1))


# A record of 1 to 5 fields under a 3-column header: some are ragged.
ragged_records = st.lists(st.lists(any_text, min_size=1, max_size=5), min_size=1, max_size=8)


@FEW
@given(ragged_records)
def test_every_csv_record_is_either_a_row_or_rejected_with_its_record_number(rows):
    # A one-field record with an empty value is written as a blank line, which is layout, not a record.
    rows = [r for r in rows if r != [""]]

    batch = read_batch(rfc4180(rows, "\n"), "csv", "p/batch.csv")

    kept = batch.frame[ROW_NUMBER].to_list()
    rejected = batch.rejected["row_number"].to_list()
    assert sorted(kept + rejected) == list(range(1, len(rows) + 1))
    assert rejected == [i for i, r in enumerate(rows, start=1) if len(r) != len(COLUMNS)]
    assert all(re.fullmatch(r"record has \d+ fields?, header has 3", reason) for reason in batch.rejected["reason"])


@FEW
@given(
    st.lists(
        st.one_of(
            st.builds(
                lambda r: json.dumps(dict(zip(COLUMNS, r, strict=True))), st.tuples(any_text, any_text, any_text)
            ),
            any_text.filter(lambda t: "\n" not in t and "\r" not in t and t.strip() != ""),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_every_jsonl_line_is_either_a_row_or_rejected_with_its_line_number(lines):
    data = "\n".join(lines).encode() + b"\n"

    batch = read_batch(data, "jsonl", "p/batch.jsonl")

    def is_object(line: str) -> bool:
        try:
            return isinstance(json.loads(line), dict)
        except json.JSONDecodeError:
            return False

    assert batch.frame[ROW_NUMBER].to_list() == [i for i, line in enumerate(lines, start=1) if is_object(line)]
    assert batch.rejected["row_number"].to_list() == [i for i, line in enumerate(lines, start=1) if not is_object(line)]
    assert all(reason.startswith(f"line {n}: ") for n, reason in batch.rejected.select("row_number", "reason").rows())


# --- the contract validator ---------------------------------------------------------

PAYMENTS = SOURCES["payments"]
GOOD_PAYMENT = {
    "payment_id": "py_1",
    "invoice_id": "in_1",
    "customer_id": "cus_1",
    "attempted_at": "2024-07-01T10:00:00Z",
    "amount": "12.50",
    "currency": "EUR",
    "status": "succeeded",
    "failure_code": None,
    "method": "card",
    "gateway": "stripe",
    "attempt_number": "1",
}

# Per column: values the contract accepts, and anything at all.
valid_values = {
    "payment_id": st.sampled_from(["py_1", "py_2", "py_3", " py_1 "]),
    "invoice_id": st.sampled_from(["in_1", "in_2"]),
    "customer_id": st.sampled_from(["cus_1", "cus_2"]),
    "attempted_at": st.sampled_from(["2024-07-01T10:00:00Z", "2024-07-01", "2024-07-01 10:00:00.5+02:00"]),
    "amount": st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False).map(str),
    "currency": st.sampled_from(["EUR", "USD", "GBP"]),
    "status": st.sampled_from(["succeeded", "failed", "pending"]),
    "failure_code": st.none() | any_text,
    "method": st.sampled_from(["card", "ach", None]),
    "gateway": st.none() | any_text,
    "attempt_number": st.integers(min_value=0, max_value=9).map(str),
}
payment_rows = st.lists(
    st.fixed_dictionaries({c: st.one_of(v, st.none(), any_text) for c, v in valid_values.items()}),
    min_size=1,
    max_size=12,
)


def frame_of(rows: list[dict[str, str | None]]) -> pl.DataFrame:
    columns = list(rows[0])
    return pl.DataFrame(
        {c: pl.Series(c, [r[c] for r in rows], dtype=pl.String) for c in columns}
        | {ROW_NUMBER: pl.Series(ROW_NUMBER, range(1, len(rows) + 1), dtype=pl.Int64)}
    )


@FEW
@given(payment_rows)
def test_every_row_is_loaded_or_quarantined_once_and_each_quarantined_row_names_a_contract_column(rows):
    result = validate_batch(frame_of(rows), PAYMENTS)

    loaded, quarantined = result.valid[ROW_NUMBER].to_list(), result.quarantine["row_number"].to_list()
    assert sorted(loaded + quarantined) == list(range(1, len(rows) + 1))
    key_label = ", ".join(PAYMENTS.primary_key)
    for column, reason in result.quarantine.select("column_name", "reason").rows():
        assert column in (*PAYMENTS.column_names, key_label)
        assert reason.startswith(f"{column}: ")


def not_a_decimal(text: str) -> bool:
    return re.fullmatch(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*", text) is None and text.strip() != ""


def not_a_timestamp(text: str) -> bool:
    pattern = r"\s*\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?)?\s*"
    return re.fullmatch(pattern, text) is None and text.strip() != ""


# Per typed column: values of the wrong type.
wrong_values = {
    "amount": any_text.filter(not_a_decimal),
    "attempted_at": any_text.filter(not_a_timestamp),
    "attempt_number": st.one_of(
        st.decimals(min_value=-100, max_value=100, places=2, allow_nan=False)
        .filter(lambda d: d != d.to_integral_value())
        .map(str),
        any_text.filter(lambda t: not_a_decimal(t)),
    ),
    "currency": any_text.filter(lambda t: t.strip() != "" and t not in ISO_4217_CURRENCIES),
    "status": any_text.filter(lambda t: t.strip() != "" and t not in ("succeeded", "failed", "pending")),
}


@FEW
@given(st.sampled_from(sorted(wrong_values)).flatmap(lambda c: st.tuples(st.just(c), wrong_values[c])))
def test_a_value_of_the_wrong_type_is_always_quarantined_naming_its_column(mutation):
    column, value = mutation
    rows = [GOOD_PAYMENT, GOOD_PAYMENT | {"payment_id": "py_2", column: value}]

    result = validate_batch(frame_of(rows), PAYMENTS)

    assert result.valid["payment_id"].to_list() == ["py_1"]
    assert result.quarantine.select("row_number", "column_name").rows() == [(2, column)]
    assert result.quarantine["reason"][0].startswith(f"{column}: ")


def test_every_currency_of_the_country_reference_is_an_iso_4217_code():
    from orchestration.lib.policy import load_countries

    assert {c.default_currency for c in load_countries().values()} <= ISO_4217_CURRENCIES
