"""Day and month arithmetic on int64 day numbers (days since 1970-01-01).

The month loop shifts whole arrays of billing anchors by months; doing that
with Python dates per row would defeat vectorisation. Anchor days are clamped
to 1..28, so "same day N months later" always exists and is a table lookup.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

DAY_US = 86_400_000_000
HOUR_US = 3_600_000_000
MINUTE_US = 60_000_000
NEVER = np.int64(2**62)  # "no such time", larger than any day number or microsecond stamp
EPOCH = date(1970, 1, 1)
MAX_ANCHOR_DAY = 28
# Months past the window the table covers: a yearly period starting in the last
# month ends 12 months later; loyalty dates sit 12 months after a start.
HORIZON_MONTHS = 48


def day_number(value: date) -> int:
    return (value - EPOCH).days


def month_firsts(start: date, count: int) -> np.ndarray:
    months = np.arange(count) + start.year * 12 + (start.month - 1)
    stamps = np.array([f"{m // 12:04d}-{m % 12 + 1:02d}-01" for m in months.tolist()], dtype="datetime64[D]")
    return stamps.astype(np.int64)


@dataclass(frozen=True)
class Calendar:
    start: date
    months: int
    month_first: np.ndarray  # day number of the first of month i, i from 0 (window start)

    @classmethod
    def build(cls, start: date, months: int) -> Calendar:
        if start.day != 1:
            raise ValueError("the window starts on the first of a month")
        return cls(start, months, month_firsts(start, months + HORIZON_MONTHS))

    @property
    def start_day(self) -> int:
        return int(self.month_first[0])

    @property
    def end_day(self) -> int:
        return int(self.month_first[self.months])

    @property
    def end_us(self) -> int:
        return self.end_day * DAY_US

    def day(self, month: np.ndarray | int, anchor_day: np.ndarray | int) -> np.ndarray:
        return self.month_first[month] + anchor_day - 1

    def month_of(self, day: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.month_first, day, side="right") - 1

    def add_months(self, day: np.ndarray, months: np.ndarray | int) -> np.ndarray:
        """Same day of month, `months` later; valid for days 1..28 only."""
        month = self.month_of(day)
        return self.month_first[month + months] + (day - self.month_first[month])
