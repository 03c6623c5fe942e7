"""Deliver the clean billing world as a landing folder, the way real exports arrive.

The simulator decides what happened; this module decides how it reaches us.
Ingestion must survive what real deliveries do (`shared/spec/landing.md`):
batches sliced by time in mixed formats, a batch delivered twice, a later
batch carrying newer versions of earlier rows, and a few rows that break the
contract. The ground truth needed to check ingestion against all of that is
written to `<landing>/_truth/`.

Whatever the delivery does, the newest valid version of every key equals the
clean row, so a correct pipeline computes the same results as on the clean
tables. Writing is whole-slice polars I/O; only bad rows are touched one by one.

How values are written:
- CSV: UTF-8, header, `,`, `""` quoting only where needed, null = empty field.
  Timestamps ISO-8601 with `Z`, `+00:00` or no offset (varies by batch),
  fraction only when non-zero; dates `YYYY-MM-DD`; booleans `true`/`false`;
  money as plain decimals, JPY/KRW without decimals (`1200`).
- JSONL: one object per line, same text as CSV for timestamps, dates and
  money (money as JSON strings, so `12.50` stays exact); integers, numbers
  and booleans as JSON values; null as `null`.
- Parquet: native types, timestamps `timestamp[us, tz=UTC]`, money
  `decimal(18, 2)`. Type defects cannot exist there, so they go to text batches.
- `.gz`: gzip with mtime 0, so the same world gives the same bytes.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from billing_world.bad_rows import WRONG_TYPE, BadRows, make_bad_rows
from orchestration.lib.contract import (
    BOOLEAN,
    DATE,
    INTEGER,
    MONEY,
    NUMBER,
    SOURCE_NAMES,
    SOURCES,
    TIMESTAMP,
    TRUTH_FOLDER,
    ZERO_DECIMAL_CURRENCIES,
)

# Formats are dealt round-robin over a source's batches, from an offset that
# differs per source, so any three consecutive batches include CSV and non-CSV.
FORMATS = ("csv", "parquet", "jsonl", "csv.gz", "jsonl.gz")
TEXT_FORMATS = frozenset({"csv", "csv.gz", "jsonl", "jsonl.gz"})
# Offset written after text timestamps, by batch number within a source:
# mostly `Z`, sometimes none (= UTC per contract), sometimes `+00:00`.
TIMESTAMP_SUFFIXES = ("Z", "", "Z", "+00:00")
ISO_FORMAT = "%Y-%m-%dT%H:%M:%S%.f"  # `%.f` writes no fraction for whole seconds
# The column a row is time-sliced by. Invoice lines go by their invoice's
# `issued_at` so they arrive with it; `period_start` only for an orphan line.
TIME_COLUMNS = {
    "customers": "created_at",
    "products": "valid_from",
    "subscription_events": "effective_at",
    "invoices": "issued_at",
    "invoice_lines": "period_start",
    "payments": "attempted_at",
    "credit_notes": "issued_at",
    "support_tickets": "created_at",
    "survey_responses": "responded_at",
    "fx_rates": "rate_date",
}
PRICE_BOOK_BATCHES = 2  # a price book is exported rarely
CUSTOMER_UPDATE_SHARE = 0.05  # of customers edited after creation, share re-delivered
SETTLED_AT = {"paid": "paid_at", "void": "voided_at", "uncollectible": "uncollectible_at"}
GZIP_LEVEL = 1  # 5x faster than 6 for ~6 % larger files
DUPLICATE_SOURCE = "invoices"  # re-delivering invoices also re-delivers stale `open` versions
_CURRENCY = "__currency"  # hidden working column: the minor unit money is written in


@dataclass(frozen=True)
class DeliveryConfig:
    batches_per_source: int = 4  # time-sliced batches per source (products: at most 2)
    bad_row_rate: float = 0.002  # share of extra contract-breaking rows (0 = none)
    duplicate_batch: bool = True  # re-deliver one batch's exact bytes under another name
    update_batch: bool = True  # a last batch with newer versions of earlier rows
    # Hold the world's last N days back as their own batches (kind `day`), loading last:
    # land the other files first and these later to exercise a daily incremental run.
    held_back_days: int = 0
    seed: int = 7


@dataclass
class _Batch:
    source: str
    number: int  # 1-based delivery order within the source
    label: str  # YYYY-MM: first month the batch covers
    fmt: str
    kind: str  # normal | update
    frame: pl.DataFrame  # typed rows as written, hidden column included
    bad: BadRows | None = None  # bad rows in this batch, in file order
    bad_positions: np.ndarray | None = None  # their 0-based positions in `frame`

    @property
    def path(self) -> str:
        return f"{self.source}/{self.label}__batch-{self.number:03d}.{self.fmt}"

    @property
    def timestamp_suffix(self) -> str:
        return TIMESTAMP_SUFFIXES[(self.number - 1) % len(TIMESTAMP_SUFFIXES)]


def deliver_world(
    tables: dict[str, pl.DataFrame],
    landing_dir: Path,
    config: DeliveryConfig = DeliveryConfig(),
    *,
    replace: bool = False,
) -> dict[str, pl.DataFrame]:
    """Write `tables` as landing batches and return the delivery truth (also in `_truth/`).

    Refuses to write over existing batches (they are immutable) unless
    `replace`, which deletes the source and truth folders first.
    """
    _check_config(config)
    _check_tables(tables)
    landing = Path(landing_dir)
    sources = [name for name in SOURCE_NAMES if name in tables]
    _prepare(landing, sources, replace)
    held_back_from = final_day(tables) - dt.timedelta(days=config.held_back_days - 1) if config.held_back_days else None

    batch_rows: list[dict] = []
    bad_truth: list[pl.DataFrame] = []
    update_truth: list[pl.DataFrame] = []
    for index, source in enumerate(sources):
        rng = np.random.default_rng([config.seed, index])
        batches, updates = _plan_source(source, index, tables, config, rng, held_back_from)
        update_truth.append(updates)
        for batch in batches:
            data = _render(batch)
            target = landing / batch.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            batch_rows.append(_batch_row(batch, data))
            if batch.bad is not None and len(batch.bad):
                bad_truth.append(_bad_truth(batch))

    if config.duplicate_batch and batch_rows:
        batch_rows.append(_duplicate(landing, batch_rows, np.random.default_rng([config.seed, len(SOURCE_NAMES)])))

    truth = {
        "batches": pl.DataFrame(batch_rows, schema=BATCHES_SCHEMA, orient="row"),
        "bad_rows": pl.concat(bad_truth) if bad_truth else pl.DataFrame(schema=BAD_ROWS_SCHEMA),
        "updates": pl.concat(update_truth) if update_truth else pl.DataFrame(schema=UPDATES_SCHEMA),
    }
    (landing / TRUTH_FOLDER).mkdir(parents=True, exist_ok=True)
    for name, frame in truth.items():
        frame.write_csv(landing / TRUTH_FOLDER / f"{name}.csv")
    return truth


BATCHES_SCHEMA = {
    "source": pl.String,
    "batch_file": pl.String,  # path relative to the landing folder
    "format": pl.String,
    "rows": pl.Int64,  # data rows in the file, bad rows included
    "bad_rows": pl.Int64,  # a duplicate repeats its original's, unlisted: the copy must not load
    "kind": pl.String,  # normal | update | duplicate | day (held_back_days: rows and versions of those days)
    "duplicate_of": pl.String,
    "timestamp_style": pl.String,  # Z | none | +00:00 | native
    "sha256": pl.String,
}
BAD_ROWS_SCHEMA = {
    "source": pl.String,
    "batch_file": pl.String,
    "row_number": pl.Int64,  # 1-based data row (CSV: header excluded; JSONL: line)
    "column": pl.String,
    "defect": pl.String,
    "value": pl.String,  # the cell as written; null = empty
    "key": pl.String,  # primary key as written, `|`-joined, null parts empty
}
UPDATES_SCHEMA = {
    "source": pl.String,
    "key": pl.String,
    "earlier_batch_file": pl.String,  # where the earlier version was delivered
    "update_batch_file": pl.String,  # where the newest (clean) version was delivered
    "changed_columns": pl.String,
}


# --- planning -------------------------------------------------------------


def time_slices(month: np.ndarray, batches: int) -> tuple[np.ndarray, list[int], list[int]]:
    """Split rows into `batches` contiguous spans of (nearly) equal calendar length.

    `month` is year * 12 + month - 1 per row. Returns the dense slice number of
    every row, and per kept (non-empty) slice its first month and the first
    month after it.
    """
    low = int(month.min())
    span = int(month.max()) - low + 1
    raw = (month - low) * batches // span
    kept = np.unique(raw)
    starts = [low + -(-int(k) * span // batches) for k in kept]
    ends = [low + -(-(int(k) + 1) * span // batches) for k in kept]
    return np.searchsorted(kept, raw), starts, ends


def month_label(month: int) -> str:
    return f"{month // 12:04d}-{month % 12 + 1:02d}"


def format_for(source_index: int, seed: int, batch_index: int) -> str:
    return FORMATS[(source_index + seed + batch_index) % len(FORMATS)]


def final_day(tables: dict[str, pl.DataFrame]) -> dt.date:
    """The last day on which anything was delivered: the latest date of any source's slicing time."""
    return max(_slice_times(source, tables).cast(pl.Date).max() for source in tables if tables[source].height)


def _plan_source(
    source: str,
    index: int,
    tables: dict[str, pl.DataFrame],
    config: DeliveryConfig,
    rng: np.random.Generator,
    held_back_from: dt.date | None = None,
) -> tuple[list[_Batch], pl.DataFrame]:
    clean = _with_currency(source, tables)
    if clean.height == 0:
        return [], pl.DataFrame(schema=UPDATES_SCHEMA)
    times = _slice_times(source, tables)
    month = (times.dt.year().cast(pl.Int64) * 12 + times.dt.month().cast(pl.Int64) - 1).to_numpy()
    wanted = min(config.batches_per_source, PRICE_BOOK_BATCHES) if source == "products" else config.batches_per_source
    slice_of, starts, ends = time_slices(month, wanted)
    formats = [format_for(index, config.seed, b) for b in range(len(starts))]
    if len(formats) == 1 and formats[0] not in TEXT_FORMATS:
        formats = ["csv"]  # a lone batch must be able to carry type defects
    slice_end = np.asarray(ends)[slice_of]
    normal_slices = len(starts)
    if held_back_from is not None:
        # the held-back days are one more slice; a row keeps its own slice's cut for _earlier_versions
        day_month = held_back_from.year * 12 + held_back_from.month - 1
        slice_of = np.where((times.cast(pl.Date) >= held_back_from).to_numpy(), normal_slices, slice_of)
        starts = [*starts, day_month]
        formats.append(format_for(index, config.seed, normal_slices + 1))

    delivered, updated, changed = clean, np.zeros(clean.height, dtype=bool), None
    if config.update_batch and source in ("customers", "invoices"):
        delivered, updated, changed = _earlier_versions(source, clean, slice_end, rng, held_back_from)

    text_rows = np.array([fmt in TEXT_FORMATS for fmt in formats], dtype=bool)[slice_of]
    bad = make_bad_rows(source, delivered, text_rows, config.bad_row_rate, rng)
    bad_slice = slice_of[bad.template]

    slices = []
    for number, (start, fmt) in enumerate(zip(starts, formats, strict=True), start=1):
        rows = delivered.filter(pl.Series(slice_of == number - 1))
        mine = np.flatnonzero(bad_slice == number - 1)
        positions = np.sort(rng.choice(rows.height + len(mine), size=len(mine), replace=False))
        batch_bad = _take_bad(bad, mine)
        frame = _interleave(rows, batch_bad.frame, positions)
        kind = "normal" if number <= normal_slices else "day"
        slices.append(_Batch(source, number, month_label(start), fmt, kind, frame, batch_bad, positions))
    batches = [batch for batch in slices[:normal_slices] if batch.frame.height]
    day_batches = [batch for batch in slices[normal_slices:] if batch.frame.height]

    updates = pl.DataFrame(schema=UPDATES_SCHEMA)
    if updated.any():
        newest = clean.filter(pl.Series(updated))
        version = SOURCES[source].version_column
        # versions written on the held-back days arrive with them
        on_day = (
            (newest[version].cast(pl.Date) >= held_back_from).fill_null(False).to_numpy()
            if held_back_from is not None
            else np.zeros(newest.height, dtype=bool)
        )
        latest = newest[version].max()
        label_month = max(starts[normal_slices - 1], latest.year * 12 + latest.month - 1)
        update_batches = {}
        for written_on_day, kind, offset in ((False, "update", 0), (True, "day", 1)):
            rows = newest.filter(pl.Series(on_day == written_on_day))
            if rows.height:
                fmt = format_for(index, config.seed, normal_slices + offset)
                update_batches[written_on_day] = _Batch(
                    source, normal_slices + 1 + offset, month_label(label_month), fmt, kind, rows
                )
        if False in update_batches:
            batches.append(update_batches[False])
        if True in update_batches:
            day_batches.append(update_batches[True])
    _load_last(day_batches, after=batches)
    if updated.any():
        updates = pl.DataFrame(
            {
                "source": source,
                "key": newest.select(_key_text(source))["key"],
                "earlier_batch_file": [slices[s].path for s in slice_of[updated]],
                "update_batch_file": [update_batches[bool(d)].path for d in on_day],
                "changed_columns": changed[updated],
            },
            schema=UPDATES_SCHEMA,
        )
    return batches + day_batches, updates


def _load_last(day_batches: list[_Batch], after: list[_Batch]) -> None:
    """Number and label the held-back days' batches so their paths sort after every other batch."""
    last_label = max((batch.label for batch in (*after, *day_batches)), default="")
    last_number = max((batch.number for batch in after), default=0)
    for number, batch in enumerate(day_batches, start=last_number + 1):
        batch.number, batch.label = number, last_label


def _with_currency(source: str, tables: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """The clean frame plus the currency each row's money is written in."""
    frame = tables[source]
    if "currency" in frame.columns:
        return frame.with_columns(pl.col("currency").alias(_CURRENCY))
    if source == "invoice_lines" and "invoices" in tables:
        currency = _invoice_lookup(frame, tables["invoices"], "currency")
        return frame.with_columns(currency.alias(_CURRENCY))
    return frame.with_columns(pl.lit(None, pl.String).alias(_CURRENCY))


def _invoice_lookup(lines: pl.DataFrame, invoices: pl.DataFrame, column: str) -> pl.Series:
    lookup = invoices.select("invoice_id", column).unique("invoice_id", keep="first", maintain_order=True)
    return lines.select("invoice_id").join(lookup, on="invoice_id", how="left", maintain_order="left")[column]


def _slice_times(source: str, tables: dict[str, pl.DataFrame]) -> pl.Series:
    frame = tables[source]
    times = frame[TIME_COLUMNS[source]]
    if source == "invoice_lines" and "invoices" in tables:
        # lines travel with their invoice; an orphan line goes by its period
        times = _invoice_lookup(frame, tables["invoices"], "issued_at").fill_null(times)
    return times


def _earlier_versions(
    source: str,
    clean: pl.DataFrame,
    slice_end: np.ndarray,
    rng: np.random.Generator,
    held_back_from: dt.date | None = None,
) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """Rows as first delivered, which rows get their newer (clean) version later, and what changed.

    The earlier version is older by `updated_at`, so newest-wins and
    last-batch-wins agree on the clean row. With held-back days, a row
    delivered before them but changed during them also goes out in its
    earlier version first, as a daily export would have sent it.
    """
    changed_while_held_back = pl.lit(False)
    if held_back_from is not None:
        start = dt.datetime.combine(held_back_from, dt.time())
        created = "created_at" if source == "customers" else "issued_at"
        changed_while_held_back = (pl.col(created) < start) & (pl.col("updated_at") >= start)
    if source == "customers":
        return _earlier_customers(clean, rng, clean.select(changed_while_held_back.fill_null(False)).to_series())
    # invoices settled after the batch they were issued in was cut went out `open` first
    settled_at = pl.coalesce(
        pl.when(pl.col("status") == status).then(pl.col(column)) for status, column in SETTLED_AT.items()
    )
    cut_at = pl.datetime(pl.lit(slice_end) // 12, pl.lit(slice_end) % 12 + 1, 1, time_unit="us")
    picked = (
        clean.select(
            (
                settled_at.is_not_null()
                & (pl.col("updated_at") > pl.col("issued_at"))
                & ((settled_at >= cut_at) | changed_while_held_back)
            ).fill_null(False)
        )
        .to_series()
        .to_numpy()
    )
    mask = pl.Series(picked)
    never = pl.lit(None, clean.schema["paid_at"])
    earlier = clean.with_columns(
        status=pl.when(mask).then(pl.lit("open")).otherwise("status"),
        paid_at=pl.when(mask).then(never).otherwise("paid_at"),
        voided_at=pl.when(mask).then(never).otherwise("voided_at"),
        uncollectible_at=pl.when(mask).then(never).otherwise("uncollectible_at"),
        updated_at=pl.when(mask).then("issued_at").otherwise("updated_at"),
    )
    changed = np.full(clean.height, "status,paid_at,voided_at,uncollectible_at,updated_at", dtype=object)
    return earlier, picked, changed


def _earlier_customers(
    clean: pl.DataFrame, rng: np.random.Generator, changed_while_held_back: pl.Series
) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """A share of customers edited after creation (and every one edited during held-back days)
    first arrive with their old size or channel."""
    eligible = (clean["updated_at"] > clean["created_at"]).fill_null(False).to_numpy()
    picked = eligible & ((rng.random(clean.height) < CUSTOMER_UPDATE_SHARE) | changed_while_held_back.to_numpy())
    if eligible.any() and not picked.any():
        picked[rng.choice(np.flatnonzero(eligible))] = True
    channels = sorted(clean["acquisition_channel"].drop_nulls().unique().to_list())
    sizes = SOURCES["customers"].column("company_size").enum or ()
    # a null or lone channel cannot be "changed from": change the size instead
    size_change = (
        (rng.random(clean.height) < 0.5) | clean["acquisition_channel"].is_null().to_numpy() | (len(channels) < 2)
    )
    by_size = pl.Series(picked & size_change)
    by_channel = pl.Series(picked & ~size_change)
    earlier = clean.with_columns(
        company_size=pl.when(by_size)
        .then(pl.col("company_size").replace({v: sizes[i - 1] for i, v in enumerate(sizes)}))
        .otherwise("company_size"),
        acquisition_channel=pl.when(by_channel)
        .then(pl.col("acquisition_channel").replace({v: channels[i - 1] for i, v in enumerate(channels)}))
        .otherwise("acquisition_channel"),
        updated_at=pl.when(pl.Series(picked)).then("created_at").otherwise("updated_at"),
    )
    changed = np.where(size_change, "company_size,updated_at", "acquisition_channel,updated_at").astype(object)
    return earlier, picked, changed


def _interleave(rows: pl.DataFrame, bad: pl.DataFrame, positions: np.ndarray) -> pl.DataFrame:
    """`rows` in order with bad row j at 0-based position `positions[j]` (ascending)."""
    if not len(positions):
        return rows
    pieces, taken = [], 0
    for j, position in enumerate(positions):
        before = int(position) - j  # clean rows that precede bad row j
        pieces += [rows[taken:before], bad[j : j + 1]]
        taken = before
    pieces.append(rows[taken:])
    return pl.concat(pieces, rechunk=True)


def _take_bad(bad: BadRows, rows: np.ndarray) -> BadRows:
    return BadRows(
        bad.frame[rows],
        bad.template[rows],
        [bad.defect[i] for i in rows],
        [bad.column[i] for i in rows],
        [bad.text[i] for i in rows],
    )


# --- rendering ------------------------------------------------------------


def _render(batch: _Batch) -> bytes:
    """The file's bytes; identical for identical input (gzip mtime 0, no parquet timestamps)."""
    fmt = batch.fmt
    if fmt == "parquet":
        buffer = io.BytesIO()
        batch.frame.select(_parquet_columns(batch.source)).write_parquet(buffer)
        return buffer.getvalue()
    overrides = _type_defects(batch)
    if fmt.startswith("csv"):
        text = batch.frame.select(_text_columns(batch.source, batch.timestamp_suffix, native=False))
        for column, (rows, values) in overrides.items():
            text = text.with_columns(text[column].scatter(rows, pl.Series(values, dtype=pl.String)))
        data = _write(text.write_csv)
    else:
        data = _ndjson(batch.frame.select(_text_columns(batch.source, batch.timestamp_suffix, native=True)), overrides)
    return gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0) if fmt.endswith(".gz") else data


def _type_defects(batch: _Batch) -> dict[str, tuple[list[int], list[str]]]:
    """column -> (row positions, text) of the type defects to write over typed values."""
    overrides: dict[str, tuple[list[int], list[str]]] = {}
    if batch.bad is None:
        return overrides
    for position, defect, column, text in zip(
        batch.bad_positions, batch.bad.defect, batch.bad.column, batch.bad.text, strict=True
    ):
        if defect == WRONG_TYPE:
            rows, values = overrides.setdefault(column, ([], []))
            rows.append(int(position))
            values.append(text)
    return overrides


def _text_columns(source: str, suffix: str, native: bool) -> list[pl.Expr]:
    """Contract columns as text; `native` keeps JSON's own numbers and booleans."""
    exprs = []
    for column in SOURCES[source].columns:
        expr = pl.col(column.name)
        if column.type == TIMESTAMP:
            expr = pl.concat_str(expr.dt.strftime(ISO_FORMAT), pl.lit(suffix))
        elif column.type == MONEY:
            expr = _money_text(expr)
        elif column.type == DATE:
            expr = expr.dt.strftime("%Y-%m-%d")
        elif not (native and column.type in (INTEGER, NUMBER, BOOLEAN)):
            expr = expr.cast(pl.String)
        exprs.append(expr.alias(column.name))
    return exprs


def _money_text(expr: pl.Expr) -> pl.Expr:
    """Plain decimals in major units; zero-decimal currencies without decimals (JPY `1200`)."""
    text = expr.cast(pl.String)
    return pl.when(pl.col(_CURRENCY).is_in(ZERO_DECIMAL_CURRENCIES)).then(text.str.strip_suffix(".00")).otherwise(text)


def _parquet_columns(source: str) -> list[pl.Expr]:
    """Native types: timestamps UTC-aware, money decimal(18, 2)."""
    return [
        pl.col(c.name).dt.replace_time_zone("UTC") if c.type == TIMESTAMP else pl.col(c.name)
        for c in SOURCES[source].columns
    ]


def _ndjson(frame: pl.DataFrame, overrides: dict[str, tuple[list[int], list[str]]]) -> bytes:
    """One object per line; a type defect turns its field into a JSON string (`"quantity":"abc"`)."""
    data = _write(frame.write_ndjson)
    patches: dict[int, dict[str, str]] = {}
    for column, (rows, values) in overrides.items():
        for row, value in zip(rows, values, strict=True):
            patches.setdefault(row, {})[column] = value
    if not patches:
        return data
    # JSON escapes newlines inside strings, so every newline ends a record.
    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == ord("\n"))
    view, parts, start = memoryview(data), [], 0
    for row in sorted(patches):
        line_start = int(ends[row - 1]) + 1 if row else 0
        record = json.loads(data[line_start : ends[row]])
        record.update(patches[row])
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()
        parts += [view[start:line_start], line]
        start = int(ends[row])
    parts.append(view[start:])
    return b"".join(parts)


def _write(writer) -> bytes:
    buffer = io.BytesIO()
    writer(buffer)
    return buffer.getvalue()


# --- truth ----------------------------------------------------------------


def _key_text(source: str) -> pl.Expr:
    parts = [pl.col(c).cast(pl.String).fill_null("") for c in SOURCES[source].primary_key]
    return pl.concat_str(parts, separator="|").alias("key")


def _batch_row(batch: _Batch, data: bytes) -> dict:
    suffix = "native" if batch.fmt == "parquet" else (batch.timestamp_suffix or "none")
    return {
        "source": batch.source,
        "batch_file": batch.path,
        "format": batch.fmt,
        "rows": batch.frame.height,
        "bad_rows": len(batch.bad) if batch.bad is not None else 0,
        "kind": batch.kind,
        "duplicate_of": None,
        "timestamp_style": suffix,
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def _bad_truth(batch: _Batch) -> pl.DataFrame:
    assert batch.bad is not None and batch.bad_positions is not None
    return pl.DataFrame(
        {
            "source": batch.source,
            "batch_file": batch.path,
            "row_number": batch.bad_positions + 1,
            "column": batch.bad.column,
            "defect": batch.bad.defect,
            "value": _bad_values(batch),
            "key": batch.bad.frame.select(_key_text(batch.source))["key"],
        },
        schema=BAD_ROWS_SCHEMA,
    )


def _bad_values(batch: _Batch) -> list[str | None]:
    """Each defective cell as CSV would write it (JSONL and Parquet hold the same value)."""
    assert batch.bad is not None
    text = batch.bad.frame.select(_text_columns(batch.source, "", native=False))
    return [
        written if written is not None else text[column][row]
        for row, (column, written) in enumerate(zip(batch.bad.column, batch.bad.text, strict=True))
    ]


def _duplicate(landing: Path, batch_rows: list[dict], rng: np.random.Generator) -> dict:
    """Copy one normal batch's bytes to `redelivery__<name>`, which sorts after every dated batch."""
    normal = [row for row in batch_rows if row["kind"] == "normal"]
    preferred = [row for row in normal if row["source"] == DUPLICATE_SOURCE] or normal
    original = preferred[int(rng.integers(len(preferred)))]
    source, name = original["batch_file"].split("/")
    path = f"{source}/redelivery__{name}"
    shutil.copyfile(landing / original["batch_file"], landing / path)
    return {**original, "batch_file": path, "kind": "duplicate", "duplicate_of": original["batch_file"]}


# --- checks ---------------------------------------------------------------


def _check_config(config: DeliveryConfig) -> None:
    if config.batches_per_source < 1:
        raise ValueError("batches_per_source must be at least 1")
    if not 0 <= config.bad_row_rate < 1:
        raise ValueError("bad_row_rate must be in [0, 1)")
    if config.held_back_days < 0:
        raise ValueError("held_back_days must be 0 (none) or more")


def _check_tables(tables: dict[str, pl.DataFrame]) -> None:
    """The writers rely on the clean dtypes: fail early and say which column is off."""
    problems = []
    for name, frame in tables.items():
        if name not in SOURCES:
            problems.append(f"{name}: not a contract source")
            continue
        spec = SOURCES[name]
        if tuple(frame.columns) != spec.column_names:
            problems.append(f"{name}: columns {frame.columns} != contract {list(spec.column_names)}")
            continue
        for column in spec.columns:
            dtype = frame.schema[column.name]
            if column.type == TIMESTAMP and not (isinstance(dtype, pl.Datetime) and dtype.time_zone is None):
                problems.append(f"{name}.{column.name}: {dtype}, expected naive Datetime (UTC)")
            elif column.type == MONEY and not (isinstance(dtype, pl.Decimal) and dtype.scale == 2):
                problems.append(f"{name}.{column.name}: {dtype}, expected Decimal(18, 2)")
            elif column.type == DATE and dtype != pl.Date:
                problems.append(f"{name}.{column.name}: {dtype}, expected Date")
        if frame[TIME_COLUMNS[name]].null_count():
            problems.append(f"{name}.{TIME_COLUMNS[name]}: nulls; batches are cut by it")
    if problems:
        raise ValueError("tables do not match the contract:\n" + "\n".join(problems))


def _prepare(landing: Path, sources: list[str], replace: bool) -> None:
    folders = [landing / name for name in (*sources, TRUTH_FOLDER)]
    existing = [folder for folder in folders if folder.exists() and any(folder.iterdir())]
    if existing and not replace:
        raise FileExistsError(f"landing batches are immutable; not writing over {existing[0]} (use replace=True)")
    for folder in existing:
        shutil.rmtree(folder)


# --- held-back days -------------------------------------------------------


def held_back_files(landing_dir: Path) -> list[str]:
    """The held-back days' batch files (DeliveryConfig.held_back_days), relative to the
    landing folder, in load order, as `_truth/batches.csv` lists them."""
    batches = pl.read_csv(Path(landing_dir) / TRUTH_FOLDER / "batches.csv", schema_overrides=BATCHES_SCHEMA)
    return sorted(batches.filter(pl.col("kind") == "day")["batch_file"].to_list())


def move_batch_files(files: list[str], from_dir: Path, to_dir: Path) -> None:
    """Move batch files between landing folders, keeping their relative paths (and mtimes)."""
    for name in files:
        target = Path(to_dir) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(Path(from_dir) / name, target)
