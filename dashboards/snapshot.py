"""A static PNG of the published dashboard, for e-mail and slide decks.

Taken offline by the system's Chromium (the Debian package `chromium`) through
Playwright: the page is opened from file:// with every other request refused,
at 1366 px wide, and the whole page is captured. Without Chromium there is no
snapshot, and `write_snapshot` says so and returns None instead of failing the
publication: the HTML page is the product, the PNG a convenience.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from orchestration.lib.atomic_files import write_bytes_atomically

logger = logging.getLogger(__name__)

SNAPSHOT_NAME = "dashboard.png"
VIEWPORT = {"width": 1366, "height": 768}
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
)
# plotly draws on load; the charts are complete when every plot div has its layout.
CHARTS_DRAWN = "() => [...document.querySelectorAll('.js-plotly-plot')].every(gd => gd._fullLayout && gd.calcdata)"


class SnapshotError(RuntimeError):
    """The page could not be captured (it failed to load, or tried to reach the network)."""


def find_chromium() -> str | None:
    return shutil.which("chromium")


def write_snapshot(page: Path, target: Path | None = None, chromium: str | None = None) -> Path | None:
    """Capture `page` (a published index.html) as a full-page PNG beside it, or at `target`.

    Returns the PNG's path, or None (logged) when no Chromium is installed. The PNG is
    written to a temporary sibling and renamed, so a reader never sees half an image.
    """
    chromium = chromium or find_chromium()
    if chromium is None:
        logger.warning(
            "No dashboard snapshot: Chromium is not on PATH (install the Debian package: apt-get install chromium)"
        )
        return None
    from playwright.sync_api import sync_playwright

    page = Path(page)
    target = Path(target) if target else page.with_name(SNAPSHOT_NAME)
    refused: list[str] = []

    def only_files(route) -> None:
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=list(CHROMIUM_ARGS))
        try:
            context = browser.new_context(viewport=VIEWPORT)
            context.route("**/*", only_files)
            tab = context.new_page()
            tab.goto(page.resolve().as_uri(), wait_until="load")
            tab.wait_for_function(CHARTS_DRAWN)
            if refused:
                raise SnapshotError(f"{page} tried to load {', '.join(refused)}: the dashboard must work offline")
            png = tab.screenshot(type="png", full_page=True)
        finally:
            browser.close()
    write_bytes_atomically(target, png)
    logger.info("Dashboard snapshot written to %s", target)
    return target
