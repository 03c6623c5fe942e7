"""Delivery turns clean tables into landing batches without losing or bending a row.

Whatever a batch looks like (format, timestamp offset, a re-delivery, an
update, bad rows), reading it back must give exactly the clean world: every
clean row in exactly one normal batch, the newest version of every key equal
to the clean row, and the bad rows exactly the extra rows the truth lists.
"""

from __future__ import annotations

import gzip
import io
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl
import pytest

from billing_world.bad_rows import applicable_defects, bad_row_count, typo
from billing_world.deliver import FORMATS, DeliveryConfig, deliver_world, time_slices
from orchestration.lib.contract import (
    BOOLEAN,
    DATE,
    INTEGER,
    INVOICE_STATUSES,
    MONEY,
    NUMBER,
    SOURCES,
    TIMESTAMP,
    TRUTH_FOLDER,
)
from tests.unit.world_sample import sample_tables

CONFIG = DeliveryConfig(batches_per_source=4, bad_row_rate=0.05, seed=7)
POLARS_TYPES = {
    TIMESTAMP: pl.Datetime("us"),
    DATE: pl.Date,
    MONEY: pl.Decimal(18, 2),
    INTEGER: pl.Int64,
    NUMBER: pl.Float64,
    BOOLEAN: pl.Boolean,
}


def contract_frame(source: str, rows: list[dict]) -> pl.DataFrame:
    """A clean frame from a few hand-written rows; columns left out are null."""
    schema = {c.name: POLARS_TYPES.get(c.type, pl.String) for c in SOURCES[source].columns}
    return pl.DataFrame([{name: row.get(name) for name in schema} for row in rows], schema=schema, orient="row")


def read_batch(landing: Path, batch_file: str, source: str, skip_rows: set[int] = frozenset()) -> pl.DataFrame:
    """A batch as clean typed rows; strict parsing, so any unlisted bad row fails the test."""
    data = (landing / batch_file).read_bytes()
    if batch_file.endswith(".gz"):
        data = gzip.decompress(data)
    spec = SOURCES[source]
    if batch_file.endswith(".parquet"):
        frame = pl.read_parquet(io.BytesIO(data)).with_columns(
            pl.col(pl.Datetime(time_zone="UTC")).dt.replace_time_zone(None)
        )
    elif ".csv" in batch_file:
        frame = pl.read_csv(io.BytesIO(data), infer_schema=False)
    else:
        frame = pl.read_ndjson(io.BytesIO(data), schema={name: pl.String for name in spec.column_names})
    assert tuple(frame.columns) == spec.column_names
    frame = frame.with_row_index("row_number", offset=1).filter(~pl.col("row_number").is_in(list(skip_rows)))
    if batch_file.endswith(".parquet"):
        return frame.drop("row_number")
    return frame.select(_parse(c.name, c.type) for c in spec.columns)


def _parse(name: str, type_: str) -> pl.Expr:
    text = pl.col(name)
    if type_ == TIMESTAMP:
        return text.str.replace(r"(Z|\+00:00)$", "").str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", time_unit="us")
    if type_ == DATE:
        return text.str.to_date("%Y-%m-%d")
    if type_ == BOOLEAN:
        return text.replace_strict({"true": True, "false": False}, return_dtype=pl.Boolean)
    return text.cast(POLARS_TYPES.get(type_, pl.String), strict=True)


@pytest.fixture(scope="module")
def world() -> dict[str, pl.DataFrame]:
    return sample_tables(customers=40, months=12)


@pytest.fixture(scope="module")
def delivery(world, tmp_path_factory) -> tuple[Path, dict[str, pl.DataFrame]]:
    landing = tmp_path_factory.mktemp("delivery") / "landing"
    return landing, deliver_world(world, landing, CONFIG)


def _bad_rows_by_file(truth: dict[str, pl.DataFrame]) -> dict[str, set[int]]:
    rows: dict[str, set[int]] = {}
    for batch_file, row_number in truth["bad_rows"].select("batch_file", "row_number").iter_rows():
        rows.setdefault(batch_file, set()).add(row_number)
    return rows


def _batches(truth, source: str, kind: str) -> list[str]:
    frame = truth["batches"].filter((pl.col("source") == source) & (pl.col("kind") == kind))
    return frame["batch_file"].to_list()


# --- hand-worked pieces -------------------------------------------------------


def test_twelve_months_cut_into_four_batches_are_four_quarters():
    months = [2024 * 12 + m for m in range(12)]
    slice_of, starts, ends = time_slices(pl.Series(months).to_numpy(), 4)
    assert slice_of.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert [(m // 12, m % 12 + 1) for m in starts] == [(2024, 1), (2024, 4), (2024, 7), (2024, 10)]
    assert [(m // 12, m % 12 + 1) for m in ends] == [(2024, 4), (2024, 7), (2024, 10), (2025, 1)]


def test_empty_spans_are_dropped_and_a_batch_is_named_after_the_start_of_its_span():
    # January to October is 10 months: spans of 2.5 months start Jan, Apr (ceil 2.5), Jun, Sep (ceil 7.5).
    months = [2024 * 12 + 0, 2024 * 12 + 1, 2024 * 12 + 9]
    slice_of, starts, ends = time_slices(pl.Series(months).to_numpy(), 4)
    assert slice_of.tolist() == [0, 0, 1]
    assert [(m // 12, m % 12 + 1) for m in starts] == [(2024, 1), (2024, 9)]
    assert [(m // 12, m % 12 + 1) for m in ends] == [(2024, 4), (2024, 11)]


def test_bad_row_count_is_the_rounded_rate_raised_to_one_of_each_defect():
    assert bad_row_count(10_000, 0.002, 5) == 20
    assert bad_row_count(1_000, 0.002, 5) == 5  # 2 due, raised to the 5 defects
    assert bad_row_count(750, 0.002, 5) == 5  # 1.5 rounds to 2
    assert bad_row_count(100, 0.002, 5) == 0  # 0.2 due: none
    assert bad_row_count(10_000, 0.0, 5) == 0


def test_an_unknown_enum_value_is_a_misspelling_outside_the_enum():
    assert typo("paid", INVOICE_STATUSES) == "paied"
    assert typo("smb", ("smb", "mid_market", "enterprise")) == "smeb"
    assert typo("ab", ("ab", "aeb")) == "aeeb"


def test_defects_are_those_the_source_can_break():
    assert applicable_defects("customers", True) == (
        "wrong_type",
        "unknown_enum",
        "missing_key",
        "missing_required",
    )
    assert applicable_defects("customers", False) == ("unknown_enum", "missing_key", "missing_required")
    assert applicable_defects("invoice_lines", True) == (
        "wrong_type",
        "missing_key",
        "missing_required",
        "negative_amount",
    )
    assert "out_of_range" in applicable_defects("survey_responses", True)


def test_money_is_written_in_major_units_and_zero_decimal_currencies_without_decimals(tmp_path):
    products = contract_frame(
        "products",
        [
            {"product_id": "prod_basic", "name": "Basic plan", "product_type": "plan", "tier": "basic",
             "billing_period": "month", "currency": "USD", "unit_amount": Decimal("12.50"),
             "valid_from": date(2024, 1, 1)},
            {"product_id": "prod_basic", "name": "Basic plan", "product_type": "plan", "tier": "basic",
             "billing_period": "month", "currency": "JPY", "unit_amount": Decimal("1200.00"),
             "valid_from": date(2024, 1, 1)},
        ],
    )  # fmt: skip
    config = DeliveryConfig(batches_per_source=1, bad_row_rate=0, duplicate_batch=False, seed=0)
    truth = deliver_world({"products": products}, tmp_path, config)
    assert truth["batches"]["batch_file"].to_list() == ["products/2024-01__batch-001.csv"]
    assert (tmp_path / "products/2024-01__batch-001.csv").read_text() == (
        "product_id,name,product_type,tier,billing_period,currency,unit_amount,valid_from,valid_to\n"
        "prod_basic,Basic plan,plan,basic,month,USD,12.50,2024-01-01,\n"
        "prod_basic,Basic plan,plan,basic,month,JPY,1200,2024-01-01,\n"
    )


def test_timestamps_are_iso_utc_with_fractions_only_when_there_are_any(tmp_path):
    customers = contract_frame(
        "customers",
        [
            {"customer_id": "cus_1", "country": "JP", "currency": "JPY", "company_size": "smb",
             "created_at": datetime(2024, 1, 15), "updated_at": datetime(2024, 2, 1, 9, 30, 0, 450000)},
        ],
    )  # fmt: skip
    config = DeliveryConfig(batches_per_source=1, bad_row_rate=0, duplicate_batch=False, update_batch=False, seed=0)
    deliver_world({"customers": customers}, tmp_path, config)
    assert (tmp_path / "customers/2024-01__batch-001.csv").read_text().splitlines()[1] == (
        "cus_1,,,JP,JPY,smb,,,2024-01-15T00:00:00Z,2024-02-01T09:30:00.450Z"
    )


# --- the delivered sample world -------------------------------------------------


def test_every_clean_row_is_in_exactly_one_normal_batch_and_the_newest_version_is_the_clean_row(world, delivery):
    landing, truth = delivery
    bad = _bad_rows_by_file(truth)
    for source, clean in world.items():
        spec = SOURCES[source]
        key = list(spec.primary_key)
        normal = [
            read_batch(landing, f, source, bad.get(f, set())).with_columns(order=pl.lit(i))
            for i, f in enumerate(_batches(truth, source, "normal"))
        ]
        first = pl.concat(normal)
        assert first.height == clean.height, source
        assert first.select(key).is_duplicated().sum() == 0, source
        assert first.select(key).sort(key).equals(clean.select(key).sort(key)), source

        updates = [
            read_batch(landing, f, source).with_columns(order=pl.lit(len(normal) + i))
            for i, f in enumerate(_batches(truth, source, "update"))
        ]
        every = pl.concat([first, *updates])
        # newest wins: a later version_column, then a later batch (the staging rule)
        by = [spec.version_column, "order"] if spec.version_column else ["order"]
        newest = every.sort(by, nulls_last=False).unique(key, keep="last").drop("order")
        assert newest.sort(key).equals(clean.sort(key)), source


def test_invoices_first_arrive_open_and_the_update_batch_settles_them(world, delivery):
    landing, truth = delivery
    updates = truth["updates"].filter(pl.col("source") == "invoices")
    assert updates.height > 0
    clean = world["invoices"].filter(pl.col("invoice_id").is_in(updates["key"].implode()))
    bad = _bad_rows_by_file(truth)
    early = pl.concat(
        read_batch(landing, f, "invoices", bad.get(f, set())) for f in updates["earlier_batch_file"].unique().sort()
    ).filter(pl.col("invoice_id").is_in(updates["key"].implode()))
    assert early.height == updates.height
    assert early["status"].unique().to_list() == ["open"]
    assert early.select(pl.col("paid_at", "voided_at", "uncollectible_at").null_count().sum()).row(0) == (
        updates.height,
        updates.height,
        updates.height,
    )
    assert early["updated_at"].equals(early["issued_at"])
    (update_file,) = updates["update_batch_file"].unique().to_list()
    assert read_batch(landing, update_file, "invoices").sort("invoice_id").equals(clean.sort("invoice_id"))
    assert (early.sort("invoice_id")["updated_at"] < clean.sort("invoice_id")["updated_at"]).all()


def test_customers_first_arrive_with_an_older_size_or_channel(world, delivery):
    landing, truth = delivery
    updates = truth["updates"].filter(pl.col("source") == "customers")
    assert updates.height > 0
    bad = _bad_rows_by_file(truth)
    for key, batch_file, changed in updates.select("key", "earlier_batch_file", "changed_columns").iter_rows():
        early = read_batch(landing, batch_file, "customers", bad.get(batch_file, set()))
        early = early.filter(pl.col("customer_id") == key).row(0, named=True)
        clean = world["customers"].filter(pl.col("customer_id") == key).row(0, named=True)
        column = changed.split(",")[0]
        assert early[column] != clean[column]
        assert early["updated_at"] == clean["created_at"] < clean["updated_at"]


def test_update_batches_sort_after_the_normal_batches_of_their_source(delivery):
    _, truth = delivery
    for source in ("customers", "invoices"):
        normal = _batches(truth, source, "normal")
        (update,) = _batches(truth, source, "update")
        assert sorted([*normal, update])[-1] == update
        assert sorted(normal) == normal


def test_bad_rows_in_the_truth_are_exactly_the_extra_rows_with_the_recorded_defect(world, delivery):
    landing, truth = delivery
    batches = truth["batches"].filter(pl.col("kind") == "normal")
    clean_rows = {s: 0 for s in world}
    for source, batch_file, rows, bad_count in batches.select("source", "batch_file", "rows", "bad_rows").iter_rows():
        listed = truth["bad_rows"].filter(pl.col("batch_file") == batch_file)
        assert listed.height == bad_count
        clean_rows[source] += rows - bad_count
        text = _as_text(landing, batch_file, source)
        assert text.height == rows
        for row_number, column, defect, value, key in listed.select(
            "row_number", "column", "defect", "value", "key"
        ).iter_rows():
            written = text.row(row_number - 1, named=True)
            assert written[column] == value or _same_number(written[column], value), (batch_file, row_number)
            if defect in ("missing_key", "missing_required"):
                assert written[column] is None
            assert "|".join(written[c] or "" for c in SOURCES[source].primary_key) == key
    assert clean_rows == {source: frame.height for source, frame in world.items()}


def _as_text(landing: Path, batch_file: str, source: str) -> pl.DataFrame:
    data = (landing / batch_file).read_bytes()
    if batch_file.endswith(".gz"):
        data = gzip.decompress(data)
    if batch_file.endswith(".parquet"):
        frame = pl.read_parquet(io.BytesIO(data))
        return frame.select(
            pl.col(c).dt.strftime("%Y-%m-%d") if frame.schema[c] == pl.Date else pl.col(c).cast(pl.String)
            for c in frame.columns
        )
    if ".csv" in batch_file:
        return pl.read_csv(io.BytesIO(data), infer_schema=False)
    return pl.read_ndjson(io.BytesIO(data), schema={c: pl.String for c in SOURCES[source].column_names})


def _same_number(written: str | None, value: str | None) -> bool:
    try:
        return written is not None and value is not None and Decimal(written) == Decimal(value)
    except ArithmeticError:
        return False


def test_every_source_gets_each_defect_it_can_break_at_least_once(world, delivery):
    _, truth = delivery
    for source in world:
        seen = set(truth["bad_rows"].filter(pl.col("source") == source)["defect"])
        assert seen == set(applicable_defects(source, True)), source


def test_type_defects_are_only_in_text_batches_and_fresh_keys_are_new(world, delivery):
    _, truth = delivery
    bad = truth["bad_rows"]
    assert not bad.filter((pl.col("defect") == "wrong_type") & pl.col("batch_file").str.ends_with(".parquet")).height
    for source, frame in world.items():
        key = SOURCES[source].primary_key
        clean_keys = set(frame.select(pl.concat_str([pl.col(c).cast(pl.String) for c in key], separator="|"))
                         .to_series())  # fmt: skip
        fresh = bad.filter((pl.col("source") == source) & (pl.col("defect") != "missing_key"))["key"]
        assert not clean_keys & set(fresh), source


def test_the_duplicate_batch_is_the_original_bytes_under_a_name_that_sorts_after_it(delivery):
    landing, truth = delivery
    (duplicate,) = truth["batches"].filter(pl.col("kind") == "duplicate").iter_rows(named=True)
    assert duplicate["batch_file"].startswith("invoices/redelivery__")
    assert (landing / duplicate["batch_file"]).read_bytes() == (landing / duplicate["duplicate_of"]).read_bytes()
    original = truth["batches"].filter(pl.col("batch_file") == duplicate["duplicate_of"]).row(0, named=True)
    assert duplicate["sha256"] == original["sha256"]
    assert sorted(p.name for p in (landing / "invoices").iterdir())[-1] == duplicate["batch_file"].split("/")[1]


def test_formats_are_mixed_within_every_source_and_gzip_carries_no_timestamp(delivery):
    landing, truth = delivery
    batches = truth["batches"].filter(pl.col("kind") != "duplicate")
    assert set(batches["format"]) == set(FORMATS)
    for source, formats in batches.group_by("source").agg("format").iter_rows():
        if len(formats) >= 3:
            assert any(f.startswith("csv") for f in formats), source
            assert any(not f.startswith("csv") for f in formats), source
    for batch_file in batches.filter(pl.col("format").str.ends_with(".gz"))["batch_file"]:
        header = (landing / batch_file).read_bytes()[:10]
        assert header[:2] == b"\x1f\x8b" and header[4:8] == b"\x00\x00\x00\x00", batch_file


def test_timestamps_are_written_with_z_without_offset_and_with_plus_zero(delivery):
    _, truth = delivery
    assert set(truth["batches"]["timestamp_style"]) == {"Z", "none", "+00:00", "native"}


def test_delivering_the_same_world_twice_gives_byte_identical_files(world, delivery, tmp_path):
    landing, _ = delivery
    again = tmp_path / "again"
    deliver_world(world, again, CONFIG)
    first = {p.relative_to(landing): p.read_bytes() for p in landing.rglob("*") if p.is_file()}
    second = {p.relative_to(again): p.read_bytes() for p in again.rglob("*") if p.is_file()}
    assert first.keys() == second.keys()
    assert all(first[name] == second[name] for name in first)


def test_the_truth_is_written_under_truth_as_csv(delivery):
    landing, truth = delivery
    for name, frame in truth.items():
        written = pl.read_csv(landing / TRUTH_FOLDER / f"{name}.csv", schema=frame.schema)
        assert written.equals(frame), name


def test_duckdb_reads_every_batch_with_the_row_count_the_truth_gives(delivery):
    landing, truth = delivery
    readers = {"csv": "read_csv", "jsonl": "read_json", "parquet": "read_parquet"}
    with duckdb.connect() as con:
        for batch_file, fmt, rows in truth["batches"].select("batch_file", "format", "rows").iter_rows():
            reader = readers[fmt.removesuffix(".gz")]
            options = ", all_varchar = true" if reader == "read_csv" else ""
            path = str(landing / batch_file)
            (count,) = con.execute(f"select count(*) from {reader}(?{options})", [path]).fetchone()
            assert count == rows, batch_file


# --- configuration ---------------------------------------------------------------


def test_a_clean_delivery_has_no_bad_rows_no_duplicate_and_no_update(world, tmp_path):
    config = DeliveryConfig(bad_row_rate=0, duplicate_batch=False, update_batch=False)
    truth = deliver_world(world, tmp_path, config)
    assert truth["bad_rows"].height == 0
    assert truth["updates"].height == 0
    assert set(truth["batches"]["kind"]) == {"normal"}
    for source, clean in world.items():
        rows = pl.concat(read_batch(tmp_path, f, source) for f in _batches(truth, source, "normal"))
        key = list(SOURCES[source].primary_key)
        assert rows.sort(key).equals(clean.sort(key)), source


def test_existing_batches_are_never_written_over_unless_replaced(world, tmp_path):
    config = DeliveryConfig(bad_row_rate=0, duplicate_batch=False)
    deliver_world({"fx_rates": world["fx_rates"]}, tmp_path, config)
    with pytest.raises(FileExistsError):
        deliver_world({"fx_rates": world["fx_rates"]}, tmp_path, config)
    (tmp_path / "fx_rates" / "stale.csv").write_text("rate_date\n")
    deliver_world({"fx_rates": world["fx_rates"]}, tmp_path, config, replace=True)
    assert not (tmp_path / "fx_rates" / "stale.csv").exists()


def test_tables_that_are_not_in_contract_shape_are_refused(world, tmp_path):
    floats = world["payments"].with_columns(pl.col("amount").cast(pl.Float64))
    with pytest.raises(ValueError, match=r"payments\.amount"):
        deliver_world({"payments": floats}, tmp_path, CONFIG)
    with pytest.raises(ValueError, match="columns"):
        deliver_world({"payments": world["payments"].drop("gateway")}, tmp_path, CONFIG)
