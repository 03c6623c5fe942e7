"""The billing policy and country reference, loaded from their one home each."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from orchestration.lib.settings import COUNTRIES_SEED_PATH, POLICY_PATH


@dataclass(frozen=True)
class Country:
    country: str
    name: str
    region: str
    default_currency: str
    tax_rate: float


@lru_cache(maxsize=4)
def load_policy(path: Path = POLICY_PATH) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@lru_cache(maxsize=4)
def load_countries(path: Path = COUNTRIES_SEED_PATH) -> dict[str, Country]:
    with open(path, encoding="utf-8", newline="") as handle:
        return {
            row["country"]: Country(
                row["country"],
                row["country_name"],
                row["region"],
                row["default_currency"],
                float(row["tax_rate"]),
            )
            for row in csv.DictReader(handle)
        }
