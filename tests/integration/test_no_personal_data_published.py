"""Nothing a run publishes or logs carries a customer's email, name or survey comment.

The pipeline is run the way a user runs it (`billing-analytics run` in a
subprocess, then `export at-risk`) on a generated world plus hostile batches
that put personal values where the quality machinery quotes values:

- run 1: a customers batch with a bad timestamp next to a fine name and email,
  an email shifted into the `company_size` enum column and a name into
  `country` (quarantined rows whose reasons quote the value), and one good new
  customer. The run publishes the dashboard and exports.
- run 2: a survey batch whose tool exported the respondent's email as
  `customer_id` (a blocking referential expectation fails and its examples and
  message would quote it; the batch is rejected and publication stops).

The emails, names and comments are collected from the landing files by a reader
written here, independent of the pipeline's. Every file under the output folder
is scanned (text, CSV, JSON and HTML as text, Parquet read back), plus the
captured stdout/stderr of every command, the dbt logs and run results the runs
wrote, the Dagster home, and quality.check_runs. PNG files cannot be scanned:
the dashboard snapshot is a picture of index.html, which is scanned, so it
cannot show what the page does not contain. Any other unscannable file fails.

Two controls keep the scan honest: `export at-risk --include-pii` (outside the
output folder) must be found to contain the names and emails, and the hostile
values must really be in the warehouse's quarantine and load manifest.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import html
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from billing_world.deliver import DeliveryConfig
from billing_world.generate import generate_world
from billing_world.simulate import WorldConfig
from orchestration.lib.settings import DBT_PROJECT_DIR, PROJECT_ROOT

pytestmark = pytest.mark.integration

WORLD = WorldConfig(customers=60, months=6, start=dt.date(2024, 1, 1), seed=5, anomaly_rate=0.0)
DELIVERY = DeliveryConfig(batches_per_source=2, bad_row_rate=0.01, seed=5)

CUSTOMER_HEADER = (
    "customer_id,name,email,country,currency,company_size,industry,acquisition_channel,created_at,updated_at"
)
HOSTILE_CUSTOMERS = [
    # fine name and email, broken timestamp: quarantined with both in its record
    "cus_hostile_1,Quarantined Heron Works Ltd.,heron.owner@quarantined-heron.test,GB,GBP,smb,,,not-a-date,",
    # the email shifted into an enum column: the reason quotes it ("unknown value '...'")
    "cus_hostile_2,Shifted Lynx Trading GmbH,lynx.billing@shifted-lynx.test,DE,EUR,"
    "lynx.billing@shifted-lynx.test,,,2024-01-03T09:00:00,",
    # the name shifted into the country column: the reason quotes it
    "cus_hostile_3,Misplaced Otter Bakery,otter@misplaced-otter.test,Misplaced Otter Bakery,EUR,smb,,,"
    "2024-01-03T09:00:00,",
    # a good new customer: loaded, then in staging with its name and email
    "cus_hostile_4,Loaded Badger Partners,badger.accounts@loaded-badger.test,FR,EUR,smb,,,2024-01-04T09:00:00,",
]
SURVEY_HEADER = "response_id,customer_id,survey,score,responded_at,invoice_id,comment"
HOSTILE_SURVEY = [
    # the survey tool exported the respondent's address as customer_id: a blocking expectation fails
    'rsp_hostile_1,wren.respondent@hostile-wren.test,csat,2,2024-03-05T10:00:00,,"Please call me back, Wren Hostile"',
    "rsp_hostile_2,cus_hostile_4,nps,9,2024-03-06T10:00:00,,"
    '"Loved it - Badger team, badger.accounts@loaded-badger.test"',
]


# --- the world's personal values, read independently of orchestration/lib/readers.py ---


def _records(path: Path) -> list[dict]:
    name = path.name
    if name.endswith(".parquet"):
        return pq.read_table(path).to_pylist()
    raw = gzip.decompress(path.read_bytes()) if name.endswith(".gz") else path.read_bytes()
    text = raw.decode("utf-8", errors="replace")
    if ".jsonl" in name:
        rows = []
        for line in text.splitlines():
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                rows.append(value)
        return rows
    return list(csv.DictReader(io.StringIO(text)))


def personal_values(landing: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {"email": set(), "name": set(), "comment": set()}
    for source, columns in (("customers", ("email", "name")), ("survey_responses", ("comment",))):
        for path in sorted((landing / source).iterdir()):
            for row in _records(path):
                for column in columns:
                    value = row.get(column)
                    if isinstance(value, str) and value.strip():
                        found[column].add(value.strip())
    # the survey's email in the wrong column, and the addresses shifted in the customers batch
    found["email"].add("wren.respondent@hostile-wren.test")
    return found


def _variants(value: str) -> set[str]:
    """The value as it would appear in text, HTML or ASCII-escaped JSON; lower case."""
    return {
        v.lower()
        for v in (value, html.escape(value), html.escape(value, quote=False), json.dumps(value)[1:-1])
        if len(v) >= 4
    }


class Scanner:
    def __init__(self, values: dict[str, set[str]]) -> None:
        self.needles = {(kind, value, v) for kind, items in values.items() for value in items for v in _variants(value)}
        self.unscannable: list[Path] = []
        self.scanned = 0

    def text_hits(self, text: str, where: str) -> list[str]:
        lowered = text.lower()
        return sorted({f"{where}: {kind} {value!r}" for kind, value, v in self.needles if v in lowered})

    def file_hits(self, path: Path) -> list[str]:
        name = path.name
        if name.endswith(".png"):
            self.unscannable.append(path)
            return []
        self.scanned += 1
        if name.endswith(".parquet"):
            table = pq.read_table(path)
            text = json.dumps(table.to_pylist(), default=str, ensure_ascii=False) + " ".join(table.column_names)
            return self.text_hits(text, str(path))
        data = gzip.decompress(path.read_bytes()) if name.endswith(".gz") else path.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            self.unscannable.append(path)
            return []
        if name.endswith(".json"):  # also as parsed: \u escapes become the characters
            text += json.dumps(json.loads(text), ensure_ascii=False)
        if name.endswith((".html", ".htm")):
            text += html.unescape(text)
        return self.text_hits(text, str(path))

    def tree_hits(self, root: Path, since: float | None = None) -> list[str]:
        hits: list[str] = []
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            if since is not None and path.stat().st_mtime < since:
                continue
            if path.suffix in {".msgpack", ".gpickle"}:  # dbt's parse caches: no data, binary
                continue
            hits += self.file_hits(path)
        return hits


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "orchestration.cli", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_no_email_name_or_comment_of_the_world_reaches_an_artefact_or_a_log(tmp_path):
    started = time.time() - 1  # mtime resolution
    landing, output = tmp_path / "landing", tmp_path / "output"
    warehouse, dagster_home = tmp_path / "warehouse.duckdb", tmp_path / "dagster_home"
    dagster_home.mkdir()
    generate_world(landing, WORLD, DELIVERY)
    (landing / "customers" / "zz_hostile_customers.csv").write_text(
        "\n".join([CUSTOMER_HEADER, *HOSTILE_CUSTOMERS]) + "\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])),
        "BILLING_LANDING_DIR": str(landing),
        "BILLING_WAREHOUSE_PATH": str(warehouse),
        "BILLING_OUTPUT_DIR": str(output),
        "DAGSTER_HOME": str(dagster_home),
    }

    first = cli("run", env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    export = cli("export", "at-risk", "--min-risk", "0", env=env)
    assert export.returncode == 0, export.stderr[-3000:]
    pii_folder = tmp_path / "pii_export"
    pii_export = cli("export", "at-risk", "--min-risk", "0", "--include-pii", "--output", str(pii_folder), env=env)
    assert pii_export.returncode == 0, pii_export.stderr[-3000:]

    (landing / "survey_responses" / "zz_hostile_survey.csv").write_text(
        "\n".join([SURVEY_HEADER, *HOSTILE_SURVEY]) + "\n"
    )
    second = cli("run", env=env)
    assert second.returncode == 1, "the rejected survey batch must stop publication"

    scanner = Scanner(personal_values(landing))
    assert {"heron.owner@quarantined-heron.test", "lynx.billing@shifted-lynx.test"} <= {
        v for kind, v, _ in scanner.needles if kind == "email"
    }

    # Controls: the hostile values are in the warehouse (the trusted place), and the
    # scanner finds names and emails in the export made with --include-pii.
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        quarantined = " ".join(r for (r,) in conn.execute("select reason || record from raw._quarantine").fetchall())
        errors = conn.execute("select error from raw._load_manifest where error is not null").fetchall()
        check_runs = conn.execute("select examples, message, target from quality.check_runs").fetchall()
    assert "lynx.billing@shifted-lynx.test" in quarantined and "Misplaced Otter Bakery" in quarantined
    assert any("zz_hostile_survey.csv" in error for (error,) in errors)
    pii_hits = scanner.tree_hits(pii_folder)
    assert any(" email " in hit for hit in pii_hits) and any(" name " in hit for hit in pii_hits)

    # The scan.
    hits = scanner.tree_hits(output)
    for label, completed in (("run 1", first), ("export", export), ("run 2", second)):
        hits += scanner.text_hits(completed.stdout, f"{label} stdout")
        hits += scanner.text_hits(completed.stderr, f"{label} stderr")
    hits += scanner.text_hits(pii_export.stderr, "export --include-pii stderr")
    hits += scanner.text_hits(json.dumps(check_runs, default=str, ensure_ascii=False), "quality.check_runs")
    for folder in (DBT_PROJECT_DIR / "target", DBT_PROJECT_DIR / "logs"):
        if folder.is_dir():
            hits += scanner.tree_hits(folder, since=started)
    hits += scanner.tree_hits(dagster_home)

    assert hits == [], "personal data published or logged:\n" + "\n".join(hits)
    # the rejected batch's reason in the load manifest was built from masked check messages
    assert not [error for (error,) in errors if "wren.respondent" in error]
    assert {p.name for p in scanner.unscannable} <= {"dashboard.png"}
    # the published set was really there to scan
    published = {p.relative_to(output).as_posix() for p in output.rglob("*") if p.is_file()}
    assert {
        "dashboard/index.html",
        "dashboard/dashboard_data.json",
        "reports/data_quality.html",
        "reports/data_quality.md",
        "reports/load_report.md",
        "reports/load_report.json",
        "exports/at_risk/manifest.json",
        "exports/at_risk_customers.csv",
        "exports/at_risk_customers.parquet",
    } <= published
    # the masks are there instead: the rejected survey's example, the quarantine reason's kind
    assert "[redacted email]" in (output / "reports" / "data_quality.html").read_text()
    assert "company_size: unknown value '...' (...)" in (output / "reports" / "load_report.md").read_text()
