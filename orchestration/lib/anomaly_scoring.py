"""Score marts.billing_anomalies against a generated world's ground truth.

The generator records every injected anomaly in `<landing>/_truth/anomalies.csv`
(one row per anomaly type and document, docs/synthetic_world.md). A flag is a
true positive when a truth row of the same type names the same document; what
"the same document" means depends on the type and is spelled out once, in
DOCUMENT_KEYS:

- duplicate_charge and currency_mismatch exist on an invoice (payment_id
  empty) or on a payment: the key is invoice_id + payment_id, so a flag on
  the invoice does not match a payment truth row, nor the reverse.
- missed_invoice has no invoice: the key is customer_id + the period start's
  UTC date (the truth's `period_start`, the mart's `period_start`).
- every other type is an invoice: the key is invoice_id.

Keys are compared as sets per type (a document flagged twice counts once), so
precision = matched keys / flagged keys and recall = matched keys / truth keys.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from orchestration.lib.contract import ANOMALY_TYPES, TRUTH_FOLDER
from orchestration.lib.warehouse import open_warehouse

INVOICE_KEY = ("invoice_id",)
DOCUMENT_KEYS: dict[str, tuple[str, ...]] = {
    **{anomaly_type: INVOICE_KEY for anomaly_type in ANOMALY_TYPES},
    "duplicate_charge": ("invoice_id", "payment_id"),
    "currency_mismatch": ("invoice_id", "payment_id"),
    "missed_invoice": ("customer_id", "period_start_date"),
}
TRUTH_FILE = Path(TRUTH_FOLDER) / "anomalies.csv"
TRUTH_COLUMNS = ("anomaly_type", "invoice_id", "payment_id", "customer_id", "period_start")

FLAGS_SQL = """
select
    anomaly_type,
    invoice_id,
    payment_id,
    customer_id,
    strftime(period_start, '%Y-%m-%d') as period_start_date
from marts.billing_anomalies
"""

Row = Mapping[str, str | None]


@dataclass(frozen=True)
class TypeScore:
    """How one anomaly type's flags compare with the truth."""

    anomaly_type: str
    truth: int
    flagged: int
    true_positives: int

    @property
    def precision(self) -> float | None:
        """Share of flags that are real; None when nothing was flagged."""
        return self.true_positives / self.flagged if self.flagged else None

    @property
    def recall(self) -> float | None:
        """Share of injected anomalies flagged; None when none was injected."""
        return self.true_positives / self.truth if self.truth else None

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "precision": self.precision, "recall": self.recall}


def document_key(anomaly_type: str, row: Row) -> tuple[str, ...]:
    """The document a truth row or a flag is about, as DOCUMENT_KEYS defines it
    for the type; a missing value is the empty string."""
    return tuple(row.get(column) or "" for column in DOCUMENT_KEYS[anomaly_type])


def score(truth: Iterable[Row], flags: Iterable[Row]) -> list[TypeScore]:
    """Per anomaly type (every known type, in ANOMALY_TYPES order): truth,
    flagged and matched document keys. Rows of an unknown type are refused:
    a misspelt type would otherwise score as silently missed."""
    keys: dict[str, dict[str, set[tuple[str, ...]]]] = {
        "truth": {anomaly_type: set() for anomaly_type in ANOMALY_TYPES},
        "flags": {anomaly_type: set() for anomaly_type in ANOMALY_TYPES},
    }
    for side, rows in (("truth", truth), ("flags", flags)):
        for row in rows:
            anomaly_type = row.get("anomaly_type") or ""
            if anomaly_type not in DOCUMENT_KEYS:
                raise ValueError(f"{side}: unknown anomaly_type {anomaly_type!r} in row {dict(row)}")
            keys[side][anomaly_type].add(document_key(anomaly_type, row))
    return [
        TypeScore(
            anomaly_type=anomaly_type,
            truth=len(keys["truth"][anomaly_type]),
            flagged=len(keys["flags"][anomaly_type]),
            true_positives=len(keys["truth"][anomaly_type] & keys["flags"][anomaly_type]),
        )
        for anomaly_type in ANOMALY_TYPES
    ]


def read_truth(landing_dir: Path) -> list[dict[str, str | None]]:
    """`_truth/anomalies.csv` of a generated landing folder, with the period
    start reduced to its UTC date (`period_start_date`)."""
    path = landing_dir / TRUTH_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no ground truth at {path}: score only worlds made by billing_world")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [column for column in TRUTH_COLUMNS if column not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing columns {missing}")
        return [
            {**row, "period_start_date": (row["period_start"] or "")[:10]}
            for row in reader  # ISO timestamps in UTC: the date is the first ten characters
        ]


def read_flags(warehouse_path: Path) -> list[dict[str, str | None]]:
    """The rows of marts.billing_anomalies, as the keys need them."""
    with open_warehouse(warehouse_path, read_only=True) as conn:
        cursor = conn.execute(FLAGS_SQL)
        columns = [description[0] for description in cursor.description]
        return [dict(zip(columns, values, strict=True)) for values in cursor.fetchall()]


def score_world(warehouse_path: Path, landing_dir: Path) -> list[TypeScore]:
    """Score a warehouse's marts.billing_anomalies against its landing folder's truth."""
    return score(read_truth(landing_dir), read_flags(warehouse_path))
