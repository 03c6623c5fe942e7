"""The billing policy and country reference, loaded from their one home each.

The policy file is config/billing_policy.yml unless BILLING_POLICY_PATH names
another one (a stricter gate for one run, a test's policy): the generator,
dbt's vars and the checks then all read that file.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from orchestration.lib.settings import COUNTRIES_SEED_PATH, POLICY_PATH, PROJECT_ROOT

POLICY_PATH_VARIABLE = "BILLING_POLICY_PATH"
# A gate that lets any month through (at stake can exceed revenue only in theory): for
# detection benchmarks and tests on worlds injected far above a real month's anomalies.
OPEN_GATE = {"max_block_share_of_revenue": 1.0}


@dataclass(frozen=True)
class Country:
    country: str
    name: str
    region: str
    default_currency: str
    tax_rate: float


def policy_path() -> Path:
    """$BILLING_POLICY_PATH when set (read on every call, so a change takes effect), else the default."""
    value = os.environ.get(POLICY_PATH_VARIABLE)
    if not value:
        return POLICY_PATH
    path = Path(value).expanduser()
    path = (path if path.is_absolute() else PROJECT_ROOT / path).resolve()  # relative to the root, like settings.py
    if not path.is_file():
        raise FileNotFoundError(f"{POLICY_PATH_VARIABLE} is {value!r}, but there is no policy file at {path}")
    return path


def load_policy(path: Path | None = None) -> dict[str, Any]:
    return _read_policy(path or policy_path())


def write_policy_variant(target: Path, overrides: dict[str, Any]) -> Path:
    """Write the current policy with `overrides` merged in (nested dicts merge key by
    key) to `target`, for BILLING_POLICY_PATH; returns `target`."""

    def merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
        out = dict(base)
        for key, value in changes.items():
            out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        return out

    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(merged(load_policy(), overrides), sort_keys=False), encoding="utf-8")
    return target


@lru_cache(maxsize=4)
def _read_policy(path: Path) -> dict[str, Any]:
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
