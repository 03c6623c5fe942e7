"""The data-quality report: quality.check_runs as a page an analyst can read.

`<output>/reports/data_quality.html` (self-contained: inline CSS, no scripts,
no external assets) and a short `data_quality.md`. The HTML holds, in order:
a summary of the latest run (checks passed and failed per layer and severity,
and which blocking checks stopped publication), the failing checks of that run
with their failing rows and examples, the latest status of every check, and
the history of the last runs.

"Latest run" is the run id whose newest row is the newest in the table. Both
files are rendered from the table alone, on a read-only connection, and
replaced atomically, so a dashboard or browser never sees half a report.

Examples, messages and targets are masked again as they are read
(orchestration/lib/personal_data.py): rows recorded before masking existed,
or by a writer that bypassed it, must not reach the page either.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from orchestration.lib.atomic_files import write_text_atomically
from orchestration.lib.check_runs import CHECK_RUNS_TABLE, QUALITY_SCHEMA
from orchestration.lib.personal_data import mask_examples, redact_optional
from orchestration.lib.warehouse import open_warehouse

REPORT_HTML = "data_quality.html"
REPORT_MARKDOWN = "data_quality.md"
HISTORY_RUNS = 20
# Where each layer sits in a pipeline run; the report lists layers in this order.
LAYER_ORDER = ("ingest", "dbt_test", "mart", "anomaly_gate")
LAYER_LABELS = {
    "ingest": "GX suites on ingested batches",
    "dbt_test": "dbt tests",
    "mart": "GX suites on published marts",
    "anomaly_gate": "billing-anomaly gate",
}
TARGETS_SHOWN = 3
EXAMPLE_CHARS = 200


@dataclass
class FailedCheck:
    layer: str
    asset: str
    check_name: str
    target: str | None
    severity: str
    rows_checked: int | None
    failing_rows: int | None
    examples: list
    message: str | None


@dataclass
class CheckStatus:
    """A check's outcome in the latest run that ran it, over all its targets in that run."""

    layer: str
    asset: str
    check_name: str
    targets: list[str]
    passed: bool
    severity: str
    failing_rows: int | None
    checked_at: dt.datetime
    run_id: str


@dataclass
class RunCounts:
    run_id: str
    first_checked_at: dt.datetime
    last_checked_at: dt.datetime
    checks: int
    passed: int
    failed_block: int
    failed_warn: int


@dataclass
class QualityReport:
    """Everything the report shows; `empty_reason` is set when there is nothing to show."""

    generated_at: dt.datetime
    empty_reason: str | None = None
    latest: RunCounts | None = None
    by_layer: list[tuple[str, str, int, int]] = field(default_factory=list)  # layer, severity, passed, failed
    failures: list[FailedCheck] = field(default_factory=list)
    statuses: list[CheckStatus] = field(default_factory=list)
    history: list[RunCounts] = field(default_factory=list)

    @property
    def blocking_failures(self) -> list[FailedCheck]:
        return [f for f in self.failures if f.severity == "block"]


def _layer_rank(layer: str) -> int:
    return LAYER_ORDER.index(layer) if layer in LAYER_ORDER else len(LAYER_ORDER)


def _table_exists(conn: duckdb.DuckDBPyConnection) -> bool:
    rows = conn.execute(
        "select 1 from information_schema.tables where table_schema = ? and table_name = 'check_runs'",
        [QUALITY_SCHEMA],
    ).fetchall()
    return bool(rows)


def _run_counts(conn: duckdb.DuckDBPyConnection, limit: int) -> list[RunCounts]:
    rows = conn.execute(
        f"""
        select run_id,
               min(checked_at),
               max(checked_at),
               count(*),
               count(*) filter (where passed),
               count(*) filter (where not passed and severity = 'block'),
               count(*) filter (where not passed and severity = 'warn')
        from {CHECK_RUNS_TABLE}
        group by run_id
        order by max(checked_at) desc, run_id desc
        limit ?
        """,
        [limit],
    ).fetchall()
    return [RunCounts(*row) for row in rows]


def load_quality_report(conn: duckdb.DuckDBPyConnection, history_runs: int = HISTORY_RUNS) -> QualityReport:
    """Read what the report shows from quality.check_runs (read-only queries only)."""
    report = QualityReport(generated_at=dt.datetime.now(dt.UTC).replace(tzinfo=None))
    if not _table_exists(conn):
        report.empty_reason = (
            f"No check results yet: the table {CHECK_RUNS_TABLE} does not exist in this warehouse "
            "(no pipeline run has recorded a check)."
        )
        return report
    report.history = _run_counts(conn, history_runs)
    if not report.history:
        report.empty_reason = f"No check results yet: the table {CHECK_RUNS_TABLE} is empty."
        return report
    report.latest = report.history[0]
    latest_run = report.latest.run_id

    report.by_layer = sorted(
        conn.execute(
            f"""
            select layer, severity, count(*) filter (where passed), count(*) filter (where not passed)
            from {CHECK_RUNS_TABLE}
            where run_id = ?
            group by layer, severity
            """,
            [latest_run],
        ).fetchall(),
        key=lambda row: (_layer_rank(row[0]), row[0], row[1]),
    )

    failures = conn.execute(
        f"""
        select layer, asset, check_name, target, severity, rows_checked, failing_rows, examples, message
        from {CHECK_RUNS_TABLE}
        where run_id = ? and not passed
        """,
        [latest_run],
    ).fetchall()
    report.failures = sorted(
        (_failed_check(*row) for row in failures),
        key=lambda f: (f.severity != "block", _layer_rank(f.layer), f.asset, f.check_name, f.target or ""),
    )

    statuses = conn.execute(
        f"""
        with latest_run_per_check as (
            select layer, asset, check_name, arg_max(run_id, checked_at) as run_id
            from {CHECK_RUNS_TABLE}
            group by layer, asset, check_name
        )
        select runs.layer,
               runs.asset,
               runs.check_name,
               list(distinct runs.target order by runs.target) filter (where runs.target is not null),
               bool_and(runs.passed),
               -- a failed check shows the severity it failed with; a passed one its own
               coalesce(min(runs.severity) filter (where not runs.passed), min(runs.severity)),
               sum(runs.failing_rows),
               max(runs.checked_at),
               runs.run_id
        from {CHECK_RUNS_TABLE} as runs
        inner join latest_run_per_check as latest
            on runs.layer = latest.layer
            and runs.asset = latest.asset
            and runs.check_name = latest.check_name
            and runs.run_id = latest.run_id
        group by runs.layer, runs.asset, runs.check_name, runs.run_id
        """
    ).fetchall()
    report.statuses = sorted(
        (
            CheckStatus(
                layer, asset, name, [redact_optional(t) for t in targets or []], passed, severity, failing, at, run_id
            )
            for layer, asset, name, targets, passed, severity, failing, at, run_id in statuses
        ),
        key=lambda s: (s.passed, _layer_rank(s.layer), s.asset, s.check_name),
    )
    return report


def _failed_check(layer, asset, check_name, target, severity, rows_checked, failing_rows, examples, message):
    """A failing check as shown: examples, message and target masked."""
    return FailedCheck(
        layer,
        asset,
        check_name,
        redact_optional(target),
        severity,
        rows_checked,
        failing_rows,
        examples=mask_examples(_examples(examples), asset),
        message=redact_optional(message),
    )


def _examples(raw: str | None) -> list:
    if not raw:
        return []
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return [raw]
    return value if isinstance(value, list) else [value]


# ---------------------------------------------------------------- rendering


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _time(value: dt.datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _count(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def _example_text(example: object) -> str:
    text = example if isinstance(example, str) else json.dumps(example, default=str, sort_keys=True)
    return text if len(text) <= EXAMPLE_CHARS else text[: EXAMPLE_CHARS - 1] + "…"


def _targets_text(targets: Sequence[str]) -> str:
    shown = ", ".join(targets[:TARGETS_SHOWN])
    more = len(targets) - TARGETS_SHOWN
    return f"{shown} (+{more} more)" if more > 0 else shown


def _blocked_sentence(report: QualityReport) -> str:
    names = [f"{f.asset}: {f.check_name}" + (f" ({f.target})" if f.target else "") for f in report.blocking_failures]
    return "Publication blocked by: " + "; ".join(names)


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
       max-width: 78rem; padding: 0 1rem; color: #1f2933; line-height: 1.4; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
.muted { color: #616e7c; } .verdict { padding: .7rem 1rem; border-radius: 6px; font-weight: 600; }
.verdict.block { background: #fde8e8; color: #8a1c1c; border: 1px solid #f5b5b5; }
.verdict.warn { background: #fff6e0; color: #7a5300; border: 1px solid #f3d58b; }
.verdict.ok { background: #e6f6ec; color: #1d6b3a; border: 1px solid #a9dcbc; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; margin-top: .5rem; }
th, td { border-bottom: 1px solid #e4e7eb; padding: .35rem .5rem; text-align: left; vertical-align: top; }
th { background: #f5f7fa; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.time { white-space: nowrap; }
.badge { display: inline-block; padding: 0 .45rem; border-radius: 4px; font-size: .8rem; font-weight: 600; }
.pass { background: #e6f6ec; color: #1d6b3a; } .fail-block { background: #fde8e8; color: #8a1c1c; }
.fail-warn { background: #fff6e0; color: #7a5300; }
code { font-size: .8rem; background: #f5f7fa; padding: 0 .2rem; border-radius: 3px; word-break: break-all; }
ul.examples { margin: 0; padding-left: 1rem; }
"""


def _badge(passed: bool, severity: str) -> str:
    if passed:
        return '<span class="badge pass">passed</span>'
    css = "fail-block" if severity == "block" else "fail-warn"
    label = "FAILED (blocks)" if severity == "block" else "failed (warns)"
    return f'<span class="badge {css}">{label}</span>'


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], classes: Mapping[int, str] | None = None) -> str:
    """A table from already-escaped cell HTML; `classes` styles columns by index (num, time)."""
    classes = classes or {}

    def cls(i: int) -> str:
        return f' class="{classes[i]}"' if i in classes else ""

    head = "".join(f"<th{cls(i)}>{_e(h)}</th>" for i, h in enumerate(headers))
    body = "\n".join("<tr>" + "".join(f"<td{cls(i)}>{c}</td>" for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def render_html(report: QualityReport) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Data quality report</title><style>{_CSS}</style></head><body>",
        "<h1>Data quality report</h1>",
        f'<p class="muted">From <code>{_e(CHECK_RUNS_TABLE)}</code>, generated {_e(_time(report.generated_at))}.</p>',
    ]
    latest = report.latest
    if latest is None:
        parts += [f'<p class="verdict warn">{_e(report.empty_reason)}</p>', "</body></html>"]
        return "\n".join(parts) + "\n"
    parts.append(
        f"<p>Latest run <code>{_e(latest.run_id)}</code>, checks recorded from {_e(_time(latest.first_checked_at))} "
        f"to {_e(_time(latest.last_checked_at))}: <strong>{latest.checks:,}</strong> checks, "
        f"<strong>{latest.passed:,}</strong> passed, <strong>{latest.failed_block:,}</strong> failed and block, "
        f"<strong>{latest.failed_warn:,}</strong> failed and only warn.</p>"
    )
    if report.blocking_failures:
        parts.append(f'<p class="verdict block">{_e(_blocked_sentence(report))}</p>')
    elif report.failures:
        parts.append('<p class="verdict warn">No blocking check failed; some checks only warn (below).</p>')
    else:
        parts.append('<p class="verdict ok">Every check of the latest run passed.</p>')

    parts.append(
        _table(
            ["layer", "severity", "passed", "failed"],
            [
                [f"{_e(LAYER_LABELS.get(layer, layer))} <code>{_e(layer)}</code>", _e(sev), _count(ok), _count(bad)]
                for layer, sev, ok, bad in report.by_layer
            ],
            classes={2: "num", 3: "num"},
        )
    )

    parts.append(f"<h2>Failing checks of the latest run ({len(report.failures):,})</h2>")
    if report.failures:
        parts.append(
            _table(
                ["status", "layer", "asset", "check", "target", "rows checked", "rows failing", "message", "examples"],
                [
                    [
                        _badge(False, f.severity),
                        _e(f.layer),
                        _e(f.asset),
                        f"<code>{_e(f.check_name)}</code>",
                        _e(f.target),
                        _count(f.rows_checked),
                        _count(f.failing_rows),
                        _e(f.message),
                        _examples_html(f.examples),
                    ]
                    for f in report.failures
                ],
                classes={5: "num", 6: "num"},
            )
        )
    else:
        parts.append("<p>None.</p>")

    parts.append(f"<h2>Latest status of every check ({len(report.statuses):,})</h2>")
    parts.append(
        '<p class="muted">Each check as of the latest run that ran it, over all its targets in that run; '
        "failed checks first.</p>"
    )
    parts.append(
        _table(
            ["status", "layer", "asset", "check", "target", "rows failing", "checked at"],
            [
                [
                    _badge(s.passed, s.severity),
                    _e(s.layer),
                    _e(s.asset),
                    f"<code>{_e(s.check_name)}</code>",
                    _e(_targets_text(s.targets)),
                    _count(s.failing_rows),
                    _e(_time(s.checked_at))
                    + ("" if s.run_id == latest.run_id else '<br><span class="muted">earlier run</span>'),
                ]
                for s in report.statuses
            ],
            classes={5: "num", 6: "time"},
        )
    )

    parts.append(f"<h2>History of the last {len(report.history)} runs</h2>")
    parts.append(
        _table(
            ["run", "checks recorded from", "checks", "passed", "failed (block)", "failed (warn)"],
            [
                [
                    f"<code>{_e(r.run_id)}</code>",
                    _e(_time(r.first_checked_at)),
                    _count(r.checks),
                    _count(r.passed),
                    _count(r.failed_block),
                    _count(r.failed_warn),
                ]
                for r in report.history
            ],
            classes={1: "time", 2: "num", 3: "num", 4: "num", 5: "num"},
        )
    )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _examples_html(examples: list) -> str:
    if not examples:
        return ""
    items = "".join(f"<li><code>{_e(_example_text(x))}</code></li>" for x in examples)
    return f'<ul class="examples">{items}</ul>'


def _md(value: object) -> str:
    """A Markdown table cell: markup and pipes escaped, one line."""
    return html.escape("" if value is None else str(value), quote=False).replace("|", "\\|").replace("\n", " ")


def render_markdown(report: QualityReport) -> str:
    lines = ["# Data quality", ""]
    latest = report.latest
    if latest is None:
        return "\n".join([*lines, report.empty_reason or "", ""])
    lines.append(
        f"Latest run `{latest.run_id}` ({_time(latest.last_checked_at)}): {latest.checks:,} checks, "
        f"{latest.passed:,} passed, {latest.failed_block:,} failed and block, {latest.failed_warn:,} failed and warn."
    )
    lines.append("")
    if report.blocking_failures:
        lines += [f"**{_md(_blocked_sentence(report))}**", ""]
    if report.failures:
        lines += [
            "| severity | layer | asset | check | target | rows failing | message |",
            "|---|---|---|---|---|---:|---|",
        ]
        lines += [
            f"| {f.severity} | {f.layer} | {_md(f.asset)} | {_md(f.check_name)} | {_md(f.target)} "
            f"| {_count(f.failing_rows)} | {_md(f.message)} |"
            for f in report.failures
        ]
    else:
        lines.append("Every check of the latest run passed.")
    lines += ["", f"Every check's latest status, examples and history: `{REPORT_HTML}`.", ""]
    return "\n".join(lines)


def write_report_files(report: QualityReport, output_dir: Path) -> Path:
    reports_dir = Path(output_dir) / "reports"
    reports_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomically(reports_dir / REPORT_MARKDOWN, render_markdown(report))
    html_path = reports_dir / REPORT_HTML
    write_text_atomically(html_path, render_html(report))
    return html_path


def write_quality_report(conn: duckdb.DuckDBPyConnection, output_dir: Path, history_runs: int = HISTORY_RUNS) -> Path:
    """Render `<output_dir>/reports/data_quality.{html,md}` from quality.check_runs; returns the HTML path.
    Only reads, so `conn` may be read-only."""
    return write_report_files(load_quality_report(conn, history_runs), output_dir)


def write_quality_report_for_warehouse(warehouse_path: Path, output_dir: Path) -> tuple[Path, QualityReport]:
    """Open the warehouse read-only and write the report; a warehouse that does not
    exist yet (the run stopped before creating it) gives a report that says so."""
    if not Path(warehouse_path).exists():
        report = QualityReport(
            generated_at=dt.datetime.now(dt.UTC).replace(tzinfo=None),
            empty_reason=f"No check results yet: the warehouse {warehouse_path} does not exist.",
        )
    else:
        with open_warehouse(Path(warehouse_path), read_only=True) as conn:
            report = load_quality_report(conn)
    return write_report_files(report, output_dir), report
