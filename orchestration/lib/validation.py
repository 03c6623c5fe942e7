"""Check delivered rows against the landing contract in one vectorised pass.

DuckDB's `try_cast` does the parsing (it applies ISO-8601 offsets correctly),
guarded by regular expressions where it is more lenient than the contract
(it reads '1.5' as the integer 2 and '2024/01/31' as a timestamp). Every input
row ends up exactly once in the typed frame or in the quarantine frame, and a
quarantined row names every problem it has, each with its column.

Decisions:
- booleans: 'true'/'false' in any case, and '1'/'0'; nothing else ('yes', 't');
- a blank value (empty or whitespace only) is a missing value in every column:
  stored as null, or 'required value missing' where the contract requires it;
- timestamps: ISO-8601 date or date-time, optional fraction and offset; no
  offset means UTC; stored as naive UTC;
- money: rounded to 4 decimals only when the extra digits are binary
  floating-point noise (0.30000000000000004); '12.34567' is quarantined;
- integers: '3' and '3.0' (floats from Parquet/JSON), not '3.5', '3e0' or '0x3';
- a well-formed number too large for its raw column ('1e20' as money) is
  "out of range", not "not a number";
- currencies: upper-case ISO-4217 codes in use (contract.ISO_4217_CURRENCIES);
  'ABC' is quarantined with its row, while a real code without FX rates is
  left to the batch's expectations (rejected until the rates arrive);
- a primary key repeated inside one batch: with different `updated_at` values
  the latest version loads and older ones are quarantined as superseded; among
  rows of the same version, identical rows keep the first and quarantine the
  rest, rows that disagree are all quarantined, since nothing says which one
  is right. Repeats across batches are versions, kept in raw.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import polars as pl

from orchestration.lib.contract import (
    BOOLEAN,
    COUNTRY,
    CURRENCY,
    DATE,
    INTEGER,
    ISO_4217_CURRENCIES,
    MONEY,
    NON_NEGATIVE_COLUMNS,
    NUMBER,
    SOURCES,
    STRING,
    SURVEY_SCORE_RANGES,
    TIMESTAMP,
    ZERO_DECIMAL_CURRENCIES,
    Source,
)
from orchestration.lib.readers import ROW_NUMBER

EXTRA_COLUMN = "_extra"
TRUE_TEXTS = ("true", "1")
FALSE_TEXTS = ("false", "0")
# The survey that defines a response's score range (SURVEY_SCORE_RANGES).
SURVEY_COLUMN, SCORE_COLUMN = "survey", "score"
# Absolute difference between the 4-decimal and the float reading of a money
# value above which the extra digits are real precision, not float noise
# (a float64 Parquet column gives 0.30000000000000004 for 0.3). Absolute, so
# that large amounts cannot hide a fifth decimal.
MONEY_NOISE = 1e-6
# Longest delivered value quoted in full inside a reason.
SHOWN_VALUE_CHARS = 60

_NUMBER_RE = r"\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*"
_INTEGER_RE = r"\s*[+-]?\d+(\.0*)?\s*"
_DATE_RE = r"\s*\d{4}-\d{2}-\d{2}\s*"
_TIMESTAMP_RE = r"\s*\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?)?\s*"

QUARANTINE_SCHEMA = {
    "row_number": pl.Int64,
    "column_name": pl.String,
    "reason": pl.String,
    "record": pl.String,
}


@dataclass
class ValidatedBatch:
    # Contract columns typed per RAW_SQL_TYPES in contract order, then _extra, ROW_NUMBER.
    valid: pl.DataFrame
    # One row per bad input row: row_number, column_name, reason, record.
    quarantine: pl.DataFrame


def validate_batch(frame: pl.DataFrame, source: str | Source) -> ValidatedBatch:
    """Split a string frame (as from `readers`) into typed rows and quarantined rows."""
    source = SOURCES[source] if isinstance(source, str) else source
    names = [c for c in frame.columns if c != ROW_NUMBER]
    # Positional names inside SQL: delivered names can be anything, even ''.
    # get_column, not pl.col: a delivered name like '^a.*$' would be read as a regex.
    internal = pl.DataFrame(
        [frame.get_column(c).cast(pl.String).alias(f"c{j}") for j, c in enumerate(names)]
        + [frame.get_column(ROW_NUMBER).cast(pl.Int64)]
    )
    conn = duckdb.connect(":memory:")
    try:
        conn.execute("set TimeZone = 'UTC'")
        conn.register("batch", internal)
        checked = conn.sql(_checking_sql(source, names)).pl()
    finally:
        conn.close()
    bad = checked["_reasons"].is_not_null()
    valid = checked.filter(~bad).select(
        *(pl.col(f"t{i}").alias(c) for i, c in enumerate(source.column_names)),
        pl.col("_extra").alias(EXTRA_COLUMN),
        pl.col(ROW_NUMBER),
    )
    quarantine = checked.filter(bad).select(
        pl.col(ROW_NUMBER).alias("row_number"),
        pl.col("_column").alias("column_name"),
        pl.col("_reasons").alias("reason"),
        pl.col("_record").alias("record"),
    )
    return ValidatedBatch(valid, quarantine.cast(QUARANTINE_SCHEMA))  # type: ignore[arg-type]


@dataclass(frozen=True)
class _Check:
    column: str  # reported as column_name when it is the row's first problem
    condition: str  # SQL, true when the row has the problem
    message: str  # SQL text expression naming the column


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _shown(x: str) -> str:
    """SQL for the delivered value in quotes, cut short when long."""
    cut = SHOWN_VALUE_CHARS - 3
    value = f"CASE WHEN length({x}) > {SHOWN_VALUE_CHARS} THEN left({x}, {cut}) || '...' ELSE {x} END"
    return f"'''' || {value} || ''''"


def _about(column: str, phrase: str, x: str) -> str:
    """SQL for "column: phrase ('value')"."""
    return f"{_lit(f'{column}: {phrase} (')} || {_shown(x)} || ')'"


def _has_value(x: str) -> str:
    """SQL: x is neither null nor blank.

    Only a string whose first character sorts before '!' can be all whitespace,
    so the regular expression runs on almost no rows; trimming every value costs
    more than the rest of the validation.
    """
    return f"({x} IS NOT NULL AND NOT ({x} < '!' AND regexp_full_match({x}, '\\s*')))"


def _guarded(x: str, pattern: str, cast: str) -> str:
    return f"CASE WHEN regexp_full_match({x}, {_lit(pattern)}) THEN {cast} END"


def _typed(kind: str, x: str) -> tuple[str, str | None]:
    """SQL for the typed value (null when blank), and the phrase for a value that does not parse."""
    if kind == TIMESTAMP:
        cast = f"try_cast(try_cast({x} AS TIMESTAMPTZ) AS TIMESTAMP)"
        return _guarded(x, _TIMESTAMP_RE, cast), "not an ISO-8601 timestamp"
    if kind == DATE:
        return _guarded(x, _DATE_RE, f"try_cast({x} AS DATE)"), "not a YYYY-MM-DD date"
    if kind == MONEY:
        return _guarded(x, _NUMBER_RE, f"try_cast({x} AS DECIMAL(18,4))"), "not a decimal number"
    if kind == INTEGER:
        return _guarded(x, _INTEGER_RE, f"try_cast({x} AS BIGINT)"), "not an integer"
    if kind == NUMBER:
        return _guarded(x, _NUMBER_RE, f"try_cast({x} AS DOUBLE)"), "not a number"
    if kind == BOOLEAN:
        text = f"lower(trim({x}))"
        trues, falses = ", ".join(map(_lit, TRUE_TEXTS)), ", ".join(map(_lit, FALSE_TEXTS))
        return (
            f"CASE WHEN {text} IN ({trues}) THEN true WHEN {text} IN ({falses}) THEN false END",
            "not a boolean (true/false/1/0)",
        )
    if kind in (STRING, CURRENCY, COUNTRY):
        return f"CASE WHEN {_has_value(x)} THEN {x} END", None
    raise ValueError(f"no parser for logical type {kind!r}")


_CODE_PATTERNS = {
    CURRENCY: ("[A-Z]{3}", "not an ISO-4217 upper-case code"),
    COUNTRY: ("[A-Z]{2}", "not an ISO-3166 alpha-2 upper-case code"),
}

# Numbers that are well formed but do not fit the raw column's type: said so,
# rather than "not a number" about '1e20'.
_PATTERNS = {MONEY: _NUMBER_RE, INTEGER: _INTEGER_RE}
_OUT_OF_RANGE = {
    MONEY: "out of range, at most 14 digits before the point",
    INTEGER: "out of range for a 64-bit integer",
}


def _column_checks(source: Source, position: dict[str, int]) -> tuple[list[str], list[_Check]]:
    """Typed-value select list (t<i>) and the per-column checks.

    Conditions put the cheap, usually false test first: DuckDB evaluates the
    rest of an AND only for the rows still in question.
    """
    select: list[str] = []
    checks: list[_Check] = []
    non_negative = NON_NEGATIVE_COLUMNS.get(source.name, ())
    for i, column in enumerate(source.columns):
        name = column.name
        if name not in position:
            select.append(f"NULL::{column.raw_sql_type} AS t{i}")
            if column.required:
                checks.append(_Check(name, "true", _lit(f"missing required column {name}")))
            continue
        x, t = f"c{position[name]}", f"t{i}"
        has = _has_value(x)
        typed, unparsed = _typed(column.type, x)
        if name in source.primary_key and column.type == STRING:
            # ' c1' and 'c1' are one key: padding is an export artefact, not identity.
            typed = f"CASE WHEN {has} THEN trim({x}) END"
        select.append(f"{typed} AS {t}")
        if column.required:
            checks.append(_Check(name, f"NOT {has}", _lit(f"{name}: required value missing")))
        if column.type in _OUT_OF_RANGE:
            well_formed = f"regexp_full_match({x}, {_lit(_PATTERNS[column.type])})"
            checks.append(
                _Check(name, f"{t} IS NULL AND {has} AND {well_formed}", _about(name, _OUT_OF_RANGE[column.type], x))
            )
            checks.append(_Check(name, f"{t} IS NULL AND {has} AND NOT {well_formed}", _about(name, unparsed, x)))
        elif unparsed is not None:
            checks.append(_Check(name, f"{t} IS NULL AND {has}", _about(name, unparsed, x)))
        if column.type in _CODE_PATTERNS:
            pattern, phrase = _CODE_PATTERNS[column.type]
            well_formed = f"regexp_full_match({t}, {_lit(pattern)})"
            checks.append(_Check(name, f"NOT {well_formed}", _about(name, phrase, x)))
            if column.type == CURRENCY:
                # One string to search, not an IN list of 160 literals: that costs 0.1 s per batch to plan.
                known = _lit(" " + " ".join(sorted(ISO_4217_CURRENCIES)) + " ")
                checks.append(
                    _Check(
                        name,
                        f"{well_formed} AND NOT contains({known}, ' ' || {t} || ' ')",
                        _about(name, "not an ISO-4217 currency", x),
                    )
                )
        if column.type == MONEY:
            as_double = f"try_cast({x} AS DOUBLE)"
            beyond_noise = f"abs({t}::DOUBLE - {as_double}) > {MONEY_NOISE}"
            message = _about(name, "more than 4 decimal places", x)
            checks.append(_Check(name, f"{t} IS NOT NULL AND {beyond_noise}", message))
            if "currency" in position:
                checks.append(_minor_unit_check(name, t, f"c{position['currency']}", x, beyond_noise))
        if column.enum is not None:
            allowed = ", ".join(map(_lit, column.enum))
            expected = _lit(" (expected one of " + ", ".join(column.enum) + ")")
            message = f"{_lit(f'{name}: unknown value ')} || {_shown(x)} || {expected}"
            checks.append(_Check(name, f"{t} NOT IN ({allowed})", message))
        if name in non_negative:
            checks.append(_Check(name, f"{t} < 0", _about(name, "negative value", x)))
    return select, checks


def _minor_unit_check(name: str, typed: str, currency: str, raw: str, beyond_noise: str) -> _Check:
    """The contract rounds money to the row currency's minor unit (JPY and KRW: 0)."""
    zero = ", ".join(map(_lit, ZERO_DECIMAL_CURRENCIES))
    # DuckDB's round() wants a constant precision, hence one branch per unit.
    off_unit = (
        f"CASE WHEN trim({currency}) IN ({zero}) THEN {typed} <> round({typed}, 0)"
        f" ELSE {typed} <> round({typed}, 2) END"
    )
    return _Check(
        name,
        f"{typed} IS NOT NULL AND NOT ({beyond_noise}) AND {off_unit}",
        _about(name, "more decimals than the currency's minor unit", raw),
    )


def _survey_checks(source: Source, position: dict[str, int]) -> list[_Check]:
    if not {SURVEY_COLUMN, SCORE_COLUMN} <= position.keys() or SCORE_COLUMN not in source.column_names:
        return []
    survey = f"c{position[SURVEY_COLUMN]}"
    score = f"t{source.column_names.index(SCORE_COLUMN)}"
    ranges = SURVEY_SCORE_RANGES.items()
    outside = " ".join(f"WHEN {_lit(s)} THEN {score} NOT BETWEEN {lo} AND {hi}" for s, (lo, hi) in ranges)
    allowed = " ".join(f"WHEN {_lit(s)} THEN '{lo}-{hi}'" for s, (lo, hi) in ranges)
    condition = f"{score} IS NOT NULL AND coalesce(CASE {survey} {outside} END, false)"
    message = (
        f"'{SCORE_COLUMN}: ' || {score} || ' outside ' || CASE {survey} {allowed} END || ' for survey ' || {survey}"
    )
    return [_Check(SCORE_COLUMN, condition, message)]


def _key_checks(source: Source, position: dict[str, int], width: int) -> tuple[str, str, list[_Check]]:
    """CTEs of keys repeated in the batch, the joins that attach them, and the checks.

    Where the source has a version column (`updated_at`), rows of one key with
    different versions are versions, not conflicts: the latest loads and the
    older ones are quarantined as superseded (staging would drop them anyway,
    and the batch's uniqueness expectation must hold). Among the rows of the
    latest version (all rows, without a version column), identical copies keep
    the first and rows that differ are all quarantined.

    An aggregate joined back is much cheaper than a window: only the repeated
    keys travel, not every column of every row through a sort.
    """
    if not all(k in position for k in source.primary_key):
        # A missing key column already quarantines every row.
        return "", "", []
    label = ", ".join(source.primary_key)
    # Compared as typed values: '2024-01-01' and ' 2024-01-01' are one date.
    keys = [f"t{source.column_names.index(k)}" for k in source.primary_key]
    key_list = ", ".join(keys)
    versioned = source.version_column is not None and source.version_column in position
    version = f"t{source.column_names.index(source.version_column)}" if versioned else "NULL"
    present = " AND ".join(f"{k} IS NOT NULL" for k in keys)
    # Identical rows = every delivered value equal, extra columns included.
    row_hash = "hash(" + ", ".join(f"c{j}" for j in range(width)) + ")"
    is_latest = f"{version} IS NOT DISTINCT FROM _key_latest"
    repeated = f"""
        repeated AS (
            SELECT {key_list}, count(*) AS _key_rows, max({version}) AS _key_latest
            FROM typed WHERE {present}
            GROUP BY ALL HAVING count(*) > 1
        ),
        latest AS (
            SELECT {key_list}, count(*) AS _latest_rows, min({ROW_NUMBER}) AS _latest_first,
                min({row_hash}) = max({row_hash}) AS _latest_same
            FROM typed JOIN repeated USING ({key_list})
            WHERE {is_latest}
            GROUP BY ALL
        ),"""
    join = f"LEFT JOIN repeated USING ({key_list}) LEFT JOIN latest USING ({key_list})"
    superseded = _Check(
        label,
        f"_key_rows IS NOT NULL AND NOT ({is_latest})",
        f"{_lit(f'{label}: superseded by row ')} || _latest_first"
        f" || {_lit(f' of this batch (later {source.version_column})')}",
    )
    exact = _Check(
        label,
        f"_key_rows IS NOT NULL AND {is_latest} AND _latest_same AND {ROW_NUMBER} <> _latest_first",
        f"{_lit(f'{label}: exact duplicate of row ')} || _latest_first",
    )
    conflicting = _Check(
        label,
        f"_key_rows IS NOT NULL AND {is_latest} AND NOT _latest_same",
        f"{_lit(f'{label}: duplicate key with different values (')} || _latest_rows"
        " || ' rows in this batch, first at row ' || _latest_first || ')'",
    )
    return repeated, join, ([superseded] if versioned else []) + [exact, conflicting]


def _json_object(pairs: list[tuple[int, str]]) -> str:
    return "json_object(" + ", ".join(f"{_lit(name)}, c{j}" for j, name in pairs) + ")"


def _checking_sql(source: Source, names: list[str]) -> str:
    position = {name: j for j, name in enumerate(names)}
    typed_select, checks = _column_checks(source, position)
    checks += _survey_checks(source, position)
    repeated, join, key_checks = _key_checks(source, position, len(names))
    checks += key_checks

    if checks:
        # Cheap test on every row; the reasons are only spelled out for bad rows.
        bad = "coalesce(" + " OR ".join(f"({c.condition})" for c in checks) + ", false)"
        reasons = ", ".join(f"CASE WHEN {c.condition} THEN {c.message} END" for c in checks)
        reasons = f"concat_ws('; ', {reasons})"
        first = "CASE " + " ".join(f"WHEN {c.condition} THEN {_lit(c.column)}" for c in checks) + " END"
    else:
        bad, reasons, first = "false", "NULL::VARCHAR", "NULL::VARCHAR"
    record = _json_object(list(enumerate(names))) if names else "'{}'"
    extras = [(j, n) for j, n in enumerate(names) if n not in source.column_names]
    if extras:
        all_null = " AND ".join(f"c{j} IS NULL" for j, _ in extras)
        extra = f"CASE WHEN {all_null} THEN NULL ELSE {_json_object(extras)} END"
    else:
        extra = "NULL::VARCHAR"
    typed_columns = ", ".join(f"t{i}" for i in range(len(source.columns)))
    return f"""
        WITH typed AS (
            SELECT *, {", ".join(typed_select)} FROM batch
        ),{repeated}
        checked AS (
            SELECT *, {bad} AS _bad FROM typed {join}
        )
        SELECT
            {ROW_NUMBER}, {typed_columns},
            {extra} AS _extra,
            CASE WHEN _bad THEN {reasons} END AS _reasons,
            CASE WHEN _bad THEN {first} END AS _column,
            CASE WHEN _bad THEN {record} END AS _record
        FROM checked
        ORDER BY {ROW_NUMBER}
    """
