"""The drawing page in a real browser: headless Chromium (Debian's package) driven by Playwright."""

import itertools
import os
import shutil

import pytest

from tests.conftest import draw_digit
from tests.test_serve import start_server

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (make setup)")
CHROMIUM = (
    os.environ.get("DIGITLEARN_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium; .ci/run installs it)"
)
# headless, and quiet: this machine's closed network refuses Chromium's background connections
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]  # fmt: skip


@pytest.fixture
def page(fast_run):
    proc, url = start_server(fast_run)
    try:
        with playwright.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 900, "height": 700})
            page.goto(url)
            page.wait_for_selector(".bar")
            yield page
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def draw(page, *strokes) -> None:
    """Draw strokes on the canvas with mouse events; points are fractions of its width and height."""
    box = page.locator("#pad").bounding_box()

    def at(fx: float, fy: float) -> tuple[float, float]:
        return box["x"] + fx * box["width"], box["y"] + fy * box["height"]

    for points in strokes:
        page.mouse.move(*at(*points[0]))
        page.mouse.down()
        for (x0, y0), (x1, y1) in itertools.pairwise(points):
            for k in range(1, 11):
                page.mouse.move(*at(x0 + (x1 - x0) * k / 10, y0 + (y1 - y0) * k / 10))
        page.mouse.up()


def shown(page, label: str) -> dict:
    """Wait until the page shows `label`, then read its probability bars."""
    page.wait_for_function(f"document.querySelector('#label').textContent === {label!r}", timeout=15_000)
    page.wait_for_function("document.querySelector('#input').naturalWidth === 28")
    return {
        bar.get_attribute("data-class"): float(bar.locator(".pct").inner_text().rstrip("%"))
        for bar in page.locator(".bar").all()
    }


def test_drawing_a_seven_shows_the_prediction_and_probabilities(page, tmp_path):
    draw(page, [(0.25, 0.2), (0.75, 0.2), (0.42, 0.85)])
    bars = shown(page, "7")
    assert list(bars) == list("0123456789")
    assert (
        bars["7"] == max(bars.values()) and bars["7"] > 50 and sum(bars.values()) == pytest.approx(100, abs=1)
    )
    assert "sure" in page.inner_text("#confidence") and page.inner_text("#status") == ""
    page.screenshot(path=tmp_path / "seven.png")
    assert (tmp_path / "seven.png").stat().st_size > 10_000

    page.click("#clear")
    assert page.inner_text("#label") == ""
    draw(page, [(0.5, 0.12), (0.5, 0.88)])  # a 1, after clearing
    assert shown(page, "1")["1"] > 50


def test_uploading_an_image_predicts_it(page, tmp_path):
    path = tmp_path / "four.png"
    draw_digit("4", size=(400, 300), ink=(230, 230, 240), paper=(30, 20, 60), mode="RGB").save(path)
    page.set_input_files("#upload", str(path))
    assert shown(page, "4")["4"] > 50
    page.screenshot(path=tmp_path / "upload.png")
