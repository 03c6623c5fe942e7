"""`billing-analytics`: generate a demo world, run the pipeline, print where things are."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

from orchestration.lib.personal_data import install_console_redaction
from orchestration.lib.settings import PROJECT_ROOT, Settings

DEMO_DIR = PROJECT_ROOT / "data" / "demo"
# Exit code when another run holds the warehouse (EX_TEMPFAIL: try again later).
EXIT_LOCKED = 75


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}") from exc


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a share between 0 and 1, got {text}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text}")
    return value


def _add_world_flags(parser: argparse.ArgumentParser, customers: int, months: int) -> None:
    parser.add_argument("--customers", type=_positive, default=customers, help="customers to simulate")
    parser.add_argument("--months", type=_positive, default=months, help="months of history")
    parser.add_argument("--start", type=_date, default=dt.date(2024, 1, 1), help="first month, YYYY-MM-DD")
    parser.add_argument("--seed", type=int, default=7, help="random seed (same seed, same world)")
    parser.add_argument(
        "--anomaly-rate",
        type=_rate,
        default=0.01,
        help="share of eligible documents given each billing anomaly (0 = clean)",
    )
    parser.add_argument(
        "--bad-row-rate",
        type=_rate,
        default=0.002,
        help="share of rows delivered broken, to exercise quarantine (0 = none)",
    )
    parser.add_argument("--batches", type=_positive, default=4, help="batch files per source")


def _seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text}")
    return value


def _add_wait_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="when another run (CLI or Dagster) is using the same warehouse, wait up to SECONDS for it "
        f"(default 0: exit at once with code {EXIT_LOCKED} and a message naming the other run's pid and start time)",
    )


def generate(args: argparse.Namespace, landing_dir: Path) -> None:
    from billing_world.deliver import DeliveryConfig
    from billing_world.generate import generate_world
    from billing_world.simulate import WorldConfig

    if landing_dir.exists() and any(landing_dir.iterdir()) and not args.overwrite:
        sys.exit(f"error: {landing_dir} is not empty; pass --overwrite to replace its source and _truth folders")
    print(f"Generating {args.customers:,} customers x {args.months} months into {landing_dir} ...", flush=True)
    summary = generate_world(
        landing_dir,
        WorldConfig(
            customers=args.customers,
            months=args.months,
            start=args.start,
            seed=args.seed,
            anomaly_rate=args.anomaly_rate,
        ),
        DeliveryConfig(batches_per_source=args.batches, bad_row_rate=args.bad_row_rate, seed=args.seed),
    )
    rows = ", ".join(f"{name} {count:,}" for name, count in summary.rows_per_source.items())
    print(f"Simulated in {summary.seconds_simulate:.1f}s, delivered in {summary.seconds_deliver:.1f}s: {rows}")


def run(settings: Settings) -> bool:
    """Materialise every asset in-process; True when the run succeeded."""
    import dagster as dg

    from orchestration.definitions import build_definitions
    from orchestration.lib.kpi_summary import print_headline
    from orchestration.lib.run_report import print_load_summary

    started = time.perf_counter()
    print(f"Running the pipeline: {settings.landing_dir} -> {settings.warehouse_path}", flush=True)
    job = build_definitions(settings).resolve_job_def("billing_pipeline")
    result = job.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
    )
    print_load_summary(settings.warehouse_path)
    print_quality_report(settings, result.run_id)
    if result.success:
        print_headline(settings.warehouse_path)
    _print_publication(result, settings)
    seconds = time.perf_counter() - started
    if not result.success:
        failed = [step for step, _ in failed_steps(result)]
        print(
            f"Pipeline FAILED after {seconds:.0f}s; failed steps: {', '.join(failed) or 'see log above'}",
            file=sys.stderr,
        )
        return False
    print(f"Pipeline succeeded in {seconds:.0f}s.")
    return True


def print_quality_report(settings: Settings, run_id: str) -> None:
    """Write the data-quality report, failed run or not (under `dagster dev` the
    quality-report sensors do this); a report error is printed, never raised,
    so it cannot hide the pipeline's own outcome."""
    from orchestration.lib.quality_report import write_quality_report_for_warehouse

    try:
        path, report = write_quality_report_for_warehouse(settings.warehouse_path, settings.output_dir)
    except Exception as error:  # the run's result matters more than its report
        print(f"Could not write the data-quality report: {error!r}", file=sys.stderr)
        return
    latest = report.latest
    if latest is None:
        summary = "no checks recorded yet"
    elif latest.run_id != run_id:
        summary = f"this run recorded no checks; latest run {latest.run_id}"
    else:
        summary = f"{latest.checks:,} checks, {latest.failed_block:,} failed and block, {latest.failed_warn:,} warn"
    print(f"Data-quality report ({summary}): {path}")
    for failed in report.blocking_failures:
        rows = "" if failed.failing_rows is None else f" ({failed.failing_rows:,} failing)"
        print(f"  publication blocked by {failed.asset}: {failed.check_name}{rows}")


def _print_publication(result, settings: Settings) -> None:
    """Whether this run published the dashboard and the at-risk exports, and if not, what
    stopped publication: a failed step (a dbt model's error, from dbt's log) or a blocking check."""
    from orchestration.defs.publish.dashboard_asset import KPI_DASHBOARD_KEY
    from orchestration.defs.publish.exports_asset import AT_RISK_EXPORTS_KEY, MANIFEST_NAME, export_set_dir
    from orchestration.defs.transform.dbt_assets import marts_current_note

    materialized = {event.asset_key for event in result.get_asset_materialization_events()}
    if KPI_DASHBOARD_KEY in materialized:
        print(f"Dashboard published: {dashboard_page(settings)}")
    if AT_RISK_EXPORTS_KEY in materialized:
        print(f"At-risk exports published: {export_set_dir(settings.output_dir)}")
    if {KPI_DASHBOARD_KEY, AT_RISK_EXPORTS_KEY} <= materialized:
        return
    current = marts_current_note(result, str(settings.warehouse_path), dashboard_page(settings))
    if result.success and current:
        print(current)
        return
    published = {
        "Dashboard": (KPI_DASHBOARD_KEY, dashboard_page(settings)),
        "At-risk exports": (AT_RISK_EXPORTS_KEY, export_set_dir(settings.output_dir) / MANIFEST_NAME),
    }
    for name, (key, path) in published.items():
        if key not in materialized:
            kept = "the previous version is kept as it was" if path.exists() else "none was published before"
            print(f"{name} NOT updated by this run ({kept}).", file=sys.stderr)
    print("Publication stopped by:", file=sys.stderr)
    for step, reason in failed_steps(result):
        print(f"  step {step} failed: {reason}", file=sys.stderr)
    for evaluation in result.get_asset_check_evaluations():
        if evaluation.blocking and not evaluation.passed:
            print(
                f"  blocking check failed: {evaluation.asset_key.to_user_string()} {evaluation.check_name}"
                + (f": {evaluation.description}" if evaluation.description else ""),
                file=sys.stderr,
            )


DBT_ERRORS_HEADING = "Errors parsed from dbt logs:"


def failed_steps(result) -> list[tuple[str, str]]:
    """(step, why) of each failed step; for a dbt step, the errors dbt logged (model, file, message)."""
    failures = []
    for event in result.all_events:
        if event.event_type_value != "STEP_FAILURE":
            continue
        error = getattr(event.event_specific_data, "error", None)
        message = (error.message if error else "") or ""
        if DBT_ERRORS_HEADING in message:
            lines = message.split(DBT_ERRORS_HEADING, 1)[1].splitlines()
        else:
            lines = message.splitlines()[:1]
        reason = " ".join(line.strip() for line in lines if line.strip()) or "see the log above"
        failures.append((event.step_key, reason))
    return failures


def dashboard_page(settings: Settings) -> Path:
    from dashboards.publish import PAGE_NAME, dashboard_dir

    return dashboard_dir(settings.output_dir) / PAGE_NAME


def write_dashboard_snapshot(settings: Settings) -> None:
    """A PNG of the published page beside it (dashboards.snapshot), when Chromium is installed;
    a snapshot problem is printed, never raised: the HTML page is the product."""
    page = dashboard_page(settings)
    if not page.exists():
        return
    try:
        from dashboards.snapshot import write_snapshot

        snapshot = write_snapshot(page)
    except Exception as error:  # Playwright missing or the page failed to load: say so, go on
        print(f"No dashboard snapshot: {error!r}", file=sys.stderr)
        return
    if snapshot is None:
        print("No dashboard snapshot: Chromium is not installed (apt-get install chromium)", file=sys.stderr)


def print_where(settings: Settings) -> None:
    from orchestration.defs.publish.exports_asset import export_set_dir

    print("\nWhere things are:")
    print(f"  landing folder : {settings.landing_dir}")
    print(f"  warehouse      : {settings.warehouse_path}  (schemas raw, staging, intermediate, marts)")
    print(f"  load report    : {settings.output_dir / 'reports' / 'load_report.md'}")
    print(f"  quality report : {settings.output_dir / 'reports' / 'data_quality.html'}")
    page = dashboard_page(settings)
    if page.exists():
        print(f"  dashboard      : {page}  (opens in any browser, offline)")
        snapshot = page.with_name("dashboard.png")
        if snapshot.exists():
            print(f"  snapshot       : {snapshot}  (PNG of the page, 1366 px wide)")
    at_risk = export_set_dir(settings.output_dir)
    if (at_risk / "manifest.json").exists():
        print(f"  at-risk exports: {at_risk}  (one CSV + Parquet per segment; manifest.json lists them)")
        print("                   filter: .venv/bin/billing-analytics export at-risk --segment company_size=enterprise")
    print("  Dagster UI     : make ui  (then open http://127.0.0.1:3000)")


def export_at_risk(args: argparse.Namespace) -> int:
    """`billing-analytics export at-risk`: the at-risk customers of marts.customer_risk
    to CSV / Parquet (orchestration/lib/at_risk_export.py, docs/exports.md). Returns the
    exit code: 2 for a bad argument, 1 when there is no warehouse to read, each with one
    line on stderr."""
    import duckdb

    from orchestration.lib.at_risk_export import (
        AtRiskFilter,
        ExportArgumentError,
        WarehouseNotReady,
        export_defaults,
        parse_formats,
        parse_segments,
        risk_wording,
        select_at_risk,
        write_export,
    )
    from orchestration.lib.policy import load_policy
    from orchestration.lib.warehouse import open_warehouse

    def fail(message: str, code: int) -> int:
        print(f"billing-analytics export at-risk: error: {message}", file=sys.stderr)
        return code

    env = Settings.from_env()
    warehouse = (args.warehouse or env.warehouse_path).resolve()
    folder = (args.output or env.output_dir / "exports").resolve()
    policy = load_policy()
    try:
        formats = parse_formats(args.format)
        min_risk = export_defaults(policy).min_risk if args.min_risk is None else args.min_risk
        at_risk = AtRiskFilter(parse_segments(args.segment), min_risk, args.top, args.include_pii)
    except ExportArgumentError as error:
        return fail(str(error), 2)
    if not warehouse.is_file():
        return fail(f"no warehouse at {warehouse}: run `billing-analytics run` first", 1)
    try:
        with open_warehouse(warehouse, read_only=True) as conn:
            frame = select_at_risk(conn, at_risk, risk_wording(policy))
    except ExportArgumentError as error:
        return fail(str(error), 2)
    except WarehouseNotReady as error:
        return fail(f"{error} (warehouse {warehouse})", 1)
    except duckdb.IOException as error:  # a running pipeline holds the write lock
        return fail(f"cannot open {warehouse} read-only, is a pipeline run writing it? ({error})", 1)
    # the PII file gets its own name: it never overwrites, or passes for, the shareable one
    stem = "at_risk_customers_pii" if at_risk.include_pii else "at_risk_customers"
    files = write_export(frame, folder, stem, formats)
    as_of = f"{frame['as_of_month'][0]:%Y-%m}" if frame.height else "(no rows)"
    segments = ", ".join(f"{dim}={'|'.join(values)}" for dim, values in at_risk.segments.items()) or "all segments"
    top = f", top {at_risk.top_n}" if at_risk.top_n else ""
    pii = "WITH names and emails (personal data)" if at_risk.include_pii else "no names or emails"
    print(f"At-risk customers as of {as_of}: {segments}, min risk {at_risk.min_risk:g}{top}; {pii}")
    for exported in files:
        print(f"  {exported.path}  ({exported.rows:,} rows)")
    return 0


def main(argv: list[str] | None = None) -> int:
    install_console_redaction()
    parser = argparse.ArgumentParser(prog="billing-analytics", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    gen = commands.add_parser("generate", help="write a synthetic landing folder (with ground truth in _truth/)")
    gen.add_argument("--out", type=Path, required=True, help="landing folder to write")
    gen.add_argument("--overwrite", action="store_true", help="replace a non-empty landing folder")
    _add_world_flags(gen, customers=2000, months=24)

    run_cmd = commands.add_parser("run", help="load new landing files and build every model, in-process")
    run_cmd.add_argument("--landing", type=Path, help="landing folder (default: $BILLING_LANDING_DIR)")
    run_cmd.add_argument("--warehouse", type=Path, help="DuckDB file (default: $BILLING_WAREHOUSE_PATH)")
    run_cmd.add_argument("--output", type=Path, help="reports and exports (default: $BILLING_OUTPUT_DIR)")
    _add_wait_flag(run_cmd)

    demo = commands.add_parser("demo", help="generate a demo world under data/demo and run everything on it")
    _add_world_flags(demo, customers=2000, months=24)
    _add_wait_flag(demo)

    export = commands.add_parser("export", help="write extracts for other teams")
    exports = export.add_subparsers(dest="export", required=True)
    at_risk = exports.add_parser(
        "at-risk",
        help="at-risk customers (marts.customer_risk) to CSV and Parquet, by value at risk, drivers in words",
    )
    at_risk.add_argument(
        "--segment",
        action="append",
        default=[],
        metavar="DIM=VALUE",
        help="keep one segment, e.g. company_size=enterprise; repeatable (values of one dimension add up, "
        "dimensions narrow): company_size, region, tier, billing_period, acquisition_channel, tenure_band",
    )
    at_risk.add_argument(
        "--min-risk", type=float, help="lowest risk_score kept, 0..1 (default: exports.min_risk of the policy)"
    )
    at_risk.add_argument("--top", type=int, metavar="N", help="keep the N customers with the most value at risk")
    at_risk.add_argument(
        "--include-pii", action="store_true", help="add customer names and emails (left out by default)"
    )
    at_risk.add_argument("--output", type=Path, help="folder to write (default: $BILLING_OUTPUT_DIR/exports)")
    at_risk.add_argument("--format", default="csv,parquet", help="csv, parquet or both, comma-separated")
    at_risk.add_argument("--warehouse", type=Path, help="DuckDB file (default: $BILLING_WAREHOUSE_PATH)")

    args = parser.parse_args(argv)
    if args.command == "generate":
        generate(args, args.out.resolve())
        return 0
    if args.command == "export":
        return export_at_risk(args)
    if args.command == "run":
        env = Settings.from_env()
        settings = Settings(
            landing_dir=(args.landing or env.landing_dir).resolve(),
            warehouse_path=(args.warehouse or env.warehouse_path).resolve(),
            output_dir=(args.output or env.output_dir).resolve(),
        )
        if not settings.landing_dir.is_dir():
            parser.error(f"landing folder {settings.landing_dir} does not exist")
        return _locked(settings, args.wait, lambda: run_and_report(settings))
    # demo: a fresh world and warehouse every time, so the demo is repeatable
    settings = Settings(DEMO_DIR / "landing", DEMO_DIR / "warehouse.duckdb", DEMO_DIR / "output")
    args.overwrite = True

    def demo_run() -> int:
        generate(args, settings.landing_dir)
        for stale in (settings.warehouse_path, settings.warehouse_path.with_suffix(".duckdb.wal")):
            stale.unlink(missing_ok=True)
        return run_and_report(settings)

    return _locked(settings, args.wait, demo_run)


def run_and_report(settings: Settings) -> int:
    """Run the pipeline, snapshot the dashboard, say where things are; the exit code."""
    ok = run(settings)
    if ok:
        write_dashboard_snapshot(settings)
    print_where(settings)
    return 0 if ok else 1


def _locked(settings: Settings, wait_seconds: float, work) -> int:
    """`work()` while holding the warehouse's run lock (orchestration/lib/run_lock.py);
    EXIT_LOCKED with one line on stderr when another run holds it."""
    from orchestration.lib.run_lock import RunLockHeld, run_lock

    try:
        with run_lock(settings.warehouse_path, wait_seconds):
            return work()
    except RunLockHeld as error:
        print(f"billing-analytics: {error}", file=sys.stderr)
        return EXIT_LOCKED


if __name__ == "__main__":
    sys.exit(main())
