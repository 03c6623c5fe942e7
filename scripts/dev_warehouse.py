"""Build a development warehouse: generate a small world and ingest it (no dbt).

For working on dbt models in isolation:
    .venv/bin/python scripts/dev_warehouse.py /tmp/me --customers 500 --months 24
then run the dbt command it prints (its own target and log paths, the policy vars).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

from billing_world.deliver import DeliveryConfig
from billing_world.generate import generate_world
from billing_world.simulate import WorldConfig
from orchestration.defs.transform.dbt_assets import dbt_policy_vars
from orchestration.lib.contract import SOURCE_NAMES
from orchestration.lib.loader import ingest_source
from orchestration.lib.warehouse import open_warehouse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--customers", type=int, default=500)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--anomaly-rate", type=float, default=0.01)
    args = parser.parse_args()
    landing = args.folder / "landing"
    generate_world(
        landing,
        WorldConfig(
            customers=args.customers,
            months=args.months,
            start=dt.date(2024, 1, 1),
            seed=args.seed,
            anomaly_rate=args.anomaly_rate,
        ),
        DeliveryConfig(seed=args.seed),
    )
    warehouse = args.folder / "warehouse.duckdb"
    warehouse.unlink(missing_ok=True)
    with open_warehouse(warehouse) as conn:
        for source in SOURCE_NAMES:
            ingest_source(conn, landing, source, log=lambda _m: None)
    print(f"landing: {landing}\nwarehouse: {warehouse}\nthen, for example:")
    print(
        f"BILLING_WAREHOUSE_PATH={warehouse} .venv/bin/dbt build --project-dir dbt_project --profiles-dir dbt_project"
        f" --target-path {args.folder / 'target'} --log-path {args.folder / 'logs'}"
        f" --select +my_model --indirect-selection cautious --vars '{json.dumps(dbt_policy_vars())}'"
    )


if __name__ == "__main__":
    main()
