"""Build the dbt project on Apache Spark from an ingested DuckDB warehouse.

    .venv-spark/bin/python scripts/spark_build.py --warehouse data/warehouse.duckdb \
        --spark-warehouse /tmp/spark-warehouse

needs the Spark environment (`make test-spark` creates .venv-spark) and a warehouse that
`billing-analytics run` has ingested. The steps are those of orchestration/lib/spark_build.py.
Prints the time of each step and exits 1 when any dbt node fails.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from orchestration.lib.spark_build import build_on_spark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warehouse", type=Path, required=True, help="DuckDB warehouse with the ingested raw layer")
    parser.add_argument("--spark-warehouse", type=Path, required=True, help="folder for Spark's tables and metastore")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    result = build_on_spark(args.warehouse.resolve(), args.spark_warehouse.resolve())
    for step, seconds in result.seconds.items():
        print(f"{step:>26}: {seconds:7.1f} s")
    print(f"{result.nodes} dbt nodes, {len(result.failures)} not successful")
    for node, message in result.failures.items():
        print(f"  {node}: {message.splitlines()[0] if message else ''}")
    sys.exit(0 if result.ok else 1)


if __name__ == "__main__":
    main()
