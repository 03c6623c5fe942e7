"""Read landing batch files of every format into one uniform shape.

Each format becomes a Polars frame of string columns (file order) plus the
record number, so validation has a single code path and the quarantine can show
exactly what was delivered. A problem that spoils one record (a line that is not
JSON, a CSV row with the wrong number of fields) becomes a rejected record; a
problem that spoils the whole file raises `UnreadableBatchError`: a corrupt
gzip or Parquet file, bytes that are not UTF-8 (the error names line, record
and column, never the value), a one-column header holding another separator
(';', tab, '|'), a repeated column name, a quote never closed (read leniently,
the rest of the file would become one value).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import polars as pl

from orchestration.lib.contract import BATCH_SUFFIXES

# Reserved name of the record-number column: unlikely in an export, and a file
# that uses it is refused rather than silently renumbered.
ROW_NUMBER = "__row_number"

_BOM = b"\xef\xbb\xbf"
_REJECTED_SCHEMA = {"row_number": pl.Int64, "reason": pl.String, "record": pl.String}


class UnreadableBatchError(Exception):
    """The file as a whole cannot be parsed; the message names the file."""


@dataclass
class RawBatch:
    """A batch file as delivered: string values, nothing interpreted yet."""

    file_format: str
    # String columns in file order, then ROW_NUMBER (Int64, 1-based).
    frame: pl.DataFrame
    # Records that could not be split into columns: row_number, reason, record.
    rejected: pl.DataFrame

    @property
    def rows_in_file(self) -> int:
        return self.frame.height + self.rejected.height

    @property
    def columns(self) -> list[str]:
        return [c for c in self.frame.columns if c != ROW_NUMBER]


def batch_format(path: Path | str) -> str | None:
    """The batch ending of a file name ('csv.gz', 'parquet', ...), None if not a batch file."""
    name = Path(path).name.lower()
    # Longest ending first so 'x.csv.gz' is not taken for something shorter.
    for suffix in sorted(BATCH_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix) and len(name) > len(suffix):
            return suffix.lstrip(".")
    return None


def read_batch(data: bytes, file_format: str, name: str) -> RawBatch:
    """Parse the bytes of one batch file; `name` is used in error messages."""
    if file_format.endswith(".gz"):
        data = _gunzip(data, name)
        file_format_plain = file_format.removesuffix(".gz")
    else:
        file_format_plain = file_format
    if file_format_plain == "csv":
        frame, rejected = _read_csv(data, name)
    elif file_format_plain == "jsonl":
        frame, rejected = _read_jsonl(data, name)
    elif file_format_plain == "parquet":
        frame, rejected = _read_parquet(data, name), _empty_rejected()
    else:
        raise ValueError(f"unknown batch format {file_format!r}")
    return RawBatch(file_format, _blank_is_null(frame), rejected)


def _gunzip(data: bytes, name: str) -> bytes:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as error:
        raise UnreadableBatchError(f"{name}: not a readable gzip file ({error})") from error


def _decode(data: bytes, name: str, locate: Callable[[str], str | None] | None = None) -> str:
    """The text of a UTF-8 file; otherwise the error names line, record and column.

    The file stays unreadable as a whole: guessing another encoding would turn
    names into mojibake without a word. `locate` finds the record and column of
    the first bad byte in the text decoded with surrogate escapes.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        place = f"line {line}"
        where = locate(data.decode("utf-8", errors="surrogateescape")) if locate else None
        if where:
            place += f", {where}"
        # The byte only, never the value: the field may be a name or an email.
        raise UnreadableBatchError(
            f"{name}: not UTF-8 at {place} (byte 0x{data[error.start]:02x}): "
            "the contract requires UTF-8; re-export the file as UTF-8"
        ) from error
    return text.removeprefix("\ufeff")


def _escaped(value: str) -> bool:
    """True when a value holds a byte that was not UTF-8 (a surrogate escape)."""
    return any("\udc80" <= char <= "\udcff" for char in value)


def _locate_in_csv(text: str) -> str | None:
    try:
        reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
        header = next(reader, [])
        for index, value in enumerate(header):
            if _escaped(value):
                return f"header, column {index + 1}"
        for record, fields in enumerate(reader, start=1):
            for index, value in enumerate(fields):
                if _escaped(value):
                    column = header[index] if index < len(header) else f"{index + 1} (beyond the header)"
                    return f"record {record}, column {column}"
    except csv.Error:
        return None
    return None


def _locate_in_jsonl(text: str) -> str | None:
    for number, line in enumerate(text.split("\n"), start=1):
        if not _escaped(line):
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            return f"record {number}"
        if isinstance(value, dict):
            for key, item in value.items():
                if _escaped(key) or (isinstance(item, str) and _escaped(item)):
                    return f"record {number}, column {key if not _escaped(key) else '(its name)'}"
        return f"record {number}"
    return None


def _empty_rejected() -> pl.DataFrame:
    return pl.DataFrame(schema=_REJECTED_SCHEMA)


def _raw_record(text: str) -> str:
    """The quarantine record of a record that has no columns: its text as delivered."""
    return json.dumps({"_raw": text}, separators=(",", ":"))


def _rejected(rows: list[tuple[int, str, str]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=_REJECTED_SCHEMA, orient="row")


def _check_names(names: list[str], name: str) -> None:
    seen: set[str] = set()
    for column in names:
        if column in seen:
            raise UnreadableBatchError(f"{name}: column {column!r} appears twice in the header")
        seen.add(column)
    if ROW_NUMBER in seen:
        raise UnreadableBatchError(f"{name}: column name {ROW_NUMBER!r} is reserved")


def _with_row_number(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_row_index(ROW_NUMBER, offset=1).select(pl.exclude(ROW_NUMBER), pl.col(ROW_NUMBER).cast(pl.Int64))


def _blank_is_null(frame: pl.DataFrame) -> pl.DataFrame:
    # The contract's "empty field = null", applied to every format alike.
    # pl.nth, not pl.col: a delivered name like '^a.*$' would be read as a regex.
    return frame.with_columns(
        pl.when(pl.nth(j) == "").then(None).otherwise(pl.nth(j)).alias(c)
        for j, c in enumerate(frame.columns)
        if c != ROW_NUMBER
    )


# --- CSV --------------------------------------------------------------------


def _without_trailing_blank_lines(data: bytes) -> bytes:
    """Blank lines at the end of a file are layout, not records (editors and
    exporters add them); copied only when there are some."""
    stripped = data.rstrip(b"\r\n")
    return data if data[len(stripped) :] in (b"", b"\n", b"\r\n") else stripped + b"\n"


def _read_csv(data: bytes, name: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    data = _without_trailing_blank_lines(data)
    text = _decode(data, name, _locate_in_csv)
    if not text.strip():
        # No header at all: nothing delivered, nothing to lose.
        return pl.DataFrame(schema={ROW_NUMBER: pl.Int64}), _empty_rejected()
    header = next(csv.reader(io.StringIO(text, newline="")))
    _check_separator(header, name)
    _check_names(header, name)
    body = data.removeprefix(_BOM)
    try:
        frame = pl.read_csv(
            body,
            has_header=True,
            new_columns=header,
            infer_schema=False,
            truncate_ragged_lines=True,
            raise_if_empty=False,
        )
    except pl.exceptions.PolarsError:
        # Quoting Polars does not accept; the standard library is slower but lenient.
        return _read_csv_exactly(text, header, name)
    lines = _data_lines(body, text)
    counts = _field_counts(lines, '"' in text)
    if counts is None or counts.len() != frame.height:
        # A quoted value spans lines, so lines are not records: count exactly.
        return _read_csv_exactly(text, header, name)
    frame = _with_row_number(frame)
    ragged = counts.ne(len(header))
    if not ragged.any():
        return frame, _empty_rejected()
    bad = pl.DataFrame({"row_number": frame[ROW_NUMBER], "fields": counts, "line": lines}).filter(ragged)
    rejected = _rejected(
        [(row, _ragged_reason(fields, len(header)), _raw_record(line or "")) for row, fields, line in bad.iter_rows()]
    )
    return frame.filter(~ragged), rejected


# Separators other exports use; in a one-column header they mean the wrong one was used.
_OTHER_SEPARATORS = (";", "\t", "|")
SHOWN_HEADER_CHARS = 40


def _check_separator(header: list[str], name: str) -> None:
    """A one-column header holding another separator: the file as a whole is unusable.

    Read as CSV, every row would be one field and lose every required column;
    saying which separator was found is what lets the sender fix it.
    """
    if len(header) != 1:
        return
    found = next((s for s in _OTHER_SEPARATORS if s in header[0]), None)
    if found is None:
        return
    shown = header[0] if len(header[0]) <= SHOWN_HEADER_CHARS else header[0][:SHOWN_HEADER_CHARS] + "..."
    raise UnreadableBatchError(
        f"{name}: the header is one column containing {found!r} ({shown!r}): "
        "the contract separates fields with ','; re-export the file comma-separated"
    )


def _ragged_reason(fields: int, width: int) -> str:
    return f"record has {fields} field{'' if fields == 1 else 's'}, header has {width}"


def _data_lines(body: bytes, text: str) -> pl.Series:
    """Every line after the header as delivered; a blank line is null."""
    if b"\x1f" not in body:
        # The CSV reader with a separator that never occurs splits lines in parallel.
        lines = pl.read_csv(
            body,
            has_header=False,
            separator="\x1f",
            quote_char=None,
            new_columns=["line"],
            infer_schema=False,
        )["line"]
    else:
        lines = pl.Series("line", [text]).str.split("\n").explode()
        if text.endswith("\n"):
            lines = lines.slice(0, lines.len() - 1)
        lines = lines.str.strip_suffix("\r").replace("", None)
    return lines.slice(1)


def _field_counts(lines: pl.Series, quoted: bool) -> pl.Series | None:
    """Fields per line, vectorised; None when a quoted value spans lines.

    Polars pads short rows and truncates long ones without a word, so the
    field count is checked separately, on the common case of one record per line.
    """
    unquoted = lines.fill_null("")
    if quoted:
        unquoted = unquoted.str.replace_all(r'"(?:[^"]|"")*"', "")
        if unquoted.str.contains('"', literal=True).any():
            return None
    return unquoted.str.count_matches(",", literal=True) + 1


def _read_csv_exactly(text: str, header: list[str], name: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    width = len(header)
    columns: list[list[str | None]] = [[] for _ in header]
    row_numbers: list[int] = []
    bad: list[tuple[int, str, str]] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    last_start = previous_end = 1  # line on which the latest record starts; where the one before ended
    try:
        next(reader)
        for row_number, fields in enumerate(reader, start=1):
            last_start, previous_end = previous_end + 1, reader.line_num
            if len(fields) != width:
                raw = io.StringIO()
                csv.writer(raw, lineterminator="").writerow(fields)
                bad.append(
                    (
                        row_number,
                        _ragged_reason(len(fields), width),
                        _raw_record(raw.getvalue()),
                    )
                )
                continue
            row_numbers.append(row_number)
            for values, value in zip(columns, fields, strict=True):
                values.append(value)
    except csv.Error as error:
        raise UnreadableBatchError(f"{name}: not parseable as CSV near line {reader.line_num} ({error})") from error
    if _ends_inside_quotes(text):
        # The lenient reader made the rest of the file one value: every record after
        # the quote would vanish into it, so the file as a whole is refused.
        records = len(row_numbers) + len(bad)
        raise UnreadableBatchError(
            f"{name}: a quoted value opened in record {records} (line {last_start}) is never closed, "
            "so the rest of the file would be one value"
        )
    frame = pl.DataFrame({c: pl.Series(c, v, dtype=pl.String) for c, v in zip(header, columns, strict=True)})
    frame = frame.with_columns(pl.Series(ROW_NUMBER, row_numbers, dtype=pl.Int64))
    return frame, _rejected(bad)


def _ends_inside_quotes(text: str) -> bool:
    """True when the file ends inside a quoted value (strict parsing says so; another
    strictness error first means the quoting is at least closed somewhere)."""
    try:
        for _ in csv.reader(io.StringIO(text, newline=""), strict=True):
            pass
    except csv.Error as error:
        return str(error) == "unexpected end of data"
    return False


# --- JSON lines ------------------------------------------------------------


def _read_jsonl(data: bytes, name: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Row number = line number, so a quarantined record points into the file."""
    text = _decode(data, name, _locate_in_jsonl)
    data = data.removeprefix(_BOM)
    lines = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
    try:
        keys = pl.scan_ndjson(io.BytesIO(data), infer_schema_length=None).collect_schema().names()
        _check_names(keys, name)
        # A String schema makes Polars hand numbers and booleans over as their text.
        frame = pl.read_ndjson(io.BytesIO(data), schema={k: pl.String for k in keys})
    except pl.exceptions.PolarsError:
        return _read_jsonl_by_line(text, name)
    if frame.height != lines:
        # Blank lines were skipped, so record numbers would not be line numbers.
        return _read_jsonl_by_line(text, name)
    return _with_row_number(frame), _empty_rejected()


_JSON_KINDS = {list: "an array", str: "a string", int: "a number", Decimal: "a number", type(None): "null"}


def _json_text(value: object) -> str | None:
    """A parsed JSON value as the text validation reads (numbers exactly as written)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal):
        return str(value)
    return json.dumps(value, separators=(",", ":"), default=float)


def _read_jsonl_by_line(text: str, name: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    records: list[dict[str, str | None]] = []
    row_numbers: list[int] = []
    bad: list[tuple[int, str, str]] = []
    keys: dict[str, None] = {}
    for line_number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        try:
            # Decimal keeps a number as written ('12.50'), never through a float.
            value = json.loads(line, parse_float=Decimal)
        except RecursionError:
            bad.append((line_number, f"line {line_number}: not valid JSON (nested too deeply)", _raw_record(line)))
            continue
        except json.JSONDecodeError as error:
            bad.append(
                (
                    line_number,
                    f"line {line_number}: not valid JSON ({error.msg} at column {error.colno})",
                    _raw_record(line),
                )
            )
            continue
        if not isinstance(value, dict):
            bad.append(
                (
                    line_number,
                    f"line {line_number}: {_JSON_KINDS.get(type(value), 'a value')}, not a JSON object",
                    _raw_record(line),
                )
            )
            continue
        record = {k: _json_text(v) for k, v in value.items()}
        keys.update(dict.fromkeys(record))
        records.append(record)
        row_numbers.append(line_number)
    _check_names(list(keys), name)
    frame = pl.DataFrame({k: pl.Series(k, [r.get(k) for r in records], dtype=pl.String) for k in keys}).with_columns(
        pl.Series(ROW_NUMBER, row_numbers, dtype=pl.Int64)
    )
    return frame, _rejected(bad)


# --- Parquet ---------------------------------------------------------------


def _read_parquet(data: bytes, name: str) -> pl.DataFrame:
    try:
        frame = pl.read_parquet(io.BytesIO(data))
    except Exception as error:  # noqa: BLE001 -- Polars and Arrow raise many kinds for a broken file
        raise UnreadableBatchError(f"{name}: not a readable Parquet file ({error})") from error
    _check_names(frame.columns, name)
    try:
        frame = frame.select(_as_text(j, c, dtype) for j, (c, dtype) in enumerate(frame.schema.items()))
    except pl.exceptions.PolarsError as error:
        raise UnreadableBatchError(f"{name}: a Parquet column cannot be read as text ({error})") from error
    return _with_row_number(frame)


def _as_text(index: int, column: str, dtype: pl.DataType) -> pl.Expr:
    """Native Parquet values as text DuckDB parses back to the same value."""
    col = pl.nth(index)
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is not None:
            return col.dt.convert_time_zone("UTC").dt.to_string("%Y-%m-%dT%H:%M:%S%.fZ").alias(column)
        # Naive means UTC by contract.
        return col.dt.to_string("%Y-%m-%dT%H:%M:%S%.f").alias(column)
    if isinstance(dtype, pl.Date):
        return col.dt.to_string("%Y-%m-%d").alias(column)
    if isinstance(dtype, (pl.List, pl.Array, pl.Struct)):
        return col.map_elements(
            lambda v: json.dumps(v.to_list() if isinstance(v, pl.Series) else v, separators=(",", ":"), default=str),
            return_dtype=pl.String,
            skip_nulls=True,
        ).alias(column)
    return col.cast(pl.String).alias(column)
