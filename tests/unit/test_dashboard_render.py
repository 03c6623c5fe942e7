"""The dashboard's figures and HTML pieces on small hand-made inputs (no warehouse, no browser).

Two segment dimensions: `all`, and company_size smb / enterprise; three months,
January to March 2024. The page as a whole is drawn in tests/unit/test_dashboard_data.py
and in a real browser in tests/integration/test_dashboard_browser.py.
"""

import re

from dashboards.data import AR_BUCKETS
from dashboards.render import (
    anomaly_trend_figure,
    anomaly_types_figure,
    ar_aging_figure,
    overdue_share_figure,
    plural,
    render_dashboard,
    trend_figure,
)

MONTHS = ["2024-01-01", "2024-02-01", "2024-03-01"]
SEGMENTS = {"all": ["all"], "company_size": ["smb", "enterprise"]}
BUCKETS = [{"column": column, "label": label} for column, label in AR_BUCKETS]


def _ar_aging(enterprise_ar: float = 400.0) -> dict:
    def series(current: float, overdue: float) -> dict:
        total = current + overdue
        older = {column: [None, None, 0.0] for column in ("ar_31_60_usd", "ar_61_90_usd", "ar_90_plus_usd")}
        return {
            "ar_end_usd": [None, None, total],
            "ar_current_usd": [None, None, current],
            "ar_1_30_usd": [None, None, overdue],
            **older,
            "overdue_share": [None, None, overdue / total if total else None],
        }

    return {
        "month": "2024-03-01",
        "buckets": BUCKETS,
        "by_segment": {
            "all": {"all": series(600.0, 12_400.0)},
            "company_size": {"smb": series(0.0, 0.0), "enterprise": series(enterprise_ar, 0.0)},
        },
    }


def _anomalies(by_type: list[dict], trend: list[dict]) -> dict:
    return {"month": "2024-03-01", "by_type": by_type, "trend": trend, "top_invoices": []}


def _visible(figure) -> list:
    return [trace for trace in figure.data if trace.visible]


def test_trend_lines_exist_per_segment_and_only_all_shows_at_first():
    trend = {
        "unit": "usd",
        "by_segment": {
            "all": {"all": [100.0, 110.0, 120.0]},
            "company_size": {"smb": [40.0, 45.0, 50.0], "enterprise": [60.0, 65.0, 70.0]},
        },
    }
    figure = trend_figure(trend, MONTHS, SEGMENTS)
    assert [(trace.name, trace.meta["dimension"], trace.visible) for trace in figure.data] == [
        ("All customers", "all", True),
        ("SMB", "company_size", False),
        ("Enterprise", "company_size", False),
    ]
    assert list(figure.data[2].y) == [60.0, 65.0, 70.0]
    # the axis ends half a month around the data, so no tick label lands outside it
    assert list(figure.layout.xaxis.range) == ["2023-12-17", "2024-03-16"]
    assert figure.layout.showlegend is False  # one HTML legend per dimension serves all segment charts


def test_a_segment_has_the_same_colour_and_marker_in_every_chart():
    trend = {
        "unit": "percent",
        "by_segment": {"all": {"all": [0.1] * 3}, "company_size": {"smb": [0.2] * 3, "enterprise": [0.3] * 3}},
    }
    lines = trend_figure(trend, MONTHS, SEGMENTS).data
    shares = overdue_share_figure(_ar_aging(), MONTHS, SEGMENTS).data
    styles = [(trace.line.color, trace.marker.symbol) for trace in lines]
    assert styles == [(trace.line.color, trace.marker.symbol) for trace in shares]
    # Okabe-Ito blue then orange; circle then square, so the two differ without colour too
    assert styles[1:] == [("#0072B2", "circle"), ("#E69F00", "square")]


def test_ar_aging_stacks_the_buckets_per_segment_with_the_total_written_after_the_bar():
    figure = ar_aging_figure(_ar_aging(), SEGMENTS)
    bars = [trace for trace in _visible(figure) if trace.type == "bar"]
    assert [(bar.name, list(bar.y), list(bar.x)) for bar in bars] == [
        ("Not yet due", ["All customers"], [600.0]),
        ("1-30 days", ["All customers"], [12_400.0]),
        ("31-60 days", ["All customers"], [0.0]),
        ("61-90 days", ["All customers"], [0.0]),
        ("90+ days", ["All customers"], [0.0]),
    ]
    (total,) = [trace for trace in _visible(figure) if trace.type == "scatter"]
    assert list(total.text) == ["  $13.0k"]  # 600 + 12,400
    # room for five bars, first on top: one segment is a bar, not a wall of colour
    assert list(figure.layout.yaxis.range) == [4.5, -0.5]
    company = [trace for trace in figure.data if trace.meta["dimension"] == "company_size" and trace.type == "scatter"]
    assert list(company[0].text) == ["  $0", "  $400"]


def test_ar_aging_without_receivables_says_so():
    aging = _ar_aging()
    aging["by_segment"]["all"]["all"]["ar_end_usd"][-1] = 0.0
    figure = ar_aging_figure(aging, SEGMENTS)
    assert [note.text for note in figure.layout.annotations] == ["No receivables open at the end of Mar 2024"]


def test_anomaly_types_are_labelled_with_amount_and_count_outside_the_bars():
    figure = anomaly_types_figure(
        _anomalies(
            [
                {"anomaly_type": "duplicate_charge", "severity": "block", "anomalies": 2, "amount_at_stake_usd": 400.0},
                {"anomaly_type": "tax_error", "severity": "warn", "anomalies": 1, "amount_at_stake_usd": 5.25},
            ],
            [],
        )
    )
    block, warn = figure.data
    assert (list(block.y), list(block.text), block.textposition) == (["Duplicate charge"], ["$400 (2)"], "outside")
    assert (list(warn.y), list(warn.text)) == (["Tax error"], ["$5 (1)"])
    assert list(figure.layout.xaxis.range) == [0, 520.0]  # 400 x 1.3: room for the label of the longest bar
    # smallest at the bottom: plotly draws the first category lowest
    assert list(figure.layout.yaxis.categoryarray) == ["Tax error", "Duplicate charge"]


def test_charts_without_anomalies_say_so_instead_of_showing_bare_axes():
    types = anomaly_types_figure(_anomalies([], []))
    trend = anomaly_trend_figure(_anomalies([], []))
    assert [note.text for note in types.layout.annotations] == ["No anomalies detected in Mar 2024"]
    assert [note.text for note in trend.layout.annotations] == ["No anomalies detected so far"]
    assert types.layout.xaxis.visible is False and trend.layout.yaxis.visible is False


def _page_data() -> dict:
    tile = {
        "key": "mrr",
        "label": "MRR",
        "unit": "usd",
        "better": "up",
        "description": "Monthly recurring revenue at the month end",
        "value": 10500.0,
        "previous": 10000.0,
        "change": 500.0,
        "relative_change": 0.05,
    }
    clv = {
        "label": "CLV (sBG)",
        "unit": "usd",
        "source": "marts.kpi_clv.clv_sbg_usd",
        # enterprise has no sBG fit in these months
        "by_segment": {
            "all": {"all": [None, 1.0, 2.0]},
            "company_size": {"smb": [None, 1.0, 2.0], "enterprise": [None] * 3},
        },
    }
    return {
        "generated_at": "2024-04-02 07:00:00",
        "as_of_month": "2024-03-01",
        "previous_month": "2024-02-01",
        "months": MONTHS,
        "segments": SEGMENTS,
        "tiles": [tile],
        "trends": {"clv": clv},
        "ar_aging": _ar_aging(enterprise_ar=0.0),
        "anomalies": {
            **_anomalies([], []),
            "totals": {
                "block": {"anomalies": 0, "amount_at_stake_usd": 0.0},
                "warn": {"anomalies": 0, "amount_at_stake_usd": 0.0},
            },
        },
        "quality": {
            "loads": {
                "available": True,
                "last_load_at": "2024-04-02 06:00:00",
                "batches_loaded": 1,
                "rows_loaded": 1200,
                "rows_quarantined": 0,
                "unreadable_files": 0,
            },
            "checks": {"available": False},
        },
    }


def test_each_dimension_has_one_legend_and_names_the_segments_a_chart_has_no_number_for():
    page = render_dashboard(_page_data())
    legends = re.findall(r"<div class='legend' data-dimension='(\w+)' hidden>(.*?)</div>", page)
    # above the trends and above AR aging; none for `all` (one line needs no legend)
    assert [dimension for dimension, _ in legends] == ["company_size", "company_size"]
    assert re.findall(r"<span class='key-label'>(.*?)</span>", legends[0][1]) == ["SMB", "Enterprise"]
    notes = re.findall(r"<p class='chart-note' data-dimension='(\w+)' hidden>(.*?)</p>", page)
    assert notes == [
        ("company_size", "No CLV (sBG) for Enterprise in these months."),
        # smb: no receivables at all; enterprise: 0 of 0 is no share either
        ("company_size", "No open receivables for SMB, Enterprise in these months."),
    ]


def test_the_quality_strip_counts_in_words_and_a_clean_month_says_it_has_no_anomalies():
    page = render_dashboard(_page_data())
    assert "1,200 rows in 1 batch, 0 quarantined" in page
    assert "<p>No anomalies detected in Mar 2024.</p>" in page
    assert "<table" not in page  # no empty top-invoices table


def test_plural():
    assert plural(1, "batch", "batches") == "1 batch"
    assert plural(31, "batch", "batches") == "31 batches"
    assert plural(1000, "file") == "1,000 files"
