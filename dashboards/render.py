"""The dashboard page: one self-contained HTML file drawn from dashboards.data's dict.

Offline by construction: plotly.js is embedded once in the page, every figure
is a div that calls it, and nothing is fetched (no CDN, no fonts). One
segment selector (`#segment-dimension`) switches every segment-aware chart
between the segment dimensions: each trace carries its dimension (and segment
value) in `meta`, and the selector sets which traces are visible and which
legend and notes show. Colours are the Okabe-Ito palette (distinguishable with
the common colour-vision deficiencies), and segment lines also differ by
marker shape; good and bad changes also differ by sign and arrow, never by
colour alone.

Laid out for a 1366 x 768 screen: the quality strip, the six tiles and all six
trend charts fit on the first screen; anomalies and AR aging follow. Chart
titles and subtitles are HTML (they wrap, and never collide with tick labels);
the trend charts share one HTML legend per dimension instead of six plotly
legends eating plot height.
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
# A second cue besides colour: segment i gets PALETTE[i] and MARKERS[i] (plotly symbol, legend glyph).
MARKERS = (
    ("circle", "&#9679;"),
    ("square", "&#9632;"),
    ("diamond", "&#9670;"),
    ("triangle-up", "&#9650;"),
    ("cross", "+"),
    ("x", "&#215;"),
    ("star", "&#9733;"),
)
UNKNOWN_COLOUR = "#999999"
SEVERITY_COLOURS = {"block": "#D55E00", "warn": "#56B4E9"}
SEVERITY_NAMES = {"block": "block: stops the document", "warn": "warn: for review"}
# Not yet due -> 90+ days: cool to hot, and light/dark alternating so neighbours differ in greyscale too.
AR_BUCKET_COLOURS = ("#0072B2", "#56B4E9", "#E69F00", "#D55E00", "#CC79A7")
GOOD_COLOUR, BAD_COLOUR, NEUTRAL_COLOUR = "#0072B2", "#D55E00", "#555555"
TEXT_COLOUR, MUTED_COLOUR, GRID_COLOUR = "#222222", "#555555", "#ececec"

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
    "mid_market": "Mid-market",
    "north_america": "North America",
    "latin_america": "Latin America",
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
    "invoice_error_rate": (
        "Invoice errors per 100 invoices",
        "with an error credit note or error ticket, by month issued",
    ),
    "dso": ("Days sales outstanding", "AR at month end / credit sales x days in month"),
    "logo_churn": ("Logo churn", "share of customers at the month start who left in the month"),
    "nrr": ("Net revenue retention", "starting MRR kept, with expansion, by month end"),
    "mrr": ("Monthly recurring revenue", "USD at month end"),
    "clv": ("Customer lifetime value", "USD, sBG retention model, discounted"),
}
# plotly axis tick and hover formats per unit (d3-format; `~` drops trailing zeros: 5, 2.5)
AXIS_FORMATS = {
    "percent": {"tickformat": ".1~%", "hover": "%{y:.1%}"},
    "per_100": {"tickformat": ".3~g", "hover": "%{y:.2f} per 100"},
    "days": {"tickformat": ".0f", "ticksuffix": " days", "hover": "%{y:.1f} days"},
    "usd": {"tickformat": "$~s", "hover": "%{y:$,.0f}"},
}
# SI prefixes would turn $0.5 into "$500m" (milli): small steps get plain dollars.
USD_TICK_FORMATS = [
    {"dtickrange": [None, 1], "value": "$,.2f"},
    {"dtickrange": [1, 1000], "value": "$,.0f"},
    {"dtickrange": [1000, None], "value": "$~s"},
]
# The AR chart keeps room for this many bars, so one segment (`all`) is a bar, not a wall of colour.
AR_BAR_SLOTS = 5
TREND_HEIGHT = 200
PANEL_HEIGHT = 270
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
PLOT_CONFIG = {"displayModeBar": False, "responsive": True}


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


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """1 batch, 31 batches."""
    return f"{count:,} {noun if count == 1 else (nouns or noun + 's')}"


# --- figures -------------------------------------------------------------------------------


def _layout(figure: go.Figure, height: int, **layout: Any) -> go.Figure:
    """The common look: no plotly title (the card's HTML caption says what the chart shows)."""
    figure.update_layout(
        height=height,
        margin={"l": 62, "r": 24, "t": 10, "b": 30},
        font={"family": FONT, "size": 12, "color": TEXT_COLOUR},
        paper_bgcolor="white",
        plot_bgcolor="white",
        showlegend=False,
        hoverlabel={"font": {"family": FONT, "size": 12}},
        **({"hovermode": "x unified"} | layout),
    )
    # Fixed margins, no automargin: plotly's automargin can oscillate (tick labels move the margin,
    # the margin moves the ticks) and gives up with a console warning.
    figure.update_xaxes(showgrid=False, linecolor="#bbb", automargin=False)
    # no zero line: on a chart whose range starts at 0 it doubles the x axis line
    figure.update_yaxes(gridcolor=GRID_COLOUR, zeroline=False, automargin=False)
    return figure


def _month_axis(months: list[str]) -> dict[str, Any]:
    """Monthly x axis ending half a month after the last month: plotly's own padding reaches into
    the next month and draws a tick label there that the chart's edge cuts in half."""
    # the standoff keeps the first month's label clear of the value axis' bottom label ($0 / Jan 2024)
    axis: dict[str, Any] = {"tickformat": "%b %Y", "hoverformat": "%b %Y", "ticklabelstandoff": 6}
    if months:
        half_month = dt.timedelta(days=15)
        first, last = dt.date.fromisoformat(months[0]), dt.date.fromisoformat(months[-1])
        axis["range"] = [(first - half_month).isoformat(), (last + half_month).isoformat()]
    return axis


def _value_axis(unit: str) -> dict[str, Any]:
    formats = AXIS_FORMATS[unit]
    if unit == "usd":
        return {"tickformatstops": USD_TICK_FORMATS}
    axis = {"tickformat": formats["tickformat"]}
    if "ticksuffix" in formats:
        axis["ticksuffix"] = formats["ticksuffix"]
    return axis


def _no_data(figure: go.Figure, text: str) -> go.Figure:
    """An empty chart says why it is empty instead of showing bare axes."""
    figure.add_annotation(
        text=text, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5, font={"size": 14, "color": MUTED_COLOUR}
    )
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    return figure


def segment_style(index: int, value: str) -> tuple[str, str, str]:
    """(colour, plotly marker symbol, legend glyph) of the index-th value of a dimension."""
    symbol, glyph = MARKERS[index % len(MARKERS)]
    colour = UNKNOWN_COLOUR if value == "unknown" else PALETTE[index % len(PALETTE)]
    return colour, symbol, glyph


def _segment_line(x: list[str], y: list, dimension: str, index: int, value: str, hover: str) -> go.Scatter:
    colour, symbol, _ = segment_style(index, value)
    return go.Scatter(
        x=x,
        y=y,
        name=segment_label(value),
        meta={"dimension": dimension, "segment": value},
        visible=dimension == "all",
        mode="lines+markers",
        marker={"size": 6, "symbol": symbol, "color": colour},
        line={"color": colour, "width": 2},
        hovertemplate=f"{hover}<extra>{html.escape(segment_label(value))}</extra>",
    )


def trend_figure(trend: dict[str, Any], months: list[str], segments: dict[str, list[str]]) -> go.Figure:
    """One line per segment value of every dimension; only `all` visible until the selector changes it."""
    hover = AXIS_FORMATS[trend["unit"]]["hover"]
    figure = go.Figure()
    for dimension, values in segments.items():
        for index, value in enumerate(values):
            figure.add_trace(
                _segment_line(months, trend["by_segment"][dimension][value], dimension, index, value, hover)
            )
    return _layout(figure, TREND_HEIGHT, yaxis=_value_axis(trend["unit"]), xaxis=_month_axis(months))


def _bucket_label(bucket: dict[str, str]) -> str:
    """ "1-30 days overdue" as "1-30 days": the AR chart's subtitle says "by days past due"."""
    return bucket["label"].removesuffix(" overdue")


def ar_aging_figure(ar_aging: dict[str, Any], segments: dict[str, list[str]]) -> go.Figure:
    """Horizontal stacked bars: AR at the as-of month end by days overdue, one bar per segment value,
    with the total at the end of each bar."""
    figure = go.Figure()
    for dimension, values in segments.items():
        labels = [segment_label(value) for value in values]
        by_value = ar_aging["by_segment"][dimension]
        for bucket, colour in zip(ar_aging["buckets"], AR_BUCKET_COLOURS, strict=True):
            figure.add_trace(
                go.Bar(
                    orientation="h",
                    y=labels,
                    x=[by_value[value][bucket["column"]][-1] for value in values],
                    name=_bucket_label(bucket),
                    meta={"dimension": dimension, "bucket": bucket["column"]},
                    visible=dimension == "all",
                    marker={"color": colour},
                    hovertemplate="%{y}: %{x:$,.0f}<extra>" + html.escape(bucket["label"]) + "</extra>",
                )
            )
        totals = [by_value[value]["ar_end_usd"][-1] for value in values]
        figure.add_trace(
            go.Scatter(
                x=totals,
                y=labels,
                mode="text",
                text=[f"  {format_usd(total)}" if total is not None else "" for total in totals],
                textposition="middle right",
                cliponaxis=False,
                name="Total AR",
                meta={"dimension": dimension, "bucket": "total"},
                visible=dimension == "all",
                showlegend=False,
                hoverinfo="skip",
            )
        )
    figure = _layout(
        figure,
        PANEL_HEIGHT,
        barmode="stack",
        bargap=0.35,
        xaxis={"tickformatstops": USD_TICK_FORMATS, "showgrid": True, "gridcolor": GRID_COLOUR},
        # first segment on top; the selector re-sets the range for the shown dimension (layout.meta)
        yaxis={"range": [max(len(segments.get("all", [])), AR_BAR_SLOTS) - 0.5, -0.5], "showgrid": False},
        hovermode="closest",
        meta={"min_bar_slots": AR_BAR_SLOTS},
    )
    figure.update_layout(margin={"l": 112, "r": 70})
    if not any(ar_aging["by_segment"]["all"]["all"]["ar_end_usd"][-1:]):
        return _no_data(figure, f"No receivables open at the end of {month_label(ar_aging['month'])}")
    return figure


def overdue_share_figure(ar_aging: dict[str, Any], months: list[str], segments: dict[str, list[str]]) -> go.Figure:
    """One line per segment value: the share of AR past due at each month end."""
    figure = go.Figure()
    for dimension, values in segments.items():
        for index, value in enumerate(values):
            series = ar_aging["by_segment"][dimension][value]["overdue_share"]
            figure.add_trace(_segment_line(months, series, dimension, index, value, "%{y:.1%} overdue"))
    return _layout(figure, PANEL_HEIGHT, yaxis={"tickformat": ".0%", "rangemode": "tozero"}, xaxis=_month_axis(months))


def anomaly_types_figure(anomalies: dict[str, Any]) -> go.Figure:
    """Horizontal bars: USD at stake per anomaly type in the as-of month, coloured by severity,
    labelled with the count and the amount outside the bar (readable on any bar colour)."""
    rows = sorted(anomalies["by_type"], key=lambda row: row["amount_at_stake_usd"])
    figure = go.Figure()
    for severity, colour in SEVERITY_COLOURS.items():
        shown = [row for row in rows if row["severity"] == severity]
        figure.add_trace(
            go.Bar(
                orientation="h",
                y=[ANOMALY_LABELS.get(row["anomaly_type"], row["anomaly_type"]) for row in shown],
                x=[row["amount_at_stake_usd"] for row in shown],
                text=[f"{format_usd(row['amount_at_stake_usd'])} ({row['anomalies']})" for row in shown],
                textposition="outside",
                cliponaxis=False,
                textfont={"size": 12, "color": TEXT_COLOUR},
                name=SEVERITY_NAMES[severity],
                meta={"severity": severity},
                marker={"color": colour},
                hovertemplate="%{y}: %{x:$,.2f} at stake<extra>" + severity + "</extra>",
            )
        )
    largest = max((row["amount_at_stake_usd"] for row in rows), default=0)
    figure = _layout(
        figure,
        PANEL_HEIGHT,
        # room on the right for the outside labels of the longest bar
        xaxis={"tickformatstops": USD_TICK_FORMATS, "range": [0, largest * 1.3 or 1], "showgrid": True},
        yaxis={"categoryorder": "array", "categoryarray": [ANOMALY_LABELS.get(r["anomaly_type"]) for r in rows]},
        hovermode="closest",
        barmode="relative",
        bargap=0.25,
    )
    figure.update_xaxes(gridcolor=GRID_COLOUR)
    figure.update_layout(margin={"l": 190, "r": 24})
    if not rows:
        return _no_data(figure, f"No anomalies detected in {month_label(anomalies['month'])}")
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
                name=SEVERITY_NAMES[severity],
                meta={"severity": severity},
                marker={"color": colour},
                hovertemplate="%{y:$,.0f} in %{customdata} anomalies<extra>" + severity + "</extra>",
            )
        )
    figure = _layout(
        figure,
        PANEL_HEIGHT,
        barmode="stack",
        yaxis={"tickformatstops": USD_TICK_FORMATS},
        xaxis=_month_axis(sorted({row["month"] for row in anomalies["trend"]})),
    )
    if not anomalies["trend"]:
        return _no_data(figure, "No anomalies detected so far")
    return figure


def _figure_div(figure: go.Figure, div_id: str) -> str:
    return pio.to_html(
        figure,
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        default_width="100%",
        default_height=f"{figure.layout.height}px",
        config=PLOT_CONFIG,
    )


# --- HTML pieces ----------------------------------------------------------------------------


def _chart_card(
    figure_div: str, title: str, subtitle: str, segment_aware: bool = False, notes: str = "", legend: str = ""
) -> str:
    """A chart with its title and definition as an HTML caption (wraps, never overlaps the plot)."""
    classes = "card segment-chart" if segment_aware else "card"
    return (
        f"<figure class='{classes}'><figcaption><h3>{html.escape(title)}</h3>"
        f"<p>{html.escape(subtitle)}</p>{legend}</figcaption>{figure_div}{notes}</figure>"
    )


def _missing_segments_notes(by_segment: dict[str, dict[str, list]], what: str) -> str:
    """Per dimension, the segment values a chart has no number for (shown with that dimension only),
    so a line that is absent reads as "no data", not as a rendering fault."""
    notes = []
    for dimension, series in by_segment.items():
        empty = [value for value, values in series.items() if all(v is None for v in values)]
        if empty:
            names = ", ".join(segment_label(value) for value in empty)
            notes.append(
                f"<p class='chart-note' data-dimension='{html.escape(dimension)}' hidden>"
                f"No {html.escape(what)} for {html.escape(names)} in these months.</p>"
            )
    return "".join(notes)


def _legend_html(entries: list[tuple[str, str, str]], kind: str, attributes: str = "") -> str:
    """An HTML legend: (colour, glyph, label) per entry; kind `line` draws the glyph on a line, `box`
    alone. HTML rather than plotly legends: it wraps, and takes no height from the plot."""
    keys = "".join(
        f"<span class='key'><span class='swatch {kind}' style='color:{colour}' aria-hidden='true'>{glyph}</span>"
        f"<span class='key-label'>{html.escape(label)}</span></span>"
        for colour, glyph, label in entries
    )
    return f"<div class='legend' {attributes}>{keys}</div>"


def _segment_legends_html(segments: dict[str, list[str]]) -> str:
    """One legend per dimension for every segment line chart on the page (same colours and shapes),
    shown with its dimension only; none for a dimension of one value (`all`)."""
    legends = []
    for dimension, values in segments.items():
        if len(values) < 2:
            continue
        entries = []
        for index, value in enumerate(values):
            colour, _, glyph = segment_style(index, value)
            entries.append((colour, glyph, segment_label(value)))
        legends.append(_legend_html(entries, "line", f"data-dimension='{html.escape(dimension)}' hidden"))
    return "".join(legends)


def _severity_legend_html() -> str:
    return _legend_html(
        [(colour, "&#9632;", SEVERITY_NAMES[severity]) for severity, colour in SEVERITY_COLOURS.items()], "box"
    )


def _ar_bucket_legend_html(ar_aging: dict[str, Any]) -> str:
    return _legend_html(
        [
            (colour, "&#9632;", _bucket_label(bucket))
            for bucket, colour in zip(ar_aging["buckets"], AR_BUCKET_COLOURS, strict=True)
        ],
        "box",
    )


def _section_head(title: str, legend: str, segment_aware: bool = False) -> str:
    """A section title (naming the shown segment dimension, kept current by the selector) and its legend."""
    segment = ", <span class='segment-name'>all customers</span>" if segment_aware else ""
    return f"<div class='section-head'><h2>{html.escape(title)}{segment}</h2>{legend}</div>"


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
            }</div>
  <div class="tile-previous muted">vs {previous}: {html.escape(format_value(tile["previous"], tile["unit"]))}</div>
</div>"""
        )
    return "\n".join(cards)


def _quality_html(data: dict[str, Any]) -> str:
    """One line: data month, last load, the latest check run and the anomaly gate; failures listed below."""
    loads, checks = data["quality"]["loads"], data["quality"]["checks"]
    parts = [f"<span><b>Data as of</b> {month_label(data['as_of_month'])}</span>"]
    if loads["available"] and loads.get("last_load_at"):
        unreadable = (
            f", <b class='bad'>{loads['unreadable_files']} unreadable files</b>" if loads["unreadable_files"] else ""
        )
        parts.append(
            f"<span><b>Last load</b> {html.escape(loads['last_load_at'][:16])} UTC: "
            f"{loads['rows_loaded']:,} rows in {plural(loads['batches_loaded'], 'batch', 'batches')}, "
            f"{loads['rows_quarantined']:,} quarantined{unreadable}</span>"
        )
    else:
        parts.append("<span><b>Last load</b> no load manifest</span>")
    if checks["available"] and checks.get("checks_run"):
        status_class = "bad" if checks["failed"] else "good"
        blocking = f" ({checks['blocking_failed']} blocking)" if checks["failed"] else ""
        parts.append(
            f"<span><b>Checks</b> <b class='{status_class}'>{checks['passed']:,} passed, {checks['failed']:,} failed"
            f"</b>{blocking} at {html.escape(str(checks['last_checked_at'])[:16])} UTC</span>"
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
    if block["anomalies"] + warn["anomalies"] == 0:
        summary = f"<p>No anomalies detected in {month_label(anomalies['month'])}.</p>"
    else:
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
    """The invoices with the most USD at stake; nothing when the month has none (the summary says so)."""
    if not anomalies["top_invoices"]:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(row['invoice_id'])}</td><td>{html.escape(row['customer_id'])}</td>"
        f"<td>{html.escape(row['detected_at'][:10])}</td>"
        f"<td>{html.escape(', '.join(ANOMALY_LABELS.get(t, t) for t in row['anomaly_types']))}</td>"
        f"<td class='sev-{row['severity']}'>{row['severity']}</td>"
        f"<td class='num'>${row['amount_at_stake_usd']:,.2f}</td></tr>"
        for row in anomalies["top_invoices"]
    )
    return (
        f"<div class='card table-card'><table class='top'><caption>Invoices with the most USD at stake in "
        f"{month_label(anomalies['month'])}</caption><thead><tr><th>Invoice</th><th>Customer</th><th>Detected</th>"
        f"<th>Anomalies</th><th>Severity</th><th class='num'>USD at stake</th></tr></thead><tbody>{rows}</tbody>"
        "</table></div>"
    )


CSS = (
    f":root {{ --font: {FONT}; --good: {GOOD_COLOUR}; --bad: {BAD_COLOUR}; --neutral: {NEUTRAL_COLOUR}; }}"
    + """
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body { margin: 0; font-family: var(--font); color: #222; background: #f3f4f6; font-size: 14px; }
header { background: #1f2a36; color: #fff; padding: 8px 20px; display: flex; align-items: center;
         justify-content: space-between; gap: 16px; flex-wrap: wrap; }
header h1 { font-size: 18px; margin: 0; font-weight: 600; }
header label { font-size: 13px; }
header select { font-size: 14px; padding: 3px 6px; margin-left: 6px; }
main { max-width: 1366px; margin: 0 auto; padding: 8px 16px 24px; }
.strip { display: flex; flex-wrap: wrap; gap: 4px 24px; font-size: 13px; background: #fff;
         border: 1px solid #ddd; border-radius: 6px; padding: 6px 12px; }
.tiles { display: grid; grid-template-columns: repeat(6, minmax(0, 1fr)); gap: 8px; margin: 8px 0; }
.tile { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 7px 12px; }
.tile-label { font-size: 13px; color: #444; }
.tile-value { font-size: 24px; font-weight: 650; margin: 1px 0; white-space: nowrap;
              font-variant-numeric: tabular-nums; }
.tile-change { font-size: 13px; font-weight: 600; white-space: nowrap; }
.tile-previous { font-size: 12.5px; white-space: nowrap; }
.good { color: var(--good); } .bad { color: var(--bad); } .flat { color: var(--neutral); }
.muted { color: #5a5a5a; }
.section-head { display: flex; align-items: baseline; justify-content: space-between; gap: 6px 20px;
                flex-wrap: wrap; margin: 10px 0 6px; }
h2 { font-size: 16px; margin: 0; }
.legend { display: flex; flex-wrap: wrap; gap: 2px 16px; font-size: 13px; }
.legend .key { white-space: nowrap; }
.card .legend { font-size: 12px; gap: 2px 12px; margin-top: 3px; }
.swatch { display: inline-block; margin-right: 5px; text-align: center; font-size: 12px; }
.swatch.line { width: 26px; background: linear-gradient(currentColor, currentColor) center / 100% 2px no-repeat; }
.swatch.box { font-size: 15px; line-height: 1; }
.grid { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 8px; }
.grid3 { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 8px; }
.card { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 6px 8px 4px; min-width: 0; margin: 0; }
.card figcaption { padding: 0 2px 2px; }
.card h3 { font-size: 14px; font-weight: 600; margin: 0; }
.card figcaption p { font-size: 12px; color: #5a5a5a; margin: 1px 0 0; }
.chart-note { font-size: 12px; color: #5a5a5a; margin: 2px 2px 0; }
.table-card { margin-top: 8px; padding: 4px 10px 6px; }
table.top { border-collapse: collapse; width: 100%; font-size: 13px; }
table.top caption { text-align: left; font-weight: 600; font-size: 14px; padding: 4px 0 6px; }
table.top th, table.top td { border-bottom: 1px solid #e6e6e6; padding: 4px 8px; text-align: left; }
table.top tbody tr:last-child td { border-bottom: none; }
table.top .num { text-align: right; font-variant-numeric: tabular-nums; }
.sev-block { color: var(--bad); font-weight: 600; } .sev-warn { color: #2a6f97; }
ul.failures { margin: 6px 0; color: var(--bad); font-size: 13px; }
#anomalies p { margin: 0 2px 6px; }
footer { font-size: 12px; color: #5a5a5a; margin-top: 16px; }
@media (max-width: 1100px) { .tiles { grid-template-columns: repeat(3, minmax(0, 1fr)); }
                             .grid3 { grid-template-columns: repeat(2, minmax(0, 1fr)); } }
"""
)

# Shows the traces, legends and notes of the chosen dimension in every segment-aware chart.
SELECTOR_JS = """
(function () {
  var select = document.getElementById('segment-dimension');
  var labels = %(labels)s;
  // a bar chart with layout.meta.min_bar_slots keeps room for that many bars, first on top
  function fitBars(chart, visible) {
    var slots = chart.layout.meta && chart.layout.meta.min_bar_slots;
    if (!slots) { return; }
    var categories = {};
    chart.data.forEach(function (trace, index) {
      if (visible[index] && trace.type === 'bar') { trace.y.forEach(function (y) { categories[y] = true; }); }
    });
    var shown = Math.max(Object.keys(categories).length, slots);
    Plotly.relayout(chart, {'yaxis.range': [shown - 0.5, -0.5]});
  }
  function show(dimension) {
    document.querySelectorAll('.segment-chart .js-plotly-plot').forEach(function (chart) {
      var visible = chart.data.map(function (trace) {
        return Boolean(trace.meta) && trace.meta.dimension === dimension;
      });
      Plotly.restyle(chart, {visible: visible});
      fitBars(chart, visible);
    });
    document.querySelectorAll('.legend[data-dimension], .chart-note').forEach(function (node) {
      node.hidden = node.dataset.dimension !== dimension;
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
    segments, months = data["segments"], data["months"]
    options = "".join(
        f"<option value='{html.escape(dimension)}'>{html.escape(DIMENSION_LABELS.get(dimension, dimension))}</option>"
        for dimension in segments
    )
    legends = _segment_legends_html(segments)
    trend_cards = "".join(
        _chart_card(
            _figure_div(trend_figure(trend, months, segments), f"trend-{key}"),
            *TREND_TITLES.get(key, (trend["label"], trend["source"])),
            segment_aware=True,
            notes=_missing_segments_notes(trend["by_segment"], trend["label"]),
        )
        for key, trend in data["trends"].items()
    )
    anomalies, ar_aging = data["anomalies"], data["ar_aging"]
    as_of = month_label(data["as_of_month"])
    ar_cards = _chart_card(
        _figure_div(ar_aging_figure(ar_aging, segments), "ar-aging"),
        f"Accounts receivable at the end of {month_label(ar_aging['month'])}",
        "USD by days past due; total at the end of each bar",
        segment_aware=True,
        legend=_ar_bucket_legend_html(ar_aging),
    ) + _chart_card(
        _figure_div(overdue_share_figure(ar_aging, months, segments), "ar-overdue-share"),
        "Overdue receivables",
        "share of AR past its due date at each month end",
        segment_aware=True,
        notes=_missing_segments_notes(
            {d: {v: s["overdue_share"] for v, s in by_value.items()} for d, by_value in ar_aging["by_segment"].items()},
            "open receivables",
        ),
    )
    anomaly_cards = _chart_card(
        _figure_div(anomaly_types_figure(anomalies), "anomalies-by-type"),
        f"Billing anomalies detected in {month_label(anomalies['month'])}",
        "USD at stake by type (number of anomalies)",
    ) + _chart_card(
        _figure_div(anomaly_trend_figure(anomalies), "anomalies-trend"),
        "Billing anomalies by month",
        "USD at stake by month detected and severity",
    )
    labels = json.dumps({dimension: DIMENSION_LABELS.get(dimension, dimension).lower() for dimension in segments})
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Billing KPIs, {as_of}</title>
<style>{CSS}</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head>
<body>
<header>
  <h1>Billing and retention KPIs, {as_of}</h1>
  <label for="segment-dimension">Segment charts by <select id="segment-dimension">{options}</select></label>
</header>
<main>
<section id="quality">{_quality_html(data)}</section>
<section class="tiles" id="tiles">{_tiles_html(data)}</section>
{_section_head("Monthly trends", legends, segment_aware=True)}
<section class="grid3" id="trends">{trend_cards}</section>
{_section_head("Billing anomalies", _severity_legend_html())}
<section id="anomalies">
{_anomaly_summary_html(anomalies, data["quality"]["checks"].get("anomaly_gate"))}
<div class="grid">{anomaly_cards}</div>
{_top_invoices_html(anomalies)}
</section>
{_section_head("Accounts receivable aging", legends, segment_aware=True)}
<section class="grid" id="ar">{ar_cards}</section>
<footer>Generated {html.escape(data["generated_at"])} UTC from the warehouse marts (marts.kpi_*,
marts.billing_anomalies). Money in USD. The numbers behind every chart: dashboard_data.json beside this page.
</footer>
</main>
<script type="text/javascript">{SELECTOR_JS % {"labels": labels}}</script>
</body>
</html>
"""
