"""Exact money arithmetic in int64 minor units.

Floats would let a half cent round either way; the policy says half-up, and a
detector recomputing the same numbers must get identical results. Every amount
here is non-negative, where floor division gives half-up.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

BP = 10_000  # basis points in one


def half_up_div(numerator: np.ndarray, denominator: np.ndarray | int) -> np.ndarray:
    """round(numerator / denominator), halves up; numerator >= 0, denominator > 0."""
    return (2 * numerator + denominator) // (2 * denominator)


def apply_bp(amount: np.ndarray, rate_bp: np.ndarray | int) -> np.ndarray:
    return half_up_div(amount * rate_bp, BP)


def decimal_series(name: str, minor: np.ndarray, exponent: np.ndarray) -> pl.Series:
    """Minor units (per-row exponent) as an exact Decimal(18, 2) series."""
    cents = np.ascontiguousarray(minor * 10 ** (2 - exponent), dtype=np.int64)
    # Decimal128 buffers hold 16-byte two's-complement integers: low word, sign word.
    words = np.empty(2 * len(cents), dtype=np.int64)
    words[0::2] = cents
    words[1::2] = np.where(cents < 0, -1, 0)
    array = pa.Array.from_buffers(pa.decimal128(18, 2), len(cents), [None, pa.py_buffer(words)])
    return pl.Series(name, array)
