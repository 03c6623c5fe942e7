"""The dashboard page: one self-contained HTML file drawn from dashboards.data's dict.

Offline by construction: plotly.js is embedded once in the page, every figure
is a div that calls it, and nothing is fetched (no CDN, no fonts). One
segment selector (`#segment-dimension`) switches every segment-aware chart
between the segment dimensions: each trace carries its dimension in `meta`,
and the selector sets which traces are visible. Colours are the Okabe-Ito
palette (distinguishable with the common colour-vision deficiencies); good
and bad changes also differ by sign and arrow, never by colour alone. Laid out
for a 1366 x 768 screen.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

# Okabe & Ito (2008), without yellow (too faint on white) for lines.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000")
UNKNOWN_COLOUR = "#999999"
SEVERITY_COLOURS = {"block": "#D55E00", "warn": "#56B4E9"}
AR_BUCKET_COLOURS = ("#0072B2", "#56B4E9", "#E69F00", "#D55E00", "#CC79A7")
GOOD_COLOUR, BAD_COLOUR, NEUTRAL_COLOUR = "#0072B2", "#D55E00", "#555555"

DIMENSION_LABELS = {
    "all": "All customers",
    "company_size": "Company size",
    "region": "Region",
    "tier": "Plan tier",
    "billing_period": "Billing period",
    "acquisition_channel": "Acquisition channel",
    "tenure_band": "Tenure",
}
VALUE_LABELS = {
    "all": "All customers",
    "smb": "SMB",
    "emea": "EMEA",
    "apac": "APAC",
    "0-3m": "0-3 months",
    "3-12m": "3-12 months",
    "12-24m": "12-24 months",
    "24m+": "24+ months",
}
ANOMALY_LABELS = {
    "duplicate_charge": "Duplicate charge",
    "price_mismatch": "Price differs from price book",
    "proration_error": "Proration error",
    "discount_error": "Loyalty discount error",
    "tax_error": "Tax error",
    "total_mismatch": "Total differs from lines",
    "currency_mismatch": "Currency mismatch",
    "missed_invoice": "Missed invoice",
    "invoice_after_cancellation": "Invoiced after cancellation",
    "amount_spike": "Amount spike",
}
# What each trend chart shows: a short title, and a subtitle with the definition.
TREND_TITLES = {
    "invoice_error_rate": ("Invoice errors per 100 invoices", "error credit note or error ticket, by month issued"),
    "dso": ("Days sales outstanding", "AR at month end / credit sales x days in month"),
    "logo_churn": ("Logo churn", "share of customers at the month start who left in the month"),
    "nrr": ("Net revenue retention", "starting MRR kept, with expansion, by month end"),
    "mrr": ("Monthly recurring revenue", "at month end, USD"),
    "clv": ("Customer lifetime value", "sBG retention model, discounted, USD"),
}
# plotly axis tick and hover formats per unit (d3-format)
AXIS_FORMATS = {
    "percent": {"tickformat": ".1%", "hover": "%{y:.2%}"},
    "per_100": {"tickformat": ".1f", "hover": "%{y:.2f} per 100"},
    "days": {"tickformat": ".0f", "ticksuffix": " d", "hover": "%{y:.1f} days"},
    "usd": {"tickformat": "$~s", "hover": "%{y:$,.0f}"},
}
CHART_HEIGHT = 290
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"


# --- numbers for people ------------------------------------------------------------------


def format_usd(value: float | None) -> str:
    if value is None:
        return "n/a"
    magnitude = abs(value)
    sign = "-" if value < 0 else ""
    if magnitude >= 1e6:
        return f"{sign}${magnitude / 1e6:,.2f}M"
    if magnitude >= 1e4:
        return f"{sign}${magnitude / 1e3:,.1f}k"
    return f"{sign}${magnitude:,.0f}"


def format_value(value: float | None, unit: str) -> str:
    """A KPI value as a person reads it: $2.25M, 5.4%, 13.6 days, 3.52 per 100."""
    if value is None:
        return "n/a"
    if unit == "usd":
        return format_usd(value)
    if unit == "percent":
        return f"{value:.1%}"
    if unit == "days":
        return f"{value:,.1f} days"
    if unit == "per_100":
        return f"{value:.2f} per 100"
    raise ValueError(f"unknown unit {unit!r}")


def format_change(change: float | None, relative_change: float | None, unit: str) -> str:
    """A month-on-month change with its sign: +0.4 pp, -1.2 days, +$103.7k (+4.8%)."""
    if change is None:
        return "no previous month"
    if unit == "percent":
        return f"{100 * change:+.1f} pp"
    if unit == "days":
        return f"{change:+,.1f} days"
    if unit == "per_100":
        return f"{change:+.2f} per 100"
    if unit == "usd":
        text = ("+" if change >= 0 else "") + format_usd(change)
        return text if relative_change is None else f"{text} ({relative_change:+.1%})"
    raise ValueError(f"unknown unit {unit!r}")


def change_tone(change: float | None, better: str) -> str:
    """good, bad or flat, from the sign of the change and which way is better."""
    if change is None or math.isclose(change, 0.0, abs_tol=1e-12):
        return "flat"
    return "good" if (change > 0) == (better == "up") else "bad"


def month_label(iso_month: str) -> str:
    return dt.date.fromisoformat(iso_month).strftime("%b %Y")


def segment_label(value: str) -> str:
    return VALUE_LABELS.get(value, value.replace("_", " ").capitalize())


# --- figures -------------------------------------------------------------------------------


def _layout(figure: go.Figure, title: str, subtitle: str | None = None, **axes: Any) -> go.Figure:
    heading: dict[str, Any] = {"text": title, "font": {"size": 14}, "x": 0.01, "xanchor": "left"}
    if subtitle:
        heading["subtitle"] = {"text": subtitle, "font": {"size": 11.5, "color": "#555"}}
    figure.update_layout(
        title=heading,
        height=CHART_HEIGHT,
        margin={"l": 56, "r": 12, "t": 58 if subtitle else 40, "b": 36},
        font={"family": FONT, "size": 12, "color": "#222"},
        paper_bgcolor="white",
        plot_bgcolor="white",
        legend={"orientation": "h", "y": -0.18, "x": 0, "font": {"size": 11}, "traceorder": "normal"},
        **({"hovermode": "x unified"} | axes),
    )
    figure.update_xaxes(showgrid=False, linecolor="#bbb")
    figure.update_yaxes(gridcolor="#eee", zerolinecolor="#ccc")
    return figure


def _colour(index: int, value: str) -> str:
    return UNKNOWN_COLOUR if value == "unknown" else PALETTE[index % len(PALETTE)]


def trend_figure(key: str, trend: dict[str, Any], months: list[str], segments: dict[str, list[str]]) -> go.Figure:
    """One line per segment value of every dimension; only `all` visible until the selector changes it."""
    formats = AXIS_FORMATS[trend["unit"]]
    figure = go.Figure()
    for dimension, values in segments.items():
        for index, value in enumerate(values):
            figure.add_trace(
                go.Scatter(
                    x=months,
                    y=trend["by_segment"][dimension][value],
                    name=segment_label(value),
                    meta=dimension,
                    visible=dimension == "all",
                    mode="lines+markers",
                    marker={"size": 4},
                    line={"color": _colour(index, value), "width": 2},
                    hovertemplate=f"{formats['hover']}<extra>{html.escape(segment_label(value))}</extra>",
                )
            )
    yaxis = {"tickformat": formats["tickformat"]}
    if "ticksuffix" in formats:
        yaxis["ticksuffix"] = formats["ticksuffix"]
    title, subtitle = TREND_TITLES.get(key, (trend["label"], None))
    return _layout(figure, title, subtitle, yaxis=yaxis, xaxis={"tickformat": "%b %Y"})


def ar_aging_figure(ar_aging: dict[str, Any], segments: dict[str, list[str]]) -> go.Figure:
    """Stacked bars: AR at the as-of month end by days overdue, one bar per segment value."""
    figure = go.Figure()
    for dimension, values in segments.items():
        labels = [segment_label(value) for value in values]
        for bucket, colour in zip(ar_aging["buckets"], AR_BUCKET_COLOURS, strict=True):
            amounts = [ar_aging["by_segment"][dimension][value][bucket["column"]][-1] for value in values]
            figure.add_trace(
                go.Bar(
                    x=labels,
                    y=amounts,
                    name=bucket["label"],
                    meta=dimension,
                    visible=dimension == "all",
                    marker={"color": colour},
                    hovertemplate="%{y:$,.0f}<extra>" + html.escape(bucket["label"]) + "</extra>",
                )
            )
    return _layout(
        figure,
        f"Accounts receivable at the end of {month_label(ar_aging['month'])}",
        "USD by days past due",
        barmode="stack",
        yaxis={"tickformat": "$~s"},
        hovermode="closest",
    )


def overdue_share_figure(ar_aging: dict[str, Any], months: list[str], segments: dict[str, list[str]]) -> go.Figure:
    """One line per segment value: the share of AR past due at each month end."""
    figure = go.Figure()
    for dimension, values in segments.items():
        for index, value in enumerate(values):
            figure.add_trace(
                go.Scatter(
                    x=months,
                    y=ar_aging["by_segment"][dimension][value]["overdue_share"],
                    name=segment_label(value),
                    meta=dimension,
                    visible=dimension == "all",
                    mode="lines+markers",
                    marker={"size": 4},
                    line={"color": _colour(index, value), "width": 2},
                    hovertemplate="%{y:.1%} overdue<extra>" + html.escape(segment_label(value)) + "</extra>",
                )
            )
    return _layout(
        figure,
        "Overdue receivables",
        "share of AR past due at month end",
        yaxis={"tickformat": ".0%", "rangemode": "tozero"},
        xaxis={"tickformat": "%b %Y"},
    )


def anomaly_types_figure(anomalies: dict[str, Any]) -> go.Figure:
    """Horizontal bars: USD at stake per anomaly type in the as-of month, coloured by severity."""
    rows = sorted(anomalies["by_type"], key=lambda row: row["amount_at_stake_usd"])
    figure = go.Figure()
    for severity, colour in SEVERITY_COLOURS.items():
        shown = [row for row in rows if row["severity"] == severity]
        figure.add_trace(
            go.Bar(
                orientation="h",
                y=[ANOMALY_LABELS.get(row["anomaly_type"], row["anomaly_type"]) for row in shown],
                x=[row["amount_at_stake_usd"] for row in shown],
                text=[f"{row['anomalies']} ({format_usd(row['amount_at_stake_usd'])})" for row in shown],
                textposition="auto",
                name=f"{severity}: {'stops the document' if severity == 'block' else 'for review'}",
                marker={"color": colour},
                hovertemplate="%{x:$,.2f} at stake<br>%{text}<extra></extra>",
            )
        )
    figure = _layout(
        figure,
        f"Billing anomalies detected in {month_label(anomalies['month'])}",
        "USD at stake by type; bar labels: count (USD)",
        xaxis={"tickformat": "$~s"},
        hovermode="closest",
        barmode="relative",
    )
    figure.update_yaxes(categoryorder="array", categoryarray=[ANOMALY_LABELS.get(r["anomaly_type"]) for r in rows])
    figure.update_layout(margin={"l": 190})
    return figure


def anomaly_trend_figure(anomalies: dict[str, Any]) -> go.Figure:
    """Stacked bars: USD at stake per month of detection, by severity."""
    figure = go.Figure()
    for severity, colour in SEVERITY_COLOURS.items():
        shown = [row for row in anomalies["trend"] if row["severity"] == severity]
        figure.add_trace(
            go.Bar(
                x=[row["month"] for row in shown],
                y=[row["amount_at_stake_usd"] for row in shown],
                customdata=[row["anomalies"] for row in shown],
                name=severity,
                marker={"color": colour},
                hovertemplate="%{y:$,.0f} in %{customdata} anomalies<extra>" + severity + "</extra>",
            )
        )
    return _layout(
        figure,
        "Billing anomalies by month",
        "USD at stake by month detected and severity",
        barmode="stack",
        yaxis={"tickformat": "$~s"},
        xaxis={"tickformat": "%b %Y"},
    )


def _figure_div(figure: go.Figure, div_id: str) -> str:
    return pio.to_html(
        figure,
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        default_width="100%",
        default_height=f"{CHART_HEIGHT}px",
        config={"displayModeBar": False, "responsive": True},
    )


# --- HTML pieces ----------------------------------------------------------------------------


def _tiles_html(data: dict[str, Any]) -> str:
    previous = month_label(data["previous_month"])
    cards = []
    for tile in data["tiles"]:
        tone = change_tone(tile["change"], tile["better"])
        arrow = "&#9644;" if tone == "flat" else ("&#9650;" if tile["change"] > 0 else "&#9660;")
        cards.append(
            f"""<div class="tile" data-kpi="{html.escape(tile["key"])}" title="{html.escape(tile["description"])}">
  <div class="tile-label">{html.escape(tile["label"])}</div>
  <div class="tile-value">{html.escape(format_value(tile["value"], tile["unit"]))}</div>
  <div class="tile-change {tone}">{arrow} {
                html.escape(format_change(tile["change"], tile["relative_change"], tile["unit"]))
            }
    <span class="muted">vs {previous} ({html.escape(format_value(tile["previous"], tile["unit"]))})</span></div>
</div>"""
        )
    return "\n".join(cards)


def _quality_html(data: dict[str, Any]) -> str:
    loads, checks = data["quality"]["loads"], data["quality"]["checks"]
    parts = [f"<span><b>Data as of</b> {month_label(data['as_of_month'])}</span>"]
    if loads["available"] and loads.get("last_load_at"):
        parts.append(
            f"<span><b>Last load</b> {html.escape(loads['last_load_at'][:16])} UTC: "
            f"{loads['rows_loaded']:,} rows in {loads['batches_loaded']:,} batches, "
            f"{loads['rows_quarantined']:,} quarantined"
            + (
                f", <b class='bad'>{loads['unreadable_files']} unreadable files</b>"
                if loads["unreadable_files"]
                else ""
            )
            + "</span>"
        )
    else:
        parts.append("<span><b>Last load</b> no load manifest</span>")
    if checks["available"] and checks.get("checks_run"):
        status_class = "bad" if checks["failed"] else "good"
        parts.append(
            f"<span><b>Checks</b> <b class='{status_class}'>{checks['passed']} passed, {checks['failed']} failed"
            f"</b> ({checks['blocking_failed']} blocking) at {html.escape(str(checks['last_checked_at'])[:16])} UTC"
            "</span>"
        )
        gate = checks.get("anomaly_gate")
        if gate:
            parts.append(
                f"<span><b>Anomaly gate</b> <b class='{'good' if gate['passed'] else 'bad'}'>"
                f"{'passed' if gate['passed'] else 'FAILED'}</b></span>"
            )
    else:
        parts.append("<span><b>Checks</b> no check history yet (quality.check_runs)</span>")
    strip = "\n".join(parts)
    failures = ""
    if checks.get("failures"):
        items = "".join(
            f"<li>{html.escape(f['asset'])} / {html.escape(f['check_name'])} ({html.escape(f['severity'])}): "
            f"{html.escape(f['message'] or '')}</li>"
            for f in checks["failures"]
        )
        failures = f"<ul class='failures'>{items}</ul>"
    return f"<div class='strip'>{strip}</div>{failures}"


def _anomaly_summary_html(anomalies: dict[str, Any], gate: dict[str, Any] | None) -> str:
    block, warn = anomalies["totals"]["block"], anomalies["totals"]["warn"]
    summary = (
        f"<p><b>{block['anomalies'] + warn['anomalies']:,}</b> anomalies detected in "
        f"{month_label(anomalies['month'])}: <b>{block['anomalies']:,} block</b> "
        f"({format_usd(block['amount_at_stake_usd'])} at stake) and {warn['anomalies']:,} warn "
        f"({format_usd(warn['amount_at_stake_usd'])}).</p>"
    )
    if gate and gate.get("message"):
        summary += f"<p class='muted gate'>Publication gate: {html.escape(gate['message'])}.</p>"
    return summary


def _top_invoices_html(anomalies: dict[str, Any]) -> str:
    if not anomalies["top_invoices"]:
        return f"<p class='muted'>No anomalies detected in {month_label(anomalies['month'])}.</p>"
    rows = "".join(
        f"<tr><td>{html.escape(row['invoice_id'])}</td><td>{html.escape(row['customer_id'])}</td>"
        f"<td>{html.escape(row['detected_at'][:10])}</td>"
        f"<td>{html.escape(', '.join(ANOMALY_LABELS.get(t, t) for t in row['anomaly_types']))}</td>"
        f"<td class='sev-{row['severity']}'>{row['severity']}</td>"
        f"<td class='num'>${row['amount_at_stake_usd']:,.2f}</td></tr>"
        for row in anomalies["top_invoices"]
    )
    return (
        f"<table class='top'><caption>Invoices with the most USD at stake in {month_label(anomalies['month'])}"
        "</caption><thead><tr><th>Invoice</th><th>Customer</th><th>Detected</th><th>Anomalies</th>"
        f"<th>Severity</th><th class='num'>USD at stake</th></tr></thead><tbody>{rows}</tbody></table>"
    )


CSS = (
    f":root {{ --font: {FONT}; --good: {GOOD_COLOUR}; --bad: {BAD_COLOUR}; --neutral: {NEUTRAL_COLOUR}; }}"
    + """
* { box-sizing: border-box; }
body { margin: 0; font-family: var(--font); color: #222; background: #f5f6f8; font-size: 14px; }
header { background: #1f2a36; color: #fff; padding: 10px 20px; display: flex; align-items: center;
         justify-content: space-between; gap: 16px; flex-wrap: wrap; }
header h1 { font-size: 18px; margin: 0; font-weight: 600; }
header label { font-size: 13px; }
header select { font-size: 14px; padding: 3px 6px; margin-left: 6px; }
main { max-width: 1340px; margin: 0 auto; padding: 10px 16px 24px; }
.strip { display: flex; flex-wrap: wrap; gap: 6px 22px; font-size: 13px; background: #fff;
         border: 1px solid #ddd; border-radius: 6px; padding: 7px 12px; }
.tiles { display: grid; grid-template-columns: repeat(6, minmax(0, 1fr)); gap: 10px; margin: 10px 0; }
.tile { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 9px 12px; }
.tile-label { font-size: 13px; color: #444; }
.tile-value { font-size: 24px; font-weight: 650; margin: 2px 0; white-space: nowrap; }
.tile-change { font-size: 12.5px; font-weight: 600; }
.tile-change .muted { font-weight: 400; display: block; }
.good { color: var(--good); } .bad { color: var(--bad); } .flat { color: var(--neutral); }
.muted { color: #666; }
h2 { font-size: 16px; margin: 16px 0 6px; }
.grid { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 10px; }
.grid3 { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 10px; }
.card { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 4px; min-width: 0; }
table.top { border-collapse: collapse; width: 100%; background: #fff; font-size: 13px; }
table.top caption { text-align: left; font-weight: 600; padding: 6px 0; }
table.top th, table.top td { border-bottom: 1px solid #e3e3e3; padding: 4px 8px; text-align: left; }
table.top .num { text-align: right; font-variant-numeric: tabular-nums; }
.sev-block { color: var(--bad); font-weight: 600; } .sev-warn { color: #2a6f97; }
ul.failures { margin: 6px 0; color: var(--bad); font-size: 13px; }
p.gate { margin: 6px 2px; font-size: 13px; }
footer { font-size: 12px; color: #666; margin-top: 18px; }
@media (max-width: 1100px) { .tiles { grid-template-columns: repeat(3, minmax(0, 1fr)); }
                             .grid3 { grid-template-columns: repeat(2, minmax(0, 1fr)); } }
"""
)

# Shows the traces of the chosen dimension in every segment-aware chart.
SELECTOR_JS = """
(function () {
  var select = document.getElementById('segment-dimension');
  var labels = %(labels)s;
  function show(dimension) {
    document.querySelectorAll('.segment-chart .js-plotly-plot').forEach(function (chart) {
      Plotly.restyle(chart, {visible: chart.data.map(function (trace) { return trace.meta === dimension; })});
    });
    document.querySelectorAll('.segment-name').forEach(function (node) {
      node.textContent = labels[dimension] || dimension;
    });
  }
  select.addEventListener('change', function () { show(select.value); });
  show(select.value);
})();
"""


def render_dashboard(data: dict[str, Any]) -> str:
    """The whole page as one HTML string (plotly.js inline)."""
    segments = data["segments"]
    options = "".join(
        f"<option value='{html.escape(dimension)}'>{html.escape(DIMENSION_LABELS.get(dimension, dimension))}</option>"
        for dimension in segments
    )
    trend_divs = "".join(
        f"<div class='card segment-chart'>"
        f"{_figure_div(trend_figure(key, trend, data['months'], segments), f'trend-{key}')}</div>"
        for key, trend in data["trends"].items()
    )
    anomalies = data["anomalies"]
    ar_div = _figure_div(ar_aging_figure(data["ar_aging"], segments), "ar-aging")
    overdue_div = _figure_div(overdue_share_figure(data["ar_aging"], data["months"], segments), "ar-overdue-share")
    labels = json.dumps({dimension: DIMENSION_LABELS.get(dimension, dimension).lower() for dimension in segments})
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Billing KPIs, {month_label(data["as_of_month"])}</title>
<style>{CSS}</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head>
<body>
<header>
  <h1>Billing and retention KPIs, {month_label(data["as_of_month"])}</h1>
  <label for="segment-dimension">Segment charts by <select id="segment-dimension">{options}</select></label>
</header>
<main>
<section id="quality">{_quality_html(data)}</section>
<section class="tiles" id="tiles">{_tiles_html(data)}</section>
<h2>Monthly trends, <span class="segment-name">all customers</span></h2>
<section class="grid3" id="trends">{trend_divs}</section>
<h2>Billing anomalies</h2>
<section id="anomalies">
{_anomaly_summary_html(anomalies, data["quality"]["checks"].get("anomaly_gate"))}
<div class="grid">
  <div class="card">{_figure_div(anomaly_types_figure(anomalies), "anomalies-by-type")}</div>
  <div class="card">{_figure_div(anomaly_trend_figure(anomalies), "anomalies-trend")}</div>
</div>
{_top_invoices_html(anomalies)}
</section>
<h2>Accounts receivable aging, <span class="segment-name">all customers</span></h2>
<section class="grid" id="ar">
  <div class="card segment-chart">{ar_div}</div>
  <div class="card segment-chart">{overdue_div}</div>
</section>
<footer>Generated {html.escape(data["generated_at"])} UTC from the warehouse marts (marts.kpi_*,
marts.billing_anomalies). Money in USD. The numbers behind every chart: dashboard_data.json beside this page.
</footer>
</main>
<script type="text/javascript">{SELECTOR_JS % {"labels": labels}}</script>
</body>
</html>
"""
