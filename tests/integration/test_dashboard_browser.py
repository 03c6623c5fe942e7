"""The published KPI dashboard in a real browser: headless Chromium (the Debian package)
driven by Playwright, at 1366 x 768, opened from file:// with the network cut off.

What a reader sees is checked against dashboard_data.json, the numbers the page
was drawn from: tile texts worked out here from the JSON with the documented
formats, every chart's drawn marks counted in the DOM against the data points,
and the segment selector's effect on every segment chart. Screenshots go to
$TEST_ARTIFACTS_DIR/dashboard/ (default <repo>/test-artifacts/dashboard/).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import struct
from concurrent.futures import ThreadPoolExecutor
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import pytest

from dashboards import snapshot as snapshot_module
from dashboards.snapshot import CHROMIUM_ARGS, SNAPSHOT_NAME, VIEWPORT, write_snapshot
from orchestration.lib.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration

ARTIFACTS_VARIABLE = "TEST_ARTIFACTS_DIR"
SEGMENT_CHARTS = ("ar-aging", "ar-overdue-share")  # besides the trend-<kpi> charts
OTHER_CHARTS = ("anomalies-by-type", "anomalies-trend")
# The dimension the switch test picks, and how its values are written for people.
SWITCH_DIMENSION = "company_size"
SWITCH_LABELS = {"smb": "SMB", "mid_market": "Mid-market", "enterprise": "Enterprise"}
MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# Per chart: the visible traces (name, type, meta, values, non-null count), the
# drawn marks per trace in the DOM, and the bounding boxes of the chart's texts.
CHARTS_JS = """
() => [...document.querySelectorAll('.js-plotly-plot')].map(gd => {
  const visible = gd._fullData.filter(t => t.visible === true);
  const valuesOf = t => Array.from(t.orientation === 'h' ? t.x : t.y);
  const box = node => { const r = node.getBoundingClientRect();
                        return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, text: node.textContent}; };
  return {
    id: gd.id,
    caption: [...gd.closest('figure').querySelectorAll('figcaption h3, figcaption p')].map(n => n.textContent),
    traces: visible.map(t => ({
      name: t.name, type: t.type, mode: t.mode || null, meta: t.meta || null,
      colour: (t.line && t.line.color) || (t.marker && t.marker.color) || null,
      categories: t.orientation === 'h' ? Array.from(t.y) : null,
      values: valuesOf(t), points: valuesOf(t).filter(v => v !== null && v !== undefined).length,
      uid: t.uid,
    })),
    scatter_points: Object.fromEntries(visible.filter(t => t.type === 'scatter').map(t => [
      t.uid, gd.querySelectorAll('.trace' + t.uid + ' .point').length
             + gd.querySelectorAll('.trace' + t.uid + ' .textpoint').length])),
    bar_points: [...gd.querySelectorAll('.barlayer .trace')].map(g => g.querySelectorAll('.point path').length),
    chart_box: box(gd),
    texts: [...gd.querySelectorAll('.xtick text, .ytick text, .textpoint text, .bartext, .annotation-text')]
             .filter(n => n.textContent.trim() !== '').map(box),
    // as read: top to bottom
    ytick_labels: [...gd.querySelectorAll('.ytick text')]
                    .sort((a, b) => a.getBoundingClientRect().top - b.getBoundingClientRect().top)
                    .map(n => n.textContent),
  };
})
"""


# --- what a person reads, worked out from the JSON (not with dashboards.render) ----------------


def _rounded(value: float, places: int) -> str:
    """value to `places` decimals with thousands separators, rounding the exact binary value half to even."""
    quantum = Decimal(1).scaleb(-places)
    return f"{Decimal(value).quantize(quantum, rounding=ROUND_HALF_EVEN):,}"


def _usd(value: float) -> str:
    """Whole dollars below $10k, thousands with one decimal below $1M, millions with two decimals."""
    sign, magnitude = ("-" if value < 0 else ""), abs(value)
    if magnitude >= 1_000_000:
        return f"{sign}${_rounded(magnitude / 1_000_000, 2)}M"
    if magnitude >= 10_000:
        return f"{sign}${_rounded(magnitude / 1_000, 1)}k"
    return f"{sign}${_rounded(magnitude, 0)}"


def expected_value(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    return {
        "percent": lambda: f"{_rounded(value * 100, 1)}%",
        "days": lambda: f"{_rounded(value, 1)} days",
        "per_100": lambda: f"{_rounded(value, 2)} per 100",
        "usd": lambda: _usd(value),
    }[unit]()


def _signed(text: str, value: float) -> str:
    return ("+" if value >= 0 else "") + text


def expected_change(tile: dict) -> str:
    """Rates move in percentage points; money also relative to last month."""
    change, unit = tile["change"], tile["unit"]
    if change is None:
        return "no previous month"
    if unit == "percent":
        return _signed(f"{_rounded(change * 100, 1)} pp", change)
    if unit == "usd":
        relative = tile["relative_change"]
        text = _signed(_usd(change), change)
        return text if relative is None else f"{text} ({_signed(_rounded(relative * 100, 1), relative)}%)"
    return _signed(expected_value(change, unit), change)


def month_name(iso_month: str) -> str:
    year, month, _ = iso_month.split("-")
    return f"{MONTH_NAMES[int(month) - 1]} {year}"


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the PNG's IHDR chunk."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", header[16:24])


def _rgb(hex_colour: str) -> str:
    """#0072B2 as the browser's computed style writes it: rgb(0, 114, 178)."""
    red, green, blue = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({red}, {green}, {blue})"


def _overlapping(boxes: list[dict]) -> list[tuple[str, str]]:
    pairs = []
    for index, first in enumerate(boxes):
        for second in boxes[index + 1 :]:
            width = min(first["right"], second["right"]) - max(first["left"], second["left"])
            height = min(first["bottom"], second["bottom"]) - max(first["top"], second["top"])
            if width > 1 and height > 1:  # a shared pixel edge is not an overlap
                pairs.append((first["text"], second["text"]))
    return pairs


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium: a missing browser fails the run (a skipped browser test hides a broken page)."""
    path = shutil.which("chromium")
    if path is None:
        pytest.fail(
            "The dashboard browser test needs Chromium on PATH: install the Debian package with "
            "`sudo apt-get install chromium` (Playwright cannot download its own browsers here; "
            "never run `playwright install`). CI installs it in .ci/run.",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="module")
def artifacts_dir() -> Path:
    folder = Path(os.environ.get(ARTIFACTS_VARIABLE) or PROJECT_ROOT / "test-artifacts") / "dashboard"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def published(kpi_world) -> dict:
    """The KPI world's published dashboard: the page and the numbers it was drawn from."""
    assert kpi_world["ok"], "the KPI world's pipeline run failed, so no dashboard was published"
    folder = kpi_world["settings"].output_dir / "dashboard"
    page, data_file = folder / "index.html", folder / "dashboard_data.json"
    assert page.is_file() and data_file.is_file(), f"no published dashboard in {folder}"
    return {"page": page, "data": json.loads(data_file.read_text(encoding="utf-8"))}


@pytest.fixture(scope="module")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=list(CHROMIUM_ARGS))
        yield browser
        browser.close()


class OpenedDashboard:
    """A page at 1366 x 768 with the dashboard loaded from file://; every request leaving
    file:// is recorded and refused, console errors and page errors are collected."""

    def __init__(self, browser, page_path: Path):
        self.context = browser.new_context(viewport=VIEWPORT)
        self.requests: list[str] = []
        self.refused: list[str] = []
        self.errors: list[str] = []
        self.context.on("request", lambda request: self.requests.append(request.url))
        self.context.route("**/*", self._only_files)
        self.page = self.context.new_page()
        self.page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        self.page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        self.page.goto(page_path.as_uri(), wait_until="load")
        # every chart drawn: plotly has laid out each div
        self.page.wait_for_function(
            "() => [...document.querySelectorAll('.js-plotly-plot')].every(gd => gd._fullLayout && gd.calcdata)"
        )

    def _only_files(self, route) -> None:
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            self.refused.append(route.request.url)
            route.abort()

    def charts(self) -> dict[str, dict]:
        return {chart["id"]: chart for chart in self.page.evaluate(CHARTS_JS)}

    def select_dimension(self, dimension: str) -> None:
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        self.page.select_option("#segment-dimension", dimension)
        try:
            self._wait_for_dimension(dimension)
        except PlaywrightTimeout:
            pytest.fail(f"after choosing {dimension!r} in #segment-dimension, segment charts still show other traces")

    def _wait_for_dimension(self, dimension: str) -> None:
        self.page.wait_for_function(
            """dimension => [...document.querySelectorAll('.segment-chart .js-plotly-plot')].every(gd =>
                 gd._fullData.filter(t => t.visible === true).every(t => t.meta.dimension === dimension))""",
            arg=dimension,
            timeout=15_000,
        )

    def screenshots(self, folder: Path, name: str) -> tuple[Path, Path]:
        viewport, full_page = folder / f"{name}_1366x768.png", folder / f"{name}_full_page.png"
        self.page.screenshot(path=str(viewport))
        self.page.screenshot(path=str(full_page), full_page=True)
        for path in (viewport, full_page):
            print(f"dashboard screenshot: {path}")
        return viewport, full_page

    def close(self) -> None:
        self.context.close()


@pytest.fixture()
def dashboard(browser, published):
    opened = OpenedDashboard(browser, published["page"])
    yield opened
    opened.close()


def _expected_chart_ids(data: dict) -> set[str]:
    return {f"trend-{key}" for key in data["trends"]} | set(SEGMENT_CHARTS) | set(OTHER_CHARTS)


def _assert_every_chart_draws_its_points(charts: dict[str, dict]) -> None:
    for chart_id, chart in charts.items():
        traces = chart["traces"]
        assert sum(trace["points"] for trace in traces) > 0, f"{chart_id} shows no data"
        for trace in traces:
            if trace["type"] == "scatter":
                drawn = chart["scatter_points"][trace["uid"]]
                assert drawn == trace["points"], f"{chart_id} / {trace['name']}: {drawn} marks for {trace['points']}"
        bars = [trace["points"] for trace in traces if trace["type"] == "bar"]
        assert chart["bar_points"] == bars, f"{chart_id}: bars drawn {chart['bar_points']}, data {bars}"


def _assert_labels_readable(charts: dict[str, dict]) -> None:
    """No tick label, bar label or total overlaps another, and none sticks out of its chart."""
    for chart_id, chart in charts.items():
        assert not _overlapping(chart["texts"]), f"{chart_id}: overlapping labels {_overlapping(chart['texts'])}"
        frame = chart["chart_box"]
        for text in chart["texts"]:
            inside = (
                text["left"] >= frame["left"] - 1
                and text["right"] <= frame["right"] + 1
                and text["top"] >= frame["top"] - 1
                and text["bottom"] <= frame["bottom"] + 1
            )
            assert inside, f"{chart_id}: label {text['text']!r} is cut off at the chart's edge"


def _values(series: list) -> list:
    return [None if value is None else pytest.approx(value, rel=1e-12) for value in series]


# --- tests -------------------------------------------------------------------------------------


def test_the_dashboard_loads_offline_without_errors(dashboard, published):
    assert dashboard.refused == [], f"the page tried to reach the network: {dashboard.refused}"
    assert dashboard.errors == [], f"console or page errors: {dashboard.errors}"
    assert dashboard.requests == [published["page"].as_uri()]
    title = dashboard.page.title()
    assert title == f"Billing KPIs, {month_name(published['data']['as_of_month'])}"


def test_every_chart_is_drawn_with_its_data_and_a_title(dashboard, published):
    data = published["data"]
    charts = dashboard.charts()
    assert set(charts) == _expected_chart_ids(data)
    _assert_every_chart_draws_its_points(charts)
    for chart_id, chart in charts.items():
        title, subtitle = chart["caption"]
        assert title.strip() and subtitle.strip(), f"{chart_id} has no title or subtitle"
    # the trend lines are the `all` series of the JSON, month by month
    for key, trend in data["trends"].items():
        (line,) = charts[f"trend-{key}"]["traces"]
        assert line["name"] == "All customers"
        assert line["values"] == _values(trend["by_segment"]["all"]["all"])
    # AR aging: one bar per bucket at the as-of month end, the total written after it
    ar_all = data["ar_aging"]["by_segment"]["all"]["all"]
    ar_bars = [trace for trace in charts["ar-aging"]["traces"] if trace["type"] == "bar"]
    assert [bar["values"] for bar in ar_bars] == [
        _values([ar_all[b["column"]][-1]]) for b in data["ar_aging"]["buckets"]
    ]
    assert charts["ar-aging"]["ytick_labels"] == ["All customers"]
    assert f"{_usd(ar_all['ar_end_usd'][-1])}" in {text["text"].strip() for text in charts["ar-aging"]["texts"]}
    # anomalies: USD at stake per type and severity of the as-of month
    shown = {
        (trace["meta"]["severity"], category): value
        for trace in charts["anomalies-by-type"]["traces"]
        for category, value in zip(trace["categories"], trace["values"], strict=True)
    }
    assert len(shown) == len(data["anomalies"]["by_type"])
    bar_labels = {text["text"] for text in charts["anomalies-by-type"]["texts"]}
    for row in data["anomalies"]["by_type"]:
        assert pytest.approx(row["amount_at_stake_usd"]) in [
            value for (severity, _), value in shown.items() if severity == row["severity"]
        ]
        assert f"{_usd(row['amount_at_stake_usd'])} ({row['anomalies']})" in bar_labels
    _assert_labels_readable(charts)


def test_the_tiles_show_the_latest_month_as_people_read_it(dashboard, published):
    data = published["data"]
    previous = month_name(data["previous_month"])
    for tile in data["tiles"]:
        node = dashboard.page.locator(f".tile[data-kpi='{tile['key']}']")
        assert node.locator(".tile-label").inner_text() == tile["label"]
        assert node.locator(".tile-value").inner_text() == expected_value(tile["value"], tile["unit"])
        change = node.locator(".tile-change").inner_text()
        assert change.endswith(" " + expected_change(tile)), (tile["key"], change)
        assert node.locator(".tile-previous").inner_text() == (
            f"vs {previous}: {expected_value(tile['previous'], tile['unit'])}"
        )


def test_the_page_reads_at_1366_by_768(dashboard, published, artifacts_dir):
    """The tiles and the first row of trends on the first screen, nothing wider than the
    screen, no tile text cut off; and the screenshots a reviewer looks at."""
    page = dashboard.page
    assert page.evaluate("() => document.documentElement.scrollWidth") <= VIEWPORT["width"]
    first_screen = [".tile", "#trends figure:nth-child(-n+3)"]
    for selector in first_screen:
        for box in [node.bounding_box() for node in page.locator(selector).all()]:
            assert box["y"] >= 0 and box["y"] + box["height"] <= VIEWPORT["height"], (selector, box)
    clipped = page.evaluate(
        """() => [...document.querySelectorAll('.tile > div')]
                  .filter(n => n.scrollWidth > n.clientWidth + 1).map(n => n.textContent)"""
    )
    assert clipped == [], f"tile text cut off at 1366 px: {clipped}"

    viewport, full_page = dashboard.screenshots(artifacts_dir, "dashboard")
    assert png_size(viewport) == (1366, 768)
    width, height = png_size(full_page)
    assert width == 1366 and height > 768


def test_the_segment_selector_switches_every_segment_chart(dashboard, published, artifacts_dir):
    data = published["data"]
    values = data["segments"][SWITCH_DIMENSION]
    assert set(values) == set(SWITCH_LABELS), f"the KPI world's {SWITCH_DIMENSION} values: {values}"
    labels = [SWITCH_LABELS[value] for value in values]
    before = dashboard.charts()

    dashboard.select_dimension(SWITCH_DIMENSION)
    charts = dashboard.charts()
    _assert_every_chart_draws_its_points(charts)
    _assert_labels_readable(charts)
    for key, trend in data["trends"].items():
        lines = charts[f"trend-{key}"]["traces"]
        assert [line["name"] for line in lines] == labels
        assert [line["meta"] for line in lines] == [{"dimension": SWITCH_DIMENSION, "segment": v} for v in values]
        for line, value in zip(lines, values, strict=True):
            assert line["values"] == _values(trend["by_segment"][SWITCH_DIMENSION][value]), (key, value)
        assert [line["values"] for line in lines] != [line["values"] for line in before[f"trend-{key}"]["traces"]]
    overdue = charts["ar-overdue-share"]["traces"]
    assert [line["name"] for line in overdue] == labels
    for line, value in zip(overdue, values, strict=True):
        assert line["values"] == _values(data["ar_aging"]["by_segment"][SWITCH_DIMENSION][value]["overdue_share"])
    # AR aging: one bar per segment value, top to bottom in the segments' order
    assert charts["ar-aging"]["ytick_labels"] == labels
    by_value = data["ar_aging"]["by_segment"][SWITCH_DIMENSION]
    for bar, bucket in zip(
        [trace for trace in charts["ar-aging"]["traces"] if trace["type"] == "bar"],
        data["ar_aging"]["buckets"],
        strict=True,
    ):
        assert bar["categories"] == labels
        assert bar["values"] == _values([by_value[value][bucket["column"]][-1] for value in values])
    # the charts that are not about segments stay as they were
    for chart_id in OTHER_CHARTS:
        assert charts[chart_id]["traces"] == before[chart_id]["traces"]

    page = dashboard.page
    legend = page.locator(f".legend[data-dimension='{SWITCH_DIMENSION}']")
    assert legend.count() == 2  # above the trends and above AR aging
    line_colours = [_rgb(line["colour"]) for line in charts["trend-mrr"]["traces"]]
    for index in range(2):
        assert legend.nth(index).is_visible()
        assert legend.nth(index).locator(".key-label").all_inner_texts() == labels
        swatches = legend.nth(index).locator(".swatch")
        assert [swatches.nth(i).evaluate("n => getComputedStyle(n).color") for i in range(len(labels))] == line_colours
    assert page.locator(".legend[data-dimension]:visible").count() == 2
    assert page.locator(".segment-name").all_inner_texts() == ["company size", "company size"]
    dashboard.screenshots(artifacts_dir, f"dashboard_{SWITCH_DIMENSION}")


def test_the_snapshot_is_a_full_page_png_taken_offline(published, chromium, tmp_path):
    page = tmp_path / "dashboard" / "index.html"
    page.parent.mkdir()
    shutil.copy(published["page"], page)

    # Playwright's sync API runs one instance per thread, and this module's `browser` fixture
    # may hold this thread's: the snapshot starts its own, as the CLI would, in a thread of its own.
    with ThreadPoolExecutor(max_workers=1) as worker:
        snapshot = worker.submit(write_snapshot, page, chromium=chromium).result()

    assert snapshot == tmp_path / "dashboard" / SNAPSHOT_NAME
    width, height = png_size(snapshot)
    assert width == 1366 and height > 768
    assert sorted(path.name for path in page.parent.iterdir()) == [SNAPSHOT_NAME, "index.html"]  # no temporary file


def test_without_chromium_there_is_no_snapshot_and_the_log_says_why(published, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(snapshot_module, "find_chromium", lambda: None)
    with caplog.at_level(logging.WARNING, logger=snapshot_module.__name__):
        assert write_snapshot(published["page"], tmp_path / "dashboard.png") is None
    assert "apt-get install chromium" in caplog.text
    assert not (tmp_path / "dashboard.png").exists()


def test_every_dimension_draws_every_segment_chart_and_names_missing_segments(dashboard, published):
    """A segment with no number in a chart (no sBG fit, no receivables) is named under it."""
    data = published["data"]

    def missing(by_segment: dict[str, list]) -> list[str]:
        return [value for value, series in by_segment.items() if all(point is None for point in series)]

    for dimension in data["segments"]:
        dashboard.select_dimension(dimension)
        charts = dashboard.charts()
        _assert_every_chart_draws_its_points(charts)
        expected_notes = sum(bool(missing(trend["by_segment"][dimension])) for trend in data["trends"].values()) + bool(
            missing({v: s["overdue_share"] for v, s in data["ar_aging"]["by_segment"][dimension].items()})
        )
        notes = dashboard.page.locator(".chart-note:visible")
        assert notes.count() == expected_notes, (dimension, notes.all_inner_texts())
        for chart_id, chart in charts.items():
            if chart_id in OTHER_CHARTS:
                continue
            assert {trace["meta"]["dimension"] for trace in chart["traces"]} == {dimension}, chart_id
    assert dashboard.errors == []
