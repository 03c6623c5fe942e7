"""Contract-breaking rows for the delivery, so ingestion's quarantine has something to catch.

Every bad row is an *extra* row: a copy of a real row with one defect and,
unless the key is the defect, a fresh key. Quarantining exactly the bad rows
therefore leaves the clean world intact, and a bad row that slips through
shows up as a key nobody else has. The defects are the ones the contract
(`orchestration/lib/contract.py`) lets a validator detect without guessing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import numpy as np
import polars as pl

from orchestration.lib.contract import (
    BOOLEAN,
    DATE,
    INTEGER,
    MONEY,
    NON_NEGATIVE_COLUMNS,
    NUMBER,
    SOURCES,
    SURVEY_SCORE_RANGES,
    TIMESTAMP,
)

WRONG_TYPE = "wrong_type"
UNKNOWN_ENUM = "unknown_enum"
MISSING_KEY = "missing_key"
MISSING_REQUIRED = "missing_required"
NEGATIVE_AMOUNT = "negative_amount"
OUT_OF_RANGE = "out_of_range"
DEFECTS = (WRONG_TYPE, UNKNOWN_ENUM, MISSING_KEY, MISSING_REQUIRED, NEGATIVE_AMOUNT, OUT_OF_RANGE)

# Text that no contract reader may accept for the type; each is rejected by
# DuckDB's TRY_CAST (`1.5` is not used for integers: DuckDB rounds it to 2).
WRONG_TYPE_TEXT = {
    MONEY: ("12,50", "abc"),
    TIMESTAMP: ("not-a-date", "31/12/2023 10:00"),
    DATE: ("not-a-date", "2024-02-30"),
    INTEGER: ("abc", "seven"),
    NUMBER: ("abc", "1,5"),
    BOOLEAN: ("maybe",),
}

# Columns that are neither contract-checked nor part of a key but must stay
# unique for a copy to be a separate record.
_ALSO_FRESH = {"invoices": ("invoice_number",)}


@dataclass(frozen=True)
class BadRows:
    """Bad rows of one source, typed like the source; text defects are kept aside.

    `frame` holds the typed rows; a `wrong_type` row still carries its
    template's value there, and the text to write instead is in `text`
    (None for every other defect: their value fits the column's type).
    """

    frame: pl.DataFrame
    template: np.ndarray  # row index of the copied row in the delivered frame
    defect: list[str]
    column: list[str]
    text: list[str | None]  # text written over the typed value (type defects only)

    def __len__(self) -> int:
        return self.frame.height


def typo(value: str, allowed: tuple[str, ...]) -> str:
    """A plausible misspelling outside the enum: `paid` -> `paied`."""
    bad = value[:-1] + "e" + value[-1:]
    while bad in allowed:
        bad = bad[:-1] + "e" + bad[-1:]
    return bad


def candidate_columns(source: str, defect: str) -> tuple[str, ...]:
    """Columns a defect can be put in; empty when the defect does not apply to the source."""
    spec = SOURCES[source]
    key = set(spec.primary_key)
    if defect == WRONG_TYPE:
        return tuple(c.name for c in spec.columns if c.type in WRONG_TYPE_TEXT and c.name not in key)
    if defect == UNKNOWN_ENUM:
        return tuple(c.name for c in spec.columns if c.enum)
    if defect == MISSING_KEY:
        return spec.primary_key
    if defect == MISSING_REQUIRED:
        return tuple(c for c in spec.required_columns if c not in key)
    if defect == NEGATIVE_AMOUNT:
        return NON_NEGATIVE_COLUMNS.get(source, ())
    if defect == OUT_OF_RANGE:
        return ("score",) if source == "survey_responses" else ()
    raise ValueError(defect)


def applicable_defects(source: str, has_text_batch: bool) -> tuple[str, ...]:
    """Type defects need a text batch: a typed Parquet column cannot hold `abc`."""
    return tuple(d for d in DEFECTS if candidate_columns(source, d) and (d != WRONG_TYPE or has_text_batch))


def bad_row_count(rows: int, rate: float, defects: int) -> int:
    """round(rows x rate), raised to one of each defect once at least one bad row is due."""
    due = round(rows * rate)
    return max(due, defects) if due >= 1 and defects else due


def make_bad_rows(
    source: str,
    frame: pl.DataFrame,
    text_rows: np.ndarray,
    rate: float,
    rng: np.random.Generator,
) -> BadRows:
    """Bad copies of rows of `frame` (the rows as delivered, hidden columns included).

    `text_rows` marks the rows that go to CSV/JSONL batches: only those can be
    templates of type defects, so every type defect lands in a text file.
    """
    defects = applicable_defects(source, bool(text_rows.any()))
    count = bad_row_count(frame.height, rate, len(defects))
    if count == 0:
        return BadRows(frame.clear(), np.zeros(0, dtype=np.int64), [], [], [])
    chosen = list(defects) + [str(d) for d in rng.choice(defects, count - len(defects))]
    text_index = np.flatnonzero(text_rows)
    template = np.array(
        [rng.choice(text_index) if d == WRONG_TYPE else rng.integers(frame.height) for d in chosen],
        dtype=np.int64,
    )
    columns = [str(rng.choice(candidate_columns(source, d))) for d in chosen]
    bad = _fresh_keys(source, frame, frame[template], [d != MISSING_KEY for d in chosen])

    spec = SOURCES[source]
    texts: list[str | None] = []
    cells: dict[str, tuple[list[int], list[object]]] = {}
    for row, (defect, column) in enumerate(zip(chosen, columns, strict=True)):
        value = bad[column][row]
        text = None
        if defect == WRONG_TYPE:
            new, text = value, str(rng.choice(WRONG_TYPE_TEXT[spec.column(column).type]))
        elif defect in (MISSING_KEY, MISSING_REQUIRED):
            new = None
        elif defect == UNKNOWN_ENUM:
            allowed = spec.column(column).enum or ()
            new = typo(value or allowed[0], allowed)
        elif defect == NEGATIVE_AMOUNT:
            new = -abs(value) if value else (Decimal("-1") if isinstance(value, Decimal) else -1.0)
        else:  # OUT_OF_RANGE
            new = SURVEY_SCORE_RANGES[bad["survey"][row]][1] + 1
        rows, values = cells.setdefault(column, ([], []))
        rows.append(row)
        values.append(new)
        texts.append(text)
    bad = bad.with_columns(
        bad[column].scatter(rows, pl.Series(values, dtype=bad.schema[column]))
        for column, (rows, values) in cells.items()
    )
    return BadRows(bad, template, chosen, columns, texts)


def _fresh_keys(source: str, clean: pl.DataFrame, bad: pl.DataFrame, fresh: list[bool]) -> pl.DataFrame:
    """Give rows marked `fresh` a key (and unique business number) no clean row has."""
    spec = SOURCES[source]
    mask = pl.Series(fresh)
    seq = pl.Series(np.arange(1, bad.height + 1)).cast(pl.String).str.zfill(5)
    string_key = [c for c in spec.primary_key if spec.column(c).type == "string"]
    if string_key:
        targets = [string_key[0], *_ALSO_FRESH.get(source, ())]
        bad = bad.with_columns(
            pl.when(mask).then(pl.concat_str(pl.col(c), pl.lit("-b"), seq)).otherwise(pl.col(c)).alias(c)
            for c in targets
        )
        taken = clean[string_key[0]].is_in(bad.filter(mask)[string_key[0]].implode())
        if taken.any():
            raise ValueError(f"{source}: fresh bad-row keys collide with clean keys")
    else:
        # fx_rates: (rate_date, currency); move the date before the first real one
        date_col = next(c for c in spec.primary_key if spec.column(c).type == DATE)
        first = clean[date_col].min()
        shifted = pl.Series([first - timedelta(days=n) for n in range(1, bad.height + 1)], dtype=pl.Date)
        bad = bad.with_columns(pl.when(mask).then(shifted).otherwise(pl.col(date_col)).alias(date_col))
    return bad
