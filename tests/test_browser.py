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


@pytest.fixture(scope="module")
def url(fast_run):
    """One `digitlearn serve` process for the module's tests: each starts from a fresh page."""
    proc, url = start_server(fast_run)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, url):
    page = browser.new_page(viewport={"width": 900, "height": 700})  # its own context: nothing shared
    page.goto(url)
    page.wait_for_selector(".bar")
    yield page
    page.close()


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
    """Wait until the page shows `label` and every prediction request has come back (the page's
    own `inFlight` and `pending`), then read its probability bars."""
    page.wait_for_function(f"document.querySelector('#label').textContent === {label!r}", timeout=15_000)
    page.wait_for_function("!inFlight && !pending", timeout=15_000)
    return {
        bar.get_attribute("data-class"): float(bar.locator(".pct").inner_text().rstrip("%"))
        for bar in page.locator(".bar").all()
    }


# what the page shows besides the label: the drawing pad, the model's input image and the bars
LOOK = """() => {
  const pad = document.querySelector("#pad");
  const px = pad.getContext("2d").getImageData(0, 0, pad.width, pad.height).data;
  let dark = 0;
  for (let i = 0; i < px.length; i += 4) dark += px[i] < 128;
  const img = document.querySelector("#input");
  let bright = 0;
  if (!img.hidden) {
    const c = new OffscreenCanvas(img.naturalWidth, img.naturalHeight).getContext("2d");
    c.drawImage(img, 0, 0);
    const seen = c.getImageData(0, 0, img.naturalWidth, img.naturalHeight).data;
    for (let i = 0; i < seen.length; i += 4) bright += seen[i] > 128;
  }
  const bars = [...document.querySelectorAll(".bar")];
  return {
    dark: dark / (px.length / 4),
    input: img.hidden ? null : [img.naturalWidth, img.naturalHeight],
    input_bright: bright,
    best: bars.filter((b) => b.classList.contains("best")).map((b) => b.dataset.class),
    fills: bars.map((b) => parseFloat(b.querySelector(".fill").style.width)),
    pcts: bars.map((b) => b.querySelector(".pct").textContent),
  };
}"""


def test_drawing_a_seven_shows_the_prediction_and_probabilities(page):
    draw(page, [(0.25, 0.2), (0.75, 0.2), (0.42, 0.85)])
    bars = shown(page, "7")
    assert list(bars) == list("0123456789")
    assert (
        bars["7"] == max(bars.values()) and bars["7"] > 50 and sum(bars.values()) == pytest.approx(100, abs=1)
    )
    assert page.inner_text("#confidence") == f"{bars['7']:.1f}% sure" and page.inner_text("#status") == ""
    look = page.evaluate(LOOK)
    assert 0.01 < look["dark"] < 0.3  # the strokes, on white
    assert look["input"] == [28, 28] and look["input_bright"] > 20  # the seven, as the model saw it
    assert look["best"] == ["7"] and look["fills"] == list(bars.values())  # each bar as long as its figure

    page.click("#clear")
    assert page.inner_text("#label") == "" and page.inner_text("#confidence") == ""
    look = page.evaluate(LOOK)
    assert look["dark"] == 0 and look["input"] is None and look["best"] == []
    assert set(look["pcts"]) == {""} and set(look["fills"]) == {0}
    draw(page, [(0.5, 0.12), (0.5, 0.88)])  # a 1, after clearing
    assert shown(page, "1")["1"] > 50
    assert page.evaluate(LOOK)["best"] == ["1"]


def test_uploading_an_image_predicts_it(page, tmp_path):
    path = tmp_path / "four.png"
    draw_digit("4", size=(400, 300), ink=(230, 230, 240), paper=(30, 20, 60), mode="RGB").save(path)
    page.set_input_files("#upload", str(path))
    bars = shown(page, "4")
    assert bars["4"] == max(bars.values()) and bars["4"] > 50
    assert page.inner_text("#confidence") == f"{bars['4']:.1f}% sure" and page.inner_text("#status") == ""
    look = page.evaluate(LOOK)
    # the pad shows the upload, fitted: 400x300 fills its width and 3/4 of its height, dark paper
    assert 0.5 < look["dark"] < 0.75
    assert look["input"] == [28, 28] and look["input_bright"] > 20 and look["best"] == ["4"]


def state(page) -> str:
    """The result area's state: empty, waiting, prediction or error."""
    return page.get_attribute("#result", "data-state")


def settled(page) -> None:
    """Wait until every prediction request has come back and been shown or dropped."""
    page.wait_for_function("!inFlight && !pending", timeout=15_000)


def hold_requests(page, count: int = 1) -> list:
    """Hold the page's first `count` prediction requests unanswered (later ones go through) until
    the test continues them: slow answers, made slow deterministically. Returns the list they
    land in."""
    held = []

    def handle(route) -> None:
        if len(held) < count:
            held.append(route)
        else:
            route.continue_()

    page.route("**/api/predict*", handle)
    return held


def nth_held(page, held: list, n: int = 1):
    """The `n`th held request, once the page has sent it."""
    for _ in range(250):  # a route arrives with Playwright's next events: poll for it
        if len(held) >= n:
            return held[n - 1]
        page.wait_for_timeout(20)
    raise AssertionError(f"the page sent {len(held)} prediction requests, not {n}")


def test_an_answer_arriving_after_clear_is_ignored(page):
    held = hold_requests(page)
    draw(page, [(0.5, 0.12), (0.5, 0.88)])  # a 1: the answer is in flight...
    route = nth_held(page, held)
    page.click("#clear")  # ...when the canvas is cleared
    route.continue_()
    settled(page)  # the answer has arrived, and was for a picture no longer shown
    assert state(page) == "empty" and page.inner_text("#label") == "" and page.inner_text("#confidence") == ""
    look = page.evaluate(LOOK)
    assert look["dark"] == 0 and look["input"] is None and look["best"] == [] and set(look["fills"]) == {0}


def test_drawing_over_an_upload_shows_only_the_drawings_answer(page, tmp_path):
    path = tmp_path / "blank.png"
    draw_digit(" ").save(path)  # no digit: its answer would be an error
    held = hold_requests(page, 2)
    page.set_input_files("#upload", str(path))
    nth_held(page, held)
    assert state(page) == "waiting"
    draw(page, [(0.5, 0.12), (0.5, 0.88)])
    held[0].continue_()  # the upload's error arrives while the drawing is on the pad: it is dropped
    nth_held(page, held, 2)  # the page sends the drawing once the upload's answer is in
    assert state(page) == "waiting" and page.inner_text("#status") == "reading…"
    held[1].continue_()
    shown(page, "1")
    assert state(page) == "prediction" and page.inner_text("#status") == ""


def test_an_error_replaces_the_prediction(page, tmp_path):
    draw(page, [(0.5, 0.12), (0.5, 0.88)])
    shown(page, "1")
    path = tmp_path / "blank.png"
    draw_digit(" ").save(path)
    page.set_input_files("#upload", str(path))
    page.wait_for_function("document.querySelector('#result').dataset.state === 'error'", timeout=15_000)
    assert "no digit found" in page.inner_text("#status")
    assert page.inner_text("#label") == "" and page.evaluate(LOOK)["best"] == []


def test_a_dot_is_not_a_digit(page):
    sent = []
    page.on("request", lambda r: sent.append(r.url) if "/api/predict" in r.url else None)
    box = page.locator("#pad").bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    assert state(page) == "error" and page.inner_text("#status") == "draw a bigger digit"
    # the page did not ask about a dot (a request would still be in flight, or its answer shown)
    assert page.inner_text("#label") == "" and sent == [] and not page.evaluate("inFlight")
    # (a dot that passes this check, drawn with a thick pen, is the server's: test_serve.py)


def test_the_page_has_no_console_errors_or_failed_requests(page, url):
    # A half-drawn stroke may be no digit yet: the API's 422 is an answer the page shows, though
    # Chromium logs it as a failed load. Anything else that fails is a problem.
    def api(url: str) -> bool:
        return "/api/predict" in url

    problems = []
    page.on("console", lambda m: m.type != "error" or api(m.location["url"]) or problems.append(m.text))
    page.on("requestfailed", lambda r: problems.append(f"{r.url} failed"))
    page.on("response", lambda r: r.status < 400 or (api(r.url) and r.status == 422) or problems.append(r))
    page.reload()
    page.wait_for_selector(".bar")
    draw(page, [(0.25, 0.2), (0.75, 0.2), (0.42, 0.85)])
    shown(page, "7")
    assert problems == []
    # headless Chromium does not ask for the icon itself: ask for the one the page links to
    icon = page.evaluate("""fetch(document.querySelector("link[rel=icon]").href)
        .then((r) => [r.url, r.status, r.headers.get("content-type")])""")
    assert icon == [url + "favicon.ico", 200, "image/svg+xml"]


def test_number_mode_shows_the_number_the_server_read(page):
    answers = []
    page.on("response", lambda r: answers.append(r) if "/api/predict" in r.url else None)
    page.check("#number-mode")
    box = page.locator("#pad").bounding_box()
    assert box["width"] == pytest.approx(3 * box["height"], rel=0.02)
    assert page.evaluate("[pad.width, pad.height]") == [840, 280]
    # a 4 in two strokes on the left, a 1 on the right
    draw(page, [(0.2, 0.15), (0.12, 0.6), (0.3, 0.6)], [(0.26, 0.3), (0.26, 0.9)], [(0.6, 0.12), (0.6, 0.88)])
    settled(page)
    last = answers[-1]
    assert "number=1" in last.url and last.status == 200
    answer = last.json()
    assert state(page) == "prediction" and page.inner_text("#label") == answer["number"]
    digits = page.locator("#digits li").all()
    assert len(digits) == len(answer["digits"]) >= 1
    for item, digit in zip(digits, answer["digits"], strict=True):
        assert item.locator("b").inner_text() == digit["label"]
        assert item.locator("span").inner_text() == f"{100 * digit['probability']:.1f}%"
    assert not page.is_visible("#bars")  # a digit's bars do not describe a number
    page.uncheck("#number-mode")  # back to one digit: a square, empty canvas
    assert page.evaluate("[pad.width, pad.height]") == [280, 280] and state(page) == "empty"
