"""The scale ladder: the whole pipeline on generated worlds of growing size.

    python benchmarks/scale.py [--sizes 1000,10000,100000] [--include-300k] [--months 36]
                               [--root /tmp/billing_scale] [--report-dir docs/reports] [--note TEXT]

For each size (customers x months) it
1. generates the world under <root>/<customers>x<months>/landing, or reuses it
   when its _truth/generation.json matches. The world's last month is
   LAST_MONTH, before today: the ingest suites warn about events dated in the
   future, and the figures are for a clean load. One batch file per source and
   month, as a monthly export would deliver;
2. runs `billing-analytics run` (orchestration.cli.run) into a fresh warehouse:
   end to end from the landing files to the dashboard;
3. runs the plain-SQL baseline (benchmarks/baseline_kpis.sql) on the same
   landing files, and checks that its KPIs equal the marts' `all` rows.

Each of the three runs in a subprocess of its own, so that one's memory does
not inflate the next one's figures; this process samples the resident memory
(RSS) of that subprocess and all its descendants (dbt runs in one) every
--sample-ms. RSS summed over processes counts shared pages twice, so it is an
upper bound.

Stages come from the run's own records: the Dagster event log gives every
step's start and end (steps run one at a time in-process), dbt's
run_results.json the window of every node inside the two dbt steps. dbt runs
two nodes at a time, so a node's seconds are its share of each instant: an
instant when k nodes run counts 1/k for each. The stages then add up to the
pipeline's wall time:

- ingest: the raw__<source> steps (read, validate, the GX batch suites, load);
- dbt build: the dbt steps' models and seeds, and dbt's own start-up, parsing
  and result handling (the time when no node runs);
- quality checks: the dbt tests' share of the dbt steps, the mart GX checks
  and the anomaly gate;
- anomaly detection: the anomaly models' share (int_anomaly_*, billing_anomalies);
- sBG fit, dashboard, exports (publish/at_risk_exports, "not present" before
  it exists), load report: their steps;
- orchestration and reporting: the rest (Dagster start-up, the definitions,
  the CLI's summaries and data-quality report after the run).

A stage's peak memory is the highest sample while any of its steps or nodes
ran, each window widened by half a sampling interval on both sides so that a
short step still meets a sample. During the dbt steps that is the whole
process tree, whichever nodes ran alongside.

Writes <report-dir>/scale.md and scale.json (rewritten after every size). The
figures are wall-clock seconds of one run; --note says what else the machine
was doing. Benchmarks are not tests: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from billing_world.deliver import DeliveryConfig, held_back_files, move_batch_files  # noqa: E402
from billing_world.simulate import WorldConfig  # noqa: E402
from orchestration.lib.settings import DBT_EXECUTABLE, DBT_PROJECT_DIR, Settings, duckdb_memory_limit  # noqa: E402

BASELINE_SQL = Path(__file__).resolve().parent / "baseline_kpis.sql"
REPORT_NAME = "scale"
DEFAULT_SIZES = (1_000, 10_000, 100_000)
OPT_IN_SIZE = 300_000
LAST_MONTH = dt.date(2026, 9, 1)  # two months before the harness was written
SEED = 7
MIB = 1024 * 1024

# Stages in report order; the first eight are issue 6's.
GENERATE, INGEST, DBT_BUILD, QUALITY, ANOMALY, SBG, DASHBOARD, EXPORTS = (
    "generate",
    "ingest",
    "dbt build",
    "quality checks",
    "anomaly detection",
    "sBG fit",
    "dashboard",
    "exports",
)
LOAD_REPORT, ORCHESTRATION, OTHER_STEPS = "load report", "orchestration and reporting", "other steps"
PIPELINE_STAGES = (INGEST, DBT_BUILD, QUALITY, ANOMALY, SBG, DASHBOARD, EXPORTS, LOAD_REPORT, ORCHESTRATION)

# Step keys of the billing_pipeline job (tests/integration/test_scale_benchmark.py
# checks that a real run has no step outside these).
INGEST_STEP_PREFIX = "raw__"
MART_CHECK_STEP_SUFFIX = "_mart_expectations"  # orchestration/defs/quality/mart_checks.py CHECK_NAME
GATE_STEP_SUFFIX = "_block_anomalies_within_revenue_share"  # anomaly_gate.py GATE_CHECK_NAME
SBG_STEP = "sbg_fit"
DASHBOARD_STEP = "publish__kpi_dashboard"
EXPORTS_STEP_PREFIX = "publish__at_risk_exports"
LOAD_REPORT_STEP = "publish__load_report"

# dbt nodes by what they do: tests are quality checks, these models detect anomalies.
DBT_TESTS, DBT_ANOMALY_MODELS, DBT_MODELS = "tests", "anomaly models", "models and seeds"
ANOMALY_MODEL_PREFIX = "int_anomaly_"
ANOMALY_MART = "billing_anomalies"

# What the baseline and the marts both report, month by month, for segment `all`.
KPI_COLUMNS = (
    "month",
    "invoices_issued",
    "invoices_with_error",
    "error_rate_per_100",
    "credit_sales_usd",
    "ar_end_usd",
    "dso_days",
    "customers_start",
    "churned",
    "logo_churn_rate",
)
MARTS_ALL_KPIS_SQL = """
with
error_rate as (
    select month, invoices_issued, invoices_with_error, error_rate_per_100
    from marts.kpi_invoice_error_rate where segment_dimension = 'all'
),
dso as (
    select month, credit_sales_usd, ar_end_usd, dso_days
    from marts.kpi_dso where segment_dimension = 'all'
),
churn as (
    select month, customers_start, churned, logo_churn_rate
    from marts.kpi_churn where segment_dimension = 'all'
)
select
    coalesce(error_rate.month, churn.month) as month,
    error_rate.invoices_issued, error_rate.invoices_with_error, error_rate.error_rate_per_100,
    dso.credit_sales_usd, dso.ar_end_usd, dso.dso_days,
    churn.customers_start, churn.churned, churn.logo_churn_rate
from error_rate
inner join dso on error_rate.month = dso.month
full outer join churn on error_rate.month = churn.month
order by month
"""

TARGET_SIZE = (100_000, 36)
TARGET_SECONDS = 300.0
TARGET_PEAK_MIB = 6 * 1024.0
TARGET_RATIO = 2.0
# The daily run: one new day on top of a world of the largest size, against its full run.
DAILY_HELD_BACK_DAYS = 1
TARGET_DAY_SHARE = 0.10
TARGET_IDLE_SECONDS = 15.0


# --- the worlds -----------------------------------------------------------------------


def world_configs(customers: int, months: int) -> tuple[WorldConfig, DeliveryConfig]:
    """The world of one size: ends LAST_MONTH, one batch file per source and month."""
    first = (LAST_MONTH.year * 12 + LAST_MONTH.month - 1) - (months - 1)
    start = dt.date(first // 12, first % 12 + 1, 1)
    return (
        WorldConfig(customers=customers, months=months, start=start, seed=SEED),
        DeliveryConfig(batches_per_source=months, seed=SEED),
    )


def generation_config(world: WorldConfig, delivery: DeliveryConfig) -> dict:
    """The config as billing_world.generate writes it to _truth/generation.json."""
    config = {"world": {**asdict(world), "start": world.start.isoformat()}, "delivery": asdict(delivery)}
    return json.loads(json.dumps(config, default=str))


def world_is_current(landing: Path, world: WorldConfig, delivery: DeliveryConfig) -> bool:
    marker = landing / "_truth" / "generation.json"
    if not marker.exists():
        return False
    return json.loads(marker.read_text()).get("config") == generation_config(world, delivery)


@dataclass(frozen=True)
class SizePaths:
    root: Path

    @property
    def settings(self) -> Settings:
        return Settings(self.root / "landing", self.root / "warehouse.duckdb", self.root / "output")

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def generation_record(self) -> Path:
        """What generating this world cost, kept beside it for the runs that reuse it."""
        return self.root / "generation_benchmark.json"

    def result(self, kind: str) -> Path:
        return self.logs / f"{kind}.json"


def fresh_warehouse(settings: Settings) -> None:
    warehouse = settings.warehouse_path
    for stale in (warehouse, warehouse.with_suffix(".duckdb.wal")):
        stale.unlink(missing_ok=True)
    shutil.rmtree(warehouse.with_suffix(".duckdb.tmp"), ignore_errors=True)
    shutil.rmtree(settings.output_dir, ignore_errors=True)


# --- memory sampling ------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    at: float  # epoch seconds
    main: int  # RSS bytes of the worker process
    children: int  # RSS bytes of its descendants (dbt)

    @property
    def total(self) -> int:
        return self.main + self.children


class ProcessTreeSampler:
    """Samples the RSS of a process and all its descendants in a background thread."""

    def __init__(self, pid: int, interval: float) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def __enter__(self) -> ProcessTreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            sample = self._sample()
            if sample is not None:
                self.samples.append(sample)
            self._stop.wait(self.interval)

    def _sample(self) -> Sample | None:
        at = time.time()
        try:
            main = self.process.memory_info().rss
            descendants = self.process.children(recursive=True)
        except psutil.Error:  # the worker has exited
            return None
        children = 0
        for child in descendants:
            try:
                children += child.memory_info().rss
            except psutil.Error:  # exited between listing and reading
                continue
        return Sample(at, main, children)


@dataclass
class WorkerRun:
    exit_code: int
    started_at: float
    finished_at: float
    samples: list[Sample]
    result: dict | None
    log: Path

    @property
    def seconds(self) -> float:
        return self.finished_at - self.started_at


def run_worker(
    kind: str, arguments: Sequence[str], paths: SizePaths, interval: float, name: str | None = None
) -> WorkerRun:
    """`scale.py --worker <kind> ...` in a subprocess, its process tree sampled; its log in
    <size>/logs/<name>.log (name defaults to the kind)."""
    paths.logs.mkdir(parents=True, exist_ok=True)
    name = name or kind
    log, result = paths.logs / f"{name}.log", paths.result(name)
    result.unlink(missing_ok=True)
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--result", str(result), *arguments]
    with log.open("w") as out:
        started = time.time()
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        with ProcessTreeSampler(process.pid, interval) as sampler:
            code = process.wait()
        finished = time.time()
    found = json.loads(result.read_text()) if result.exists() else None
    if code != 0 or found is None:
        tail = "".join(log.read_text().splitlines(keepends=True)[-25:])
        print(f"  {kind} worker exited with {code}; last lines of {log}:\n{tail}", flush=True)
    return WorkerRun(code, started, finished, sampler.samples, found, log)


def peak_mib(samples: Iterable[Sample], windows: Iterable[tuple[float, float]] | None = None, pad: float = 0.0):
    """Highest total RSS in MiB among the samples inside any of the windows (all samples when None)."""
    spans = None if windows is None else [(start - pad, end + pad) for start, end in windows]
    inside = [s.total for s in samples if spans is None or any(a <= s.at <= b for a, b in spans)]
    return round(max(inside) / MIB, 1) if inside else None


# --- stages ---------------------------------------------------------------------------


def step_stage(step_key: str, dbt_steps: set[str]) -> str:
    """The stage a step of the billing_pipeline job belongs to."""
    if step_key.startswith(INGEST_STEP_PREFIX):
        return INGEST
    if step_key in dbt_steps:
        return DBT_BUILD
    if step_key.endswith((MART_CHECK_STEP_SUFFIX, GATE_STEP_SUFFIX)):
        return QUALITY
    if step_key == SBG_STEP:
        return SBG
    if step_key == DASHBOARD_STEP:
        return DASHBOARD
    if step_key.startswith(EXPORTS_STEP_PREFIX):
        return EXPORTS
    if step_key == LOAD_REPORT_STEP:
        return LOAD_REPORT
    return OTHER_STEPS


def dbt_node_category(unique_id: str) -> str:
    if unique_id.startswith(("test.", "unit_test.")):
        return DBT_TESTS
    name = unique_id.split(".")[-1]
    if unique_id.startswith("model.") and (name.startswith(ANOMALY_MODEL_PREFIX) or name == ANOMALY_MART):
        return DBT_ANOMALY_MODELS
    return DBT_MODELS


def dbt_node_name(unique_id: str) -> str:
    """A readable name: a data test's unique id ends in a hash, a unit test's names its model."""
    kind, _package, *rest = unique_id.split(".")
    if kind == "test":
        return f"test {rest[0]}"
    if kind == "unit_test":
        return f"unit test {rest[0]}.{rest[-1]}"
    return rest[-1]


def shared_seconds(windows: Sequence[tuple[str, float, float]]) -> dict[str, float]:
    """Seconds per label of overlapping (label, start, end) windows: an instant when k windows
    are open counts 1/k for each, so the labels add up to the time any window is open."""
    events = sorted(
        [(start, 1, label) for label, start, end in windows if end > start]
        + [(end, -1, label) for label, start, end in windows if end > start]
    )
    open_by_label: dict[str, int] = {}
    seconds: dict[str, float] = {label: 0.0 for label, _, _ in windows}
    previous = None
    for at, change, label in events:
        running = sum(open_by_label.values())
        if previous is not None and running:
            for open_label, count in open_by_label.items():
                seconds[open_label] += (at - previous) * count / running
        open_by_label[label] = open_by_label.get(label, 0) + change
        previous = at
    return seconds


def _iso_epoch(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def dbt_node_windows(run_results: dict) -> list[dict]:
    """One entry per node that ran: its category and window (compile start to execute end)."""
    nodes = []
    for result in run_results.get("results", []):
        timing = [t for t in result.get("timing") or [] if t.get("started_at") and t.get("completed_at")]
        if not timing:  # skipped
            continue
        nodes.append(
            {
                "unique_id": result["unique_id"],
                "category": dbt_node_category(result["unique_id"]),
                "status": result.get("status"),
                "thread": result.get("thread_id"),
                "start": min(_iso_epoch(t["started_at"]) for t in timing),
                "end": max(_iso_epoch(t["completed_at"]) for t in timing),
                "execution_time": float(result.get("execution_time") or 0.0),
            }
        )
    return nodes


def dbt_idle_ends(steps: list[dict], dbt_nodes: dict[str, list[dict]]) -> tuple[float, float]:
    """Seconds of the dbt steps before their first node starts (dbt's start-up, parsing of the
    project) and after their last node ends (dagster-dbt's events, recording the test results)."""
    before = after = 0.0
    for step in steps:
        nodes = dbt_nodes.get(step["key"])
        if nodes:
            before += min(n["start"] for n in nodes) - step["start"]
            after += step["end"] - max(n["end"] for n in nodes)
    return before, after


def stage_table(pipeline: dict, samples: list[Sample], interval: float) -> dict[str, dict]:
    """Seconds, share and peak RSS per stage of one pipeline run (see the module docstring)."""
    steps = [s for s in pipeline["steps"] if s.get("start") is not None and s.get("end") is not None]
    dbt_steps = set(pipeline["dbt_nodes"])
    nodes = [node for nodes in pipeline["dbt_nodes"].values() for node in nodes]
    shares = shared_seconds([(n["category"], n["start"], n["end"]) for n in nodes])
    windows_by_category: dict[str, list[tuple[float, float]]] = {}
    for node in nodes:
        windows_by_category.setdefault(node["category"], []).append((node["start"], node["end"]))

    stages: dict[str, dict] = {
        name: {"seconds": 0.0, "windows": [], "steps": 0, "skipped": 0, "detail": {}}
        for name in (*PIPELINE_STAGES, OTHER_STEPS)
    }
    for step in pipeline["steps"]:
        if step["status"] == "skipped":  # a blocking check failed upstream
            stages[step_stage(step["key"], dbt_steps)]["skipped"] += 1
    for step in steps:
        stage = stages[step_stage(step["key"], dbt_steps)]
        stage["seconds"] += step["end"] - step["start"]
        stage["windows"].append((step["start"], step["end"]))
        stage["steps"] += 1
        if step_stage(step["key"], dbt_steps) == QUALITY:
            kind = "anomaly gate" if step["key"].endswith(GATE_STEP_SUFFIX) else "mart GX checks"
            stage["detail"][kind] = stage["detail"].get(kind, 0.0) + step["end"] - step["start"]
        if step_stage(step["key"], dbt_steps) == OTHER_STEPS:
            stage["detail"][step["key"]] = step["end"] - step["start"]

    # The dbt steps' wall time is split: tests to quality checks, anomaly models to
    # anomaly detection; dbt build keeps the models, seeds and dbt's own overhead.
    dbt_wall = stages[DBT_BUILD]["seconds"]
    tests, anomaly = shares.get(DBT_TESTS, 0.0), shares.get(DBT_ANOMALY_MODELS, 0.0)
    stages[DBT_BUILD]["seconds"] = dbt_wall - tests - anomaly
    before, after = dbt_idle_ends(steps, pipeline["dbt_nodes"])
    stages[DBT_BUILD]["detail"] = {
        "dbt steps wall": dbt_wall,
        DBT_MODELS: shares.get(DBT_MODELS, 0.0),
        "start-up and parsing (before the first node)": before,
        "result handling (after the last node)": after,
        "idle between nodes": dbt_wall - sum(shares.values()) - before - after,
    }
    stages[QUALITY]["seconds"] += tests
    stages[QUALITY]["detail"]["dbt tests"] = tests
    stages[QUALITY]["windows"] += windows_by_category.get(DBT_TESTS, [])
    stages[ANOMALY]["seconds"] = anomaly
    stages[ANOMALY]["windows"] = windows_by_category.get(DBT_ANOMALY_MODELS, [])
    stages[INGEST]["detail"]["GX batch suites (inside the steps)"] = (
        pipeline["check_runs"].get("ingest", {}).get("seconds", 0.0)
    )

    total = pipeline["finished_at"] - pipeline["started_at"]
    first = min((s["start"] for s in steps), default=pipeline["finished_at"])
    last = max((s["end"] for s in steps), default=pipeline["finished_at"])
    stages[ORCHESTRATION]["seconds"] = total - sum(s["end"] - s["start"] for s in steps)
    stages[ORCHESTRATION]["windows"] = [(pipeline["started_at"], first), (last, pipeline["finished_at"])]
    stages[ORCHESTRATION]["detail"] = {
        "before the first step": first - pipeline["started_at"],
        "after the last step": pipeline["finished_at"] - last,
    }

    table = {}
    for name, stage in stages.items():
        if name == OTHER_STEPS and not stage["steps"]:
            continue
        present = bool(stage["windows"]) or name in (DBT_BUILD, ANOMALY, ORCHESTRATION)
        table[name] = {
            "present": present,
            "skipped_steps": stage["skipped"],
            "seconds": round(stage["seconds"], 2) if present else None,
            "share": round(stage["seconds"] / total, 4) if present and total else None,
            "peak_rss_mib": peak_mib(samples, stage["windows"], interval / 2) if present else None,
            "steps": stage["steps"],
            "detail": {key: round(value, 2) for key, value in stage["detail"].items()},
        }
    return table


def dbt_summary(pipeline: dict) -> dict:
    nodes = [node for nodes in pipeline["dbt_nodes"].values() for node in nodes]
    shares = shared_seconds([(n["category"], n["start"], n["end"]) for n in nodes])
    summary = {}
    for category in (DBT_MODELS, DBT_ANOMALY_MODELS, DBT_TESTS):
        mine = [n for n in nodes if n["category"] == category]
        summary[category] = {
            "nodes": len(mine),
            "shared_seconds": round(shares.get(category, 0.0), 2),
            "busy_seconds": round(sum(n["execution_time"] for n in mine), 2),
        }
    # by dbt resource type: model, seed, test (data tests), unit_test
    by_type = shared_seconds([(n["unique_id"].split(".")[0], n["start"], n["end"]) for n in nodes])
    slowest = sorted(nodes, key=lambda n: n["end"] - n["start"], reverse=True)[:10]
    return {
        "categories": summary,
        "resource_types": {
            kind: {
                "nodes": sum(n["unique_id"].split(".")[0] == kind for n in nodes),
                "shared_seconds": round(seconds, 2),
            }
            for kind, seconds in sorted(by_type.items())
        },
        "threads": len({n["thread"] for n in nodes if n["thread"]}),
        "slowest": [{"node": n["unique_id"], "seconds": round(n["end"] - n["start"], 2)} for n in slowest],
    }


# --- one size -------------------------------------------------------------------------


def measure_size(customers: int, months: int, root: Path, interval: float) -> dict:
    world, delivery = world_configs(customers, months)
    paths = SizePaths(root / f"{customers}x{months}")
    settings = paths.settings
    label = f"{customers:,} customers x {months} months"

    if world_is_current(settings.landing_dir, world, delivery):
        print(f"{label}: reusing the world in {settings.landing_dir}", flush=True)
        if paths.generation_record.exists():
            generation = json.loads(paths.generation_record.read_text())
        else:  # generated by something else: its cost is unknown
            marker = json.loads((settings.landing_dir / "_truth" / "generation.json").read_text())
            generation = {
                "seconds": None,
                "peak_rss_mib": None,
                "measured_at": "by another tool",
                "clean_rows": marker["rows_per_source"],
            }
        generation["generated"] = False
    else:
        print(f"{label}: generating into {settings.landing_dir} ...", flush=True)
        shutil.rmtree(settings.landing_dir, ignore_errors=True)
        worker = run_worker(
            "generate",
            ["--landing", str(settings.landing_dir), "--customers", str(customers), "--months", str(months)],
            paths,
            interval,
        )
        if worker.exit_code != 0 or worker.result is None:
            raise SystemExit(f"generating {label} failed; see {worker.log}")
        generation = {
            "seconds": round(worker.seconds, 2),
            "peak_rss_mib": peak_mib(worker.samples),
            "measured_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "clean_rows": worker.result["rows_per_source"],
        }
        paths.generation_record.write_text(json.dumps(generation, indent=2) + "\n")
        generation["generated"] = True

    fresh_warehouse(settings)
    print(f"{label}: running the pipeline (log: {paths.logs / 'pipeline.log'}) ...", flush=True)
    pipeline_worker = run_worker("pipeline", ["--size-root", str(paths.root)], paths, interval)
    pipeline = pipeline_worker.result
    world_info = {
        "start": world.start.isoformat(),
        "last_month": LAST_MONTH.isoformat(),
        "seed": SEED,
        "anomaly_rate": world.anomaly_rate,
        "batches_per_source": delivery.batches_per_source,
        "bad_row_rate": delivery.bad_row_rate,
        "root": str(paths.root),
    }
    generate_stage = {
        "present": True,
        "skipped_steps": 0,
        "seconds": generation["seconds"],
        "share": None,
        "peak_rss_mib": generation["peak_rss_mib"],
        "steps": 0,
        "detail": {} if generation["generated"] else {"reused world, generated": generation["measured_at"]},
    }
    if pipeline is None:  # killed (out of memory?) or crashed before writing its result: report what is known
        error = f"its worker exited with {pipeline_worker.exit_code} and wrote no result; see {pipeline_worker.log}"
        print(f"{label}: {error}", flush=True)
        return {
            "customers": customers,
            "months": months,
            "world": world_info,
            "generation": generation,
            "rows": {},
            "rows_in_files": None,
            "pipeline": {
                "succeeded": False,
                "error": error,
                "seconds": round(pipeline_worker.seconds, 2),
                "rows_per_second": None,
                "peak_rss_mib": peak_mib(pipeline_worker.samples),
                "failed_steps": [],
                "skipped_steps": [],
            },
            "stages": {GENERATE: generate_stage},
            "steps": [],
            "baseline": {"seconds": None, "ratio": None, "error": "not run: the pipeline did not finish"},
        }
    print(f"{label}: running the plain-SQL baseline ...", flush=True)
    baseline_worker = run_worker(
        "baseline",
        ["--landing", str(settings.landing_dir), "--warehouse", str(settings.warehouse_path)],
        paths,
        interval,
    )
    baseline = baseline_worker.result or {"seconds": None, "error": f"no result; see {baseline_worker.log}"}

    samples = [s for s in pipeline_worker.samples if pipeline["started_at"] <= s.at <= pipeline["finished_at"]]
    stages = {GENERATE: generate_stage, **stage_table(pipeline, samples, interval)}
    total = pipeline["finished_at"] - pipeline["started_at"]
    rows_in_files = sum(s["rows_in_files"] for s in pipeline["rows"].values())
    baseline_seconds = baseline.get("seconds")
    record = {
        "customers": customers,
        "months": months,
        "world": world_info,
        "generation": generation,
        "rows": {
            name: {**counts, "clean_rows_generated": generation["clean_rows"].get(name)}
            for name, counts in pipeline["rows"].items()
        },
        "rows_in_files": rows_in_files,
        "pipeline": {
            "succeeded": pipeline["succeeded"],
            "seconds": round(total, 2),
            "rows_per_second": round(rows_in_files / total, 1) if total else None,
            "peak_rss_mib": peak_mib(samples),
            "peak_worker_mib": round(max((s.main for s in samples), default=0) / MIB, 1),
            "peak_subprocesses_mib": round(max((s.children for s in samples), default=0) / MIB, 1),
            "samples": len(samples),
            "failed_steps": [s["key"] for s in pipeline["steps"] if s["status"] == "failure"],
            "skipped_steps": [s["key"] for s in pipeline["steps"] if s["status"] == "skipped"],
        },
        "stages": stages,
        "steps": [
            {
                "key": s["key"],
                "stage": step_stage(s["key"], set(pipeline["dbt_nodes"])),
                "status": s["status"],
                "seconds": round(s["end"] - s["start"], 2) if s.get("end") and s.get("start") else None,
            }
            for s in pipeline["steps"]
        ],
        "dbt": dbt_summary(pipeline),
        "check_runs": pipeline["check_runs"],
        "loader_duckdb": pipeline["loader_duckdb"],
        "baseline": {
            **{k: v for k, v in baseline.items() if k != "latest"},
            "peak_rss_mib": peak_mib(baseline_worker.samples),
            "ratio": round(total / baseline_seconds, 2) if baseline_seconds else None,
            "latest_month": baseline.get("latest"),
        },
    }
    print(
        f"{label}: pipeline {'succeeded' if pipeline['succeeded'] else 'FAILED'} in {total:.1f} s "
        f"({record['pipeline']['rows_per_second']:,} rows/s, peak {record['pipeline']['peak_rss_mib']:,} MiB); "
        f"baseline {baseline_seconds} s, ratio {record['baseline']['ratio']}",
        flush=True,
    )
    return record


def _daily_run(worker: WorkerRun, interval: float) -> dict:
    """Seconds, peak and the steps that ran or were skipped, of one pipeline worker."""
    pipeline = worker.result
    if pipeline is None:
        return {"succeeded": False, "seconds": round(worker.seconds, 2), "error": f"no result; see {worker.log}"}
    samples = [s for s in worker.samples if pipeline["started_at"] <= s.at <= pipeline["finished_at"]]
    steps = pipeline["steps"]
    return {
        "succeeded": pipeline["succeeded"],
        "seconds": round(pipeline["finished_at"] - pipeline["started_at"], 2),
        "peak_rss_mib": peak_mib(samples),
        "steps_run": sum(1 for s in steps if s["status"] == "success"),
        "steps_skipped": sum(1 for s in steps if s["status"] == "skipped"),
        "files_loaded": sum(r["files"] for r in pipeline["rows"].values()),
        "stages": _stages_or_none(pipeline, samples, interval),
    }


def _stages_or_none(pipeline: dict, samples: list, interval: float) -> dict | None:
    """The stage table of a daily run; None (reported as "-") if its steps do not fit the table."""
    try:
        return stage_table(pipeline, samples, interval)
    except Exception as error:  # a skipped dbt op leaves no node windows: the totals still stand
        print(f"  no stage table for this run: {error!r}", flush=True)
        return None


def measure_daily(customers: int, months: int, root: Path, interval: float, full_seconds: float | None) -> dict:
    """Daily operation on a world of this size: its last day held back as its own batch files
    (DeliveryConfig.held_back_days), a first run on the rest, then the day's files land and a
    second run loads them, then a third run finds nothing new. The day's run is compared with
    the full run of the same size in the ladder (the same world, delivered without the split)."""
    world, delivery = world_configs(customers, months)
    delivery = replace(delivery, held_back_days=DAILY_HELD_BACK_DAYS)
    paths = SizePaths(root / f"{customers}x{months}_daily")
    settings = paths.settings
    label = f"{customers:,} x {months}, daily runs"
    shutil.rmtree(paths.root, ignore_errors=True)  # the held-back files must start outside the landing folder
    print(f"{label}: generating with the last {DAILY_HELD_BACK_DAYS} day(s) held back ...", flush=True)
    generated = run_worker(
        "generate",
        [
            "--landing",
            str(settings.landing_dir),
            "--customers",
            str(customers),
            "--months",
            str(months),
            "--held-back-days",
            str(DAILY_HELD_BACK_DAYS),
        ],
        paths,
        interval,
    )
    if generated.exit_code != 0 or generated.result is None:
        raise SystemExit(f"generating {label} failed; see {generated.log}")
    held_back = held_back_files(settings.landing_dir)
    move_batch_files(held_back, settings.landing_dir, paths.root / "held_back")
    fresh_warehouse(settings)
    runs = {}
    print(f"{label}: the first run, without the last day ...", flush=True)
    runs["without the last day"] = _daily_run(
        run_worker("pipeline", ["--size-root", str(paths.root)], paths, interval, name="pipeline_base"), interval
    )
    move_batch_files(held_back, paths.root / "held_back", settings.landing_dir)
    print(f"{label}: the day's {len(held_back)} files land; the daily run ...", flush=True)
    runs["one new day"] = _daily_run(
        run_worker("pipeline", ["--size-root", str(paths.root)], paths, interval, name="pipeline_day"), interval
    )
    print(f"{label}: a run with no new files ...", flush=True)
    runs["no new files"] = _daily_run(
        run_worker("pipeline", ["--size-root", str(paths.root)], paths, interval, name="pipeline_idle"), interval
    )
    files_before = 0
    for name, run in runs.items():
        files_in_warehouse = run.get("files_loaded") or files_before
        run["files_loaded"], files_before = files_in_warehouse - files_before, files_in_warehouse
        run["share_of_full_run"] = round(run["seconds"] / full_seconds, 3) if full_seconds else None
        print(f"{label}: {name}: {run['seconds']:.1f} s", flush=True)
    return {
        "customers": customers,
        "months": months,
        "held_back_days": DAILY_HELD_BACK_DAYS,
        "held_back_files": len(held_back),
        "full_run_seconds": full_seconds,
        "runs": runs,
    }


# --- report ---------------------------------------------------------------------------


def _fmt(value, digits: int = 1, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, int | float):
        return f"{value:,.{digits}f}{unit}"
    return str(value)


def targets(sizes: list[dict], daily: dict | None = None) -> list[dict]:
    """Issue 6's targets for this machine: met, missed, or not measured when the ladder did not
    reach TARGET_SIZE. Reported, never asserted."""
    target = next((s for s in sizes if (s["customers"], s["months"]) == TARGET_SIZE), None)
    name = f"{TARGET_SIZE[0]:,} x {TARGET_SIZE[1]}"
    absent = f"{name} not in this run"
    peaks = [(s["customers"], s["months"], s["pipeline"]["peak_rss_mib"]) for s in sizes]
    rows = [
        (f"{name} end to end under {TARGET_SECONDS / 60:.0f} min", absent, None),
        (f"{name} peak memory under {TARGET_PEAK_MIB / 1024:.0f} GiB", absent, None),
        (f"{name} pipeline / baseline at most {TARGET_RATIO:.0f}x", absent, None),
        (
            f"memory bounded as size grows (every size up to {name} under {TARGET_PEAK_MIB / 1024:.0f} GiB)",
            ", ".join(f"{c:,} x {m}: {p:,.0f} MiB" for c, m, p in peaks if p is not None),
            None,
        ),
    ]
    if target is not None:
        pipeline, baseline = target["pipeline"], target["baseline"]
        seconds, peak, ratio = pipeline["seconds"], pipeline["peak_rss_mib"], baseline["ratio"]
        rows[0] = (
            rows[0][0],
            f"{seconds:,.0f} s" + ("" if pipeline["succeeded"] else " (run FAILED)"),
            pipeline["succeeded"] and seconds < TARGET_SECONDS,
        )
        rows[1] = (rows[1][0], f"{_fmt(peak, 0)} MiB (process tree)", peak is not None and peak < TARGET_PEAK_MIB)
        rows[2] = (
            rows[2][0],
            f"{ratio}x ({seconds:,.0f} s / {baseline['seconds']} s)" if ratio else "no baseline",
            None if ratio is None else ratio <= TARGET_RATIO,
        )
        rows[3] = (rows[3][0], rows[3][1], all(p is not None and p < TARGET_PEAK_MIB for _, _, p in peaks))
    day_target = f"one new day on top of {name}: under {TARGET_DAY_SHARE:.0%} of the full run"
    idle_target = f"no new files on {name}: under {TARGET_IDLE_SECONDS:.0f} s"
    if daily is None or (daily["customers"], daily["months"]) != TARGET_SIZE:
        rows += [(day_target, absent, None), (idle_target, absent, None)]
    else:
        day, idle = daily["runs"]["one new day"], daily["runs"]["no new files"]
        share = day.get("share_of_full_run")
        rows += [
            (
                day_target,
                f"{day['seconds']:,.1f} s = {share:.1%} of {daily['full_run_seconds']:,.0f} s" if share else "-",
                None if share is None else day["succeeded"] and share < TARGET_DAY_SHARE,
            ),
            (idle_target, f"{idle['seconds']:,.1f} s", idle["succeeded"] and idle["seconds"] < TARGET_IDLE_SECONDS),
        ]
    status = {None: "not measured", True: "met", False: "missed"}
    return [{"target": what, "figure": figure, "status": status[met]} for what, figure, met in rows]


def render(report: dict) -> str:
    sizes = report["sizes"]
    duckdb_settings = report.get("duckdb") or {}
    lines = [
        "# Scale benchmark",
        "",
        f"Generated by `benchmarks/scale.py` on {report['run_at']} at commit {report['git']['commit']}"
        f"{' (with uncommitted changes)' if report['git']['dirty'] else ''}; {report['machine']['summary']}. "
        "Wall-clock seconds of one run; memory is the resident set (RSS) of the pipeline's process tree "
        f"(the Dagster process and its dbt subprocess), sampled every {report['sample_ms']} ms.",
        "",
    ]
    if report.get("note"):
        lines += [f"**Conditions:** {report['note']}", ""]
    lines += [
        f"Load average (1 / 5 / 15 min) at start {report['machine']['load_at_start']}, "
        f"at end {report['machine']['load_at_end']}.",
        "",
        "DuckDB, as the pipeline's two kinds of connection report it: "
        + "; ".join(
            f"{who}: memory_limit {s.get('memory_limit')}, threads {s.get('threads')}, spills to "
            f"`{s.get('temp_directory')}` (max {s.get('max_temp_directory_size')})"
            for who, s in duckdb_settings.items()
        )
        + ".",
        "",
        "## Summary",
        "",
        "| customers x months | rows in landed files | pipeline s | rows / s | peak RSS MiB | baseline s "
        "| pipeline / baseline | baseline = marts |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for s in sizes:
        pipeline, baseline = s["pipeline"], s["baseline"]
        agree = (
            "yes"
            if baseline.get("equal")
            else (f"no: {len(baseline.get('differences') or [])} values differ" if "equal" in baseline else "-")
        )
        lines.append(
            f"| {s['customers']:,} x {s['months']} | {_fmt(s['rows_in_files'], 0)} | {_fmt(pipeline['seconds'])}"
            f"{'' if pipeline['succeeded'] else ' (FAILED)'} | {_fmt(pipeline['rows_per_second'], 0)} "
            f"| {_fmt(pipeline['peak_rss_mib'], 0)} | {_fmt(baseline.get('seconds'), 2)} "
            f"| {_fmt(baseline.get('ratio'), 1, 'x')} | {agree} |"
        )
    lines += [
        "",
        "## Targets (issue 6, this 2-core 24 GiB machine; reported, not asserted)",
        "",
        "| target | figure | status |",
        "|---|---|---|",
    ]
    lines += [f"| {t['target']} | {t['figure']} | {t['status']} |" for t in report["targets"]]
    if report.get("daily"):
        lines += _render_daily(report["daily"])
    lines += ["", _STAGE_NOTES, ""]
    for s in sizes:
        lines += _render_size(s)
    return "\n".join(lines) + "\n"


_STAGE_NOTES = """How the stages are measured: every step's start and end from the Dagster event log (steps run one
at a time); inside the two dbt steps, each node's window from dbt's run_results.json, an instant
with k nodes running counting 1/k for each (dbt runs two threads). dbt tests count as quality
checks, the anomaly models (int_anomaly_*, billing_anomalies) as anomaly detection, and dbt build
keeps the other models, the seed and dbt's own start-up and parsing. The stages add up to the
pipeline's wall time; generate is not part of it. A stage's peak is the highest sample while it
ran (during dbt: the whole process tree, whatever ran alongside)."""


def _render_daily(daily: dict) -> list[str]:
    lines = [
        "",
        f"## Daily runs, {daily['customers']:,} x {daily['months']}",
        "",
        f"The same world with its last {daily['held_back_days']} day(s) held back as "
        f"{daily['held_back_files']} batch files of their own: a first run without them, then they land "
        "and the daily run loads them, then a run finds nothing new. Shares are of the full run of the "
        f"same size above ({_fmt(daily['full_run_seconds'])} s).",
        "",
        "| run | seconds | share of the full run | peak RSS MiB | batch files loaded | steps run | steps skipped "
        "| ingest s | dbt build s | quality checks s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, run in daily["runs"].items():
        stages = run.get("stages") or {}
        share = run.get("share_of_full_run")

        def stage_seconds(stage: str, stages=stages) -> str:
            return _fmt((stages.get(stage) or {}).get("seconds"), 1)

        lines.append(
            f"| {name}{'' if run['succeeded'] else ' (FAILED)'} | {_fmt(run['seconds'])} "
            f"| {'-' if share is None else f'{share:.1%}'} | {_fmt(run.get('peak_rss_mib'), 0)} "
            f"| {_fmt(run.get('files_loaded'), 0)} | {_fmt(run.get('steps_run'), 0)} "
            f"| {_fmt(run.get('steps_skipped'), 0)} "
            f"| {stage_seconds(INGEST)} | {stage_seconds(DBT_BUILD)} | {stage_seconds(QUALITY)} |"
        )
    return lines


def _render_size(s: dict) -> list[str]:
    generation, world, pipeline, baseline = s["generation"], s["world"], s["pipeline"], s["baseline"]
    made = "generated for this run" if generation["generated"] else f"reused (generated {generation['measured_at']})"
    world_line = (
        f"World from {world['start']} to {world['last_month']}, seed {world['seed']}, anomaly rate "
        f"{world['anomaly_rate']}, bad-row rate {world['bad_row_rate']}, {world['batches_per_source']} batch "
        f"files per source; {made}."
    )
    heading = f"## {s['customers']:,} customers x {s['months']} months"
    if pipeline.get("error"):
        return [
            heading,
            "",
            f"{world_line} Generated in {_fmt(generation['seconds'])} s (peak "
            f"{_fmt(generation['peak_rss_mib'], 0)} MiB). **The pipeline did not finish** after "
            f"{_fmt(pipeline['seconds'])} s, peak {_fmt(pipeline['peak_rss_mib'], 0)} MiB: {pipeline['error']}.",
            "",
        ]
    lines = [
        heading,
        "",
        f"{world_line} Pipeline {'succeeded' if pipeline['succeeded'] else 'FAILED'}"
        + (f" (failed steps: {', '.join(pipeline['failed_steps'])})" if pipeline["failed_steps"] else "")
        + (f" (skipped: {', '.join(pipeline['skipped_steps'])})" if pipeline["skipped_steps"] else "")
        + f": **{_fmt(pipeline['seconds'])} s**, {_fmt(pipeline['rows_per_second'], 0)} rows / s, "
        f"peak {_fmt(pipeline['peak_rss_mib'], 0)} MiB (Dagster process {_fmt(pipeline['peak_worker_mib'], 0)} MiB, "
        f"dbt subprocess {_fmt(pipeline['peak_subprocesses_mib'], 0)} MiB at their own peaks).",
        "",
        "| stage | seconds | share of pipeline | peak RSS MiB | of which |",
        "|---|---:|---:|---:|---|",
    ]
    for name, stage in s["stages"].items():
        if not stage["present"]:
            why = "skipped (a blocking check failed)" if stage.get("skipped_steps") else "not present"
            lines.append(f"| {name} | {why} | | | |")
            continue
        detail = ", ".join(
            f"{k} {_fmt(v, 2)} s" if isinstance(v, int | float) else f"{k} {v}" for k, v in stage["detail"].items()
        )
        share = "" if stage["share"] is None else f"{100 * stage['share']:.1f} %"
        lines.append(
            f"| {name} | {_fmt(stage['seconds'], 2)} | {share} | {_fmt(stage['peak_rss_mib'], 0)} | {detail} |"
        )
    lines.append(
        f"| **pipeline total** | **{_fmt(pipeline['seconds'], 2)}** | 100 % "
        f"| **{_fmt(pipeline['peak_rss_mib'], 0)}** | |"
    )
    lines += [
        "",
        "| source | batch files | rows in files | loaded | quarantined | clean rows generated |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, rows in s["rows"].items():
        lines.append(
            f"| {name} | {rows['files']} | {rows['rows_in_files']:,} | {rows['rows_loaded']:,} "
            f"| {rows['rows_quarantined']:,} | {_fmt(rows['clean_rows_generated'], 0)} |"
        )
    dbt = s["dbt"]
    lines += [
        "",
        f"dbt ({dbt['threads']} threads): "
        + "; ".join(
            f"{name} {c['nodes']} nodes, {_fmt(c['shared_seconds'], 1)} s of wall time "
            f"({_fmt(c['busy_seconds'], 1)} s busy)"
            for name, c in dbt["categories"].items()
        )
        + ". By resource type: "
        + (
            ", ".join(
                f"{kind} {c['nodes']} ({_fmt(c['shared_seconds'], 1)} s)"
                for kind, c in dbt.get("resource_types", {}).items()
            )
            or "-"
        )
        + ". Slowest nodes: "
        + ", ".join(f"{dbt_node_name(n['node'])} {n['seconds']} s" for n in dbt["slowest"][:5])
        + ".",
        "",
        "Checks recorded in quality.check_runs by this run: "
        + ", ".join(f"{layer} {c['checks']:,} ({_fmt(c['seconds'], 1)} s)" for layer, c in s["check_runs"].items())
        + ".",
        "",
    ]
    if baseline.get("seconds") is None:
        lines += [f"Baseline: did not run ({baseline.get('error')}).", ""]
        return lines
    differences = baseline.get("differences") or []
    lines += [
        f"Baseline (`benchmarks/baseline_kpis.sql`, one DuckDB script on the landing files, in memory): "
        f"**{_fmt(baseline['seconds'], 2)} s**, peak {_fmt(baseline['peak_rss_mib'], 0)} MiB; the pipeline takes "
        f"**{_fmt(baseline['ratio'], 1)}x** as long (it also loads all ten sources with their checks, and builds "
        "every mart, segment and the dashboard). Its KPIs for segment `all` "
        + (
            f"equal the marts' in all {baseline['months']} months."
            if baseline.get("equal")
            else f"differ from the marts' in {len(differences)} values, e.g. {differences[:3]}."
        ),
        "",
    ]
    return lines


def machine_summary() -> dict:
    memory = psutil.virtual_memory().total / 1024**3
    return {
        "summary": f"{platform.machine()}, {os.cpu_count()} cores, {memory:.0f} GiB RAM, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}",
        "cores": os.cpu_count(),
        "memory_gib": round(memory, 1),
    }


def git_state() -> dict:
    def git(*args: str) -> str:
        found = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return found.stdout.strip() if found.returncode == 0 else ""

    return {"commit": git("rev-parse", "--short", "HEAD") or "unknown", "dirty": bool(git("status", "--porcelain"))}


def load_average() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def write_report(report: dict, report_dir: Path) -> Path:
    report["targets"] = targets(report["sizes"], report.get("daily"))
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / f"{REPORT_NAME}.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    page = report_dir / f"{REPORT_NAME}.md"
    page.write_text(render(report))
    return page


# --- workers (each in its own process) --------------------------------------------------


def generate_worker(args: argparse.Namespace) -> dict:
    from billing_world.generate import generate_world

    world, delivery = world_configs(args.customers, args.months)
    if args.held_back_days:
        delivery = replace(delivery, held_back_days=args.held_back_days)
    summary = generate_world(args.landing, world, delivery)
    return asdict(summary)


@contextmanager
def recording_dagster_instances() -> Iterator[list]:
    """orchestration.cli.run makes its own ephemeral Dagster instance and returns only
    whether the run succeeded; keep a handle on that instance so that the run's event
    log (step starts and ends) can be read afterwards. The run itself is untouched."""
    from unittest import mock

    import dagster as dg

    made: list = []
    original = dg.DagsterInstance.ephemeral

    def ephemeral(*args, **kwargs):
        instance = original(*args, **kwargs)
        made.append(instance)
        return instance

    with mock.patch.object(dg.DagsterInstance, "ephemeral", staticmethod(ephemeral)):
        yield made


def step_records(instance, run_id: str) -> list[dict]:
    """Every step of the run with its start, end and outcome, in start order."""
    steps: dict[str, dict] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or entry.step_key is None:
            continue
        kind = event.event_type_value
        step = steps.setdefault(entry.step_key, {"key": entry.step_key, "start": None, "end": None, "status": None})
        if kind == "STEP_START":
            step["start"] = entry.timestamp
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE"):
            step["end"] = entry.timestamp
            step["status"] = "success" if kind == "STEP_SUCCESS" else "failure"
        elif kind == "STEP_SKIPPED":
            step["status"] = "skipped"
    return sorted(steps.values(), key=lambda s: (s["start"] is None, s["start"] or 0.0))


def dbt_run_results(run_id: str) -> dict[str, list[dict]]:
    """Node windows per dbt step: dagster-dbt writes each invocation's artifacts to
    dbt_project/target/<op>-<run id[:7]>-<uuid>/ (DbtCliResource's unique target path)."""
    found = {}
    for path in sorted((DBT_PROJECT_DIR / "target").glob(f"*-{run_id[:7]}-*/run_results.json")):
        op_name = path.parent.name.rsplit("-", 2)[0]
        found[op_name] = dbt_node_windows(json.loads(path.read_text()))
    return found


def duckdb_settings(conn) -> dict:
    names = ("memory_limit", "threads", "temp_directory", "max_temp_directory_size")
    values = conn.execute("select " + ", ".join(f"current_setting('{n}')" for n in names)).fetchone()
    return dict(zip(names, values, strict=True))


def pipeline_worker(args: argparse.Namespace) -> dict:
    from orchestration.cli import run
    from orchestration.lib.check_runs import CHECK_RUNS_TABLE
    from orchestration.lib.loader import DUPLICATE_CONTENT, LOADED, MANIFEST_TABLE
    from orchestration.lib.warehouse import open_warehouse

    settings = SizePaths(args.size_root).settings
    with recording_dagster_instances() as instances:
        started = time.time()
        succeeded = run(settings)
        finished = time.time()
    instance = instances[0]
    (dagster_run,) = instance.get_runs(limit=1)
    run_id = dagster_run.run_id
    with open_warehouse(settings.warehouse_path, read_only=True) as conn:
        rows = conn.execute(
            f"""
            select
                source,
                count(*) filter (where status = ?) as files,
                count(*) filter (where status = ?) as duplicate_files,
                coalesce(sum(rows_in_file) filter (where status = ?), 0) as rows_in_files,
                coalesce(sum(rows_loaded), 0) as rows_loaded,
                coalesce(sum(rows_quarantined), 0) as rows_quarantined,
                count(*) filter (where status not in (?, ?)) as files_not_loaded
            from {MANIFEST_TABLE}
            group by source
            order by source
            """,
            [LOADED, DUPLICATE_CONTENT, LOADED, LOADED, DUPLICATE_CONTENT],
        ).fetchall()
        checks = conn.execute(
            f"select layer, count(*), coalesce(sum(duration_ms), 0) / 1000.0 from {CHECK_RUNS_TABLE} "
            "where run_id = ? group by layer order by layer",
            [run_id],
        ).fetchall()
        loader = duckdb_settings(conn)
    columns = ("files", "duplicate_files", "rows_in_files", "rows_loaded", "rows_quarantined", "files_not_loaded")
    return {
        "succeeded": succeeded,
        "run_id": run_id,
        "started_at": started,
        "finished_at": finished,
        "steps": step_records(instance, run_id),
        "dbt_nodes": dbt_run_results(run_id),
        "rows": {source: dict(zip(columns, map(int, values), strict=True)) for source, *values in rows},
        "check_runs": {layer: {"checks": n, "seconds": round(float(s), 2)} for layer, n, s in checks},
        "loader_duckdb": loader,
    }


def run_baseline(conn, landing: Path) -> tuple[list[str], list[tuple]]:
    """benchmarks/baseline_kpis.sql on `landing`: its columns and rows (one per month)."""
    conn.execute("set variable landing = ?", [str(landing)])
    result = conn.execute(BASELINE_SQL.read_text())
    rows = result.fetchall()
    return [d[0] for d in result.description], rows


def marts_all_kpis(conn) -> tuple[list[str], list[tuple]]:
    """The marts' `all` rows of the same KPIs, in the baseline's shape."""
    result = conn.execute(MARTS_ALL_KPIS_SQL)
    rows = result.fetchall()
    return [d[0] for d in result.description], rows


def kpi_differences(baseline: Sequence[tuple], marts: Sequence[tuple]) -> list[dict]:
    """Every (month, KPI) whose value differs, or month present on one side only."""
    by_month = {row[0]: row for row in marts}
    differences = []
    for row in baseline:
        other = by_month.pop(row[0], None)
        if other is None:
            differences.append({"month": str(row[0]), "kpi": "(month)", "baseline": "present", "marts": "missing"})
            continue
        for name, mine, theirs in zip(KPI_COLUMNS[1:], row[1:], other[1:], strict=True):
            if mine != theirs:
                differences.append({"month": str(row[0]), "kpi": name, "baseline": str(mine), "marts": str(theirs)})
    for month in by_month:
        differences.append({"month": str(month), "kpi": "(month)", "baseline": "missing", "marts": "present"})
    return differences


def baseline_worker(args: argparse.Namespace) -> dict:
    import duckdb

    from orchestration.lib.warehouse import open_warehouse

    temp_directory = args.warehouse.parent / "baseline.tmp"
    shutil.rmtree(temp_directory, ignore_errors=True)
    # In memory, with the pipeline's memory limit and a spill directory of its own.
    conn = duckdb.connect(config={"memory_limit": duckdb_memory_limit(), "temp_directory": str(temp_directory)})
    started = time.perf_counter()
    columns, rows = run_baseline(conn, args.landing)
    seconds = time.perf_counter() - started
    conn.close()
    shutil.rmtree(temp_directory, ignore_errors=True)
    if tuple(columns) != KPI_COLUMNS:
        raise SystemExit(f"{BASELINE_SQL} returned columns {columns}, expected {KPI_COLUMNS}")
    with open_warehouse(args.warehouse, read_only=True) as warehouse:
        _, marts = marts_all_kpis(warehouse)
    differences = kpi_differences(rows, marts)
    return {
        "seconds": round(seconds, 3),
        "months": len(rows),
        "equal": not differences,
        "differences": differences[:50],
        "latest": dict(zip(KPI_COLUMNS, map(str, rows[-1]), strict=True)) if rows else None,
    }


WORKERS = {"generate": generate_worker, "pipeline": pipeline_worker, "baseline": baseline_worker}


def probe_dbt_duckdb(warehouse: Path, scratch: Path) -> dict:
    """The DuckDB settings dbt's own connection has (profiles.yml), read through `dbt show`."""
    names = ("memory_limit", "threads", "temp_directory", "max_temp_directory_size")
    query = "select " + ", ".join(f"current_setting('{n}') as {n}" for n in names)
    command = [
        str(DBT_EXECUTABLE), "show", "--inline", query, "--output", "json", "--quiet", "--profiles-dir", ".",
        "--target-path", str(scratch / "target"), "--log-path", str(scratch / "logs"),
    ]  # fmt: skip
    found = subprocess.run(
        command,
        cwd=DBT_PROJECT_DIR,
        capture_output=True,
        text=True,
        env={**os.environ, "BILLING_WAREHOUSE_PATH": str(warehouse)},
    )
    if found.returncode != 0:
        return {"error": (found.stdout + found.stderr).strip()[-500:]}
    text = found.stdout
    (row,) = json.loads(text[text.index("{") :])["show"]
    return {name: row[name] for name in names}


# --- command line ---------------------------------------------------------------------


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected customer counts like 1000,10000, got {text!r}") from exc
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected customer counts >= 1, got {text!r}")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=_sizes, default=list(DEFAULT_SIZES), help="customer counts, comma separated")
    parser.add_argument("--include-300k", action="store_true", help=f"add {OPT_IN_SIZE:,} customers to the ladder")
    parser.add_argument("--months", type=int, default=36, help="months of history of every world")
    parser.add_argument("--root", type=Path, default=Path("/tmp/billing_scale"), help="worlds and warehouses")
    parser.add_argument("--report-dir", type=Path, default=ROOT / "docs" / "reports")
    parser.add_argument("--sample-ms", type=int, default=50, help="memory sampling interval")
    parser.add_argument("--note", default="", help="conditions of the run, printed at the top of the report")
    parser.add_argument("--render-only", action="store_true", help="rewrite scale.md from the existing scale.json")
    # one measured piece of work, run by the ladder in a subprocess of its own
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--size-root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--landing", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--warehouse", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--customers", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--held-back-days", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument(
        "--no-daily",
        action="store_true",
        help="skip the daily runs (one new day, then no new files) on a world of the largest size",
    )
    args = parser.parse_args(argv)

    if args.worker:
        result = WORKERS[args.worker](args)
        args.result.write_text(json.dumps(result, indent=2, default=str) + "\n")
        return 0
    if args.render_only:
        report = json.loads((args.report_dir / f"{REPORT_NAME}.json").read_text())
        print(f"wrote {write_report(report, args.report_dir)}")
        return 0

    sizes = sorted(set(args.sizes + ([OPT_IN_SIZE] if args.include_300k else [])))
    interval = args.sample_ms / 1000.0
    report = {
        "run_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "git": git_state(),
        "machine": {**machine_summary(), "load_at_start": load_average()},
        "note": args.note,
        "sample_ms": args.sample_ms,
        "duckdb": {},
        "sizes": [],
    }
    ok = True
    for customers in sizes:
        record = measure_size(customers, args.months, args.root.resolve(), interval)
        report["sizes"].append(record)
        ok = ok and record["pipeline"]["succeeded"] and bool(record["baseline"].get("equal"))
        if not report["duckdb"] and "loader_duckdb" in record:
            warehouse = SizePaths(Path(record["world"]["root"])).settings.warehouse_path
            report["duckdb"] = {
                "loader (orchestration/lib/warehouse.py)": record["loader_duckdb"],
                "dbt (dbt_project/profiles.yml)": probe_dbt_duckdb(warehouse, Path(record["world"]["root"]) / "dbt"),
            }
        report["machine"]["load_at_end"] = load_average()
        page = write_report(report, args.report_dir)
    if not args.no_daily and report["sizes"] and report["sizes"][-1]["pipeline"]["succeeded"]:
        largest = report["sizes"][-1]
        report["daily"] = measure_daily(
            largest["customers"], args.months, args.root.resolve(), interval, largest["pipeline"]["seconds"]
        )
        ok = ok and all(run["succeeded"] for run in report["daily"]["runs"].values())
        report["machine"]["load_at_end"] = load_average()
        page = write_report(report, args.report_dir)
    print(f"wrote {page} and {page.with_suffix('.json')}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
