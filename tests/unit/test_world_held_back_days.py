"""Held-back days (DeliveryConfig.held_back_days): the world's last days arrive as their own batches.

A daily run is tested by landing everything else first and these files
later, so they must hold exactly the rows of those days, plus the newer
versions written during them of rows delivered earlier, and sort after every
other batch of their source. Together the batches are still exactly the clean world.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import polars as pl
import pytest

from billing_world.deliver import (
    TIME_COLUMNS,
    DeliveryConfig,
    deliver_world,
    final_day,
    held_back_files,
    move_batch_files,
)
from orchestration.lib.contract import SOURCES
from tests.unit.test_world_delivery import read_batch
from tests.unit.world_sample import sample_tables

DAYS = 30  # the sample world bills on the 1st: its last month, 06-01..06-30
CONFIG = DeliveryConfig(batches_per_source=3, bad_row_rate=0.05, seed=5, held_back_days=DAYS)


@pytest.fixture(scope="module")
def world() -> dict[str, pl.DataFrame]:
    return sample_tables(customers=60, months=6)


@pytest.fixture(scope="module")
def delivery(world, tmp_path_factory) -> tuple[Path, dict[str, pl.DataFrame], dt.date]:
    landing = tmp_path_factory.mktemp("held_back") / "landing"
    truth = deliver_world(world, landing, CONFIG)
    return landing, truth, final_day(world) - dt.timedelta(days=DAYS - 1)


def _read(landing: Path, truth: dict[str, pl.DataFrame], batch_file: str, source: str) -> pl.DataFrame:
    bad = truth["bad_rows"].filter(pl.col("batch_file") == batch_file)["row_number"].to_list()
    return read_batch(landing, batch_file, source, set(bad))


def _files(truth: dict[str, pl.DataFrame], source: str, kinds: tuple[str, ...]) -> list[str]:
    batches = truth["batches"].filter((pl.col("source") == source) & pl.col("kind").is_in(kinds))
    return sorted(batches["batch_file"])


def test_the_final_day_is_the_latest_date_any_source_is_sliced_by(world):
    latest = max(world[source][column].cast(pl.Date).max() for source, column in TIME_COLUMNS.items())
    assert final_day(world) == latest


def test_day_batches_hold_exactly_the_rows_of_the_held_back_days(world, delivery):
    landing, truth, first_day = delivery
    for source in world:
        time = TIME_COLUMNS[source]
        if source == "invoice_lines":
            continue  # lines travel with their invoice, checked below
        day_rows = pl.concat(
            [_read(landing, truth, f, source) for f in _files(truth, source, ("day",))]
            or [pl.DataFrame(schema=world[source].schema)]
        )
        version = SOURCES[source].version_column
        new_rows = day_rows.filter(pl.col(time).cast(pl.Date) >= first_day)
        expected = world[source].filter(pl.col(time).cast(pl.Date) >= first_day)
        key = list(SOURCES[source].primary_key)
        assert new_rows.sort(key).equals(expected.sort(key)), source
        # the rest of a day batch are newer versions written during the held-back days
        rest = day_rows.filter(pl.col(time).cast(pl.Date) < first_day)
        if rest.height:
            assert version is not None and (rest[version].cast(pl.Date) >= first_day).all(), source


def test_lines_of_invoices_issued_on_the_held_back_days_arrive_with_them(world, delivery):
    landing, truth, first_day = delivery
    invoices = world["invoices"].filter(pl.col("issued_at").cast(pl.Date) >= first_day)["invoice_id"]
    lines = pl.concat(_read(landing, truth, f, "invoice_lines") for f in _files(truth, "invoice_lines", ("day",)))
    expected = world["invoice_lines"].filter(pl.col("invoice_id").is_in(invoices.implode()))
    assert expected.height > 0
    assert lines.sort("line_id").equals(expected.sort("line_id"))


def test_an_invoice_settled_during_the_held_back_days_went_out_open_before_them(world, delivery):
    landing, truth, first_day = delivery
    start = dt.datetime.combine(first_day, dt.time())
    settled = world["invoices"].filter(
        (pl.col("issued_at") < start) & (pl.col("updated_at") >= start) & (pl.col("status") != "open")
    )
    assert settled.height > 0, "the sample world should settle an earlier invoice during the held-back days"
    earlier = pl.concat(_read(landing, truth, f, "invoices") for f in _files(truth, "invoices", ("normal",)))
    earlier = earlier.filter(pl.col("invoice_id").is_in(settled["invoice_id"].implode()))
    assert earlier["status"].unique().to_list() == ["open"]
    later = pl.concat(_read(landing, truth, f, "invoices") for f in _files(truth, "invoices", ("day",)))
    later = later.filter(pl.col("invoice_id").is_in(settled["invoice_id"].implode()))
    assert later.sort("invoice_id").equals(settled.sort("invoice_id"))


def test_without_the_held_back_days_no_later_version_of_a_key_is_delivered(world, delivery):
    """What the base run sees is the world as first delivered: one version per key, the newest
    versions written before the held-back days included."""
    landing, truth, first_day = delivery
    for source in ("customers", "invoices"):
        key = list(SOURCES[source].primary_key)
        base = pl.concat(_read(landing, truth, f, source) for f in _files(truth, source, ("normal", "update")))
        newest = base.sort("updated_at", nulls_last=False).unique(key, keep="last")
        assert (newest["updated_at"].cast(pl.Date) < first_day).all(), source


def test_day_batches_sort_after_every_other_batch_of_their_source(delivery):
    _, truth, _ = delivery
    for source in SOURCES:
        others = _files(truth, source, ("normal", "update"))
        days = _files(truth, source, ("day",))
        if days:
            assert sorted([*others, *days])[-len(days) :] == days, source


def test_held_back_files_can_be_moved_out_and_back(delivery, tmp_path):
    landing, truth, _ = delivery
    files = held_back_files(landing)
    assert files == sorted(truth["batches"].filter(pl.col("kind") == "day")["batch_file"])
    copy = tmp_path / "landing"
    shutil.copytree(landing, copy)
    move_batch_files(files, copy, tmp_path / "later")
    assert not any((copy / name).exists() for name in files)
    assert all((tmp_path / "later" / name).read_bytes() == (landing / name).read_bytes() for name in files)


def test_the_default_delivery_holds_nothing_back(world, tmp_path):
    truth = deliver_world(world, tmp_path / "landing", DeliveryConfig(batches_per_source=3, seed=5))
    assert "day" not in set(truth["batches"]["kind"])
