"""The web app: page, health, the prediction API and its errors; the server on loopback.
(tests/test_serve_load.py: the server under a mixed load, and slow or silent clients.)"""

import asyncio
import base64
import io
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx2 as httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from digitlearn.cli import main
from digitlearn.inference.predictor import Predictor
from digitlearn.inference.serve import Limits, create_app
from tests.conftest import draw_digit, encoded

JSON = {"Content-Type": "application/json"}
PNG = {"Content-Type": "image/png"}
NOT_AN_OBJECT = 'the JSON must be an object with "image": a data URL or base64 string'
NOT_BASE64_URL = 'the "image" data URL must be base64-encoded ("data:image/png;base64,...")'
EMPTY = 'empty request: send an image\'s bytes, or JSON {"image": "data:image/png;base64,..."}'
TOO_LARGE = "the request is 200,001 bytes; the limit is 200,000"
A_FORM = "send the image's bytes as the request body (Content-Type image/png etc.), not a form"


@pytest.fixture(scope="module")
def client(untrained_run):
    # as a context: the app's lifespan starts its image workers, and stops them after the tests
    with TestClient(create_app(Predictor.load(untrained_run), Limits(max_bytes=200_000))) as client:
        yield client


def test_page_and_health(client, untrained_run):
    page = client.get("/")
    assert page.status_code == 200 and "<canvas" in page.text and "loading the model\u2026" in page.text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.text)  # no external resources
    assert client.get("/health").json() == {
        "status": "ok",
        "model": "cnn",
        "run": untrained_run.name,
        "classes": list("0123456789"),
        "input": [28, 28],
        "max_bytes": 200_000,
    }
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.content.startswith(b"<svg")
    # no /docs or /redoc: their pages load scripts from a CDN; the API's description is named
    assert client.get("/docs").status_code == client.get("/redoc").status_code == 404
    assert client.get("/openapi.json").json()["info"]["title"] == "digitlearn"
    # a predictor made in memory, with no run folder or model name: null and "model"
    predictor = Predictor.load(untrained_run)
    bare = Predictor(predictor.model, {**predictor.config, "model": None})
    assert TestClient(create_app(bare)).get("/health").json() | {"run": "?"} == {
        "status": "ok",
        "model": "model",
        "run": "?",
        "classes": list("0123456789"),
        "input": [28, 28],
        "max_bytes": 5 * 2**20,
    }
    assert TestClient(create_app(bare)).get("/health").json()["run"] is None


def test_the_apps_workers_start_with_it_and_stop_after_it(untrained_run):
    app = create_app(Predictor.load(untrained_run), Limits(workers=2))
    workers = app.state.workers
    # they load the server's module once, before the first call, not each at its first image
    assert workers.preload == ["digitlearn.inference.serve"] and workers.running == 0
    with TestClient(app):  # the app's lifespan: every worker is up before the first request
        assert workers.running == 2
    assert workers.running == 0


def test_predict_from_bytes_and_from_a_data_url(client, untrained_run):
    data = encoded(draw_digit("3"))
    expected = Predictor.load(untrained_run).predict(data)
    start = time.perf_counter()
    raw = client.post("/api/predict", content=data, headers={"Content-Type": "image/png"})
    url = "data:image/png;base64," + base64.b64encode(data).decode()
    as_json = client.post("/api/predict", json={"image": url})
    elapsed_ms = 1000 * (time.perf_counter() - start)
    for r in (raw, as_json):
        assert r.status_code == 200
        body = r.json()
        assert 0 < body["ms"] < elapsed_ms  # the request's own time, in milliseconds
        assert body["label"] == expected.label and list(body["probabilities"]) == list("0123456789")
        assert body["probabilities"][expected.label] == pytest.approx(expected.probability, abs=1e-6)
        assert body["input"].startswith("data:image/png;base64,")
    shown = Image.open(io.BytesIO(base64.b64decode(as_json.json()["input"].split(",")[1])))
    # the model's input, as the predictor makes it
    assert shown.size == (28, 28) and (np.asarray(shown) == (expected.input.numpy() * 255).round()).all()


@pytest.mark.parametrize(
    "kwargs,status,message",
    [
        (
            {"content": b"x" * 200_001, "headers": PNG},
            413,
            "the request is 200,001 bytes; the limit is 200,000",
        ),
        ({"content": b"plain text", "headers": {"Content-Type": "text/plain"}}, 415, "not an image"),
        ({"content": b'{"image": ', "headers": JSON}, 400, "malformed JSON"),
        ({"content": b'{"image": "\xff"}', "headers": JSON}, 400, "not UTF-8"),
        ({"content": b"[" * 20_000 + b"]" * 20_000, "headers": JSON}, 400, "nested 20,000 levels deep"),
        ({"content": b"[" * 33 + b"]" * 33, "headers": JSON}, 400, "nested 33 levels deep (at most 32)"),
        ({"content": b'{"image": ' + b"7" * 5000 + b"}", "headers": JSON}, 400, "a number of 5,000 chara"),
        (
            {"content": b'{"image": ' + b"7" * 101 + b"}", "headers": JSON},
            400,
            "101 characters (at most 100)",
        ),
        # brackets and quotes inside a string are not nesting
        ({"json": {"image": '\\"' + "[" * 100}}, 400, 'the "image" is not valid base64'),
        ({"json": {"picture": "x"}}, 400, NOT_AN_OBJECT),
        ({"json": ["image", "x"]}, 400, NOT_AN_OBJECT),
        ({"json": {"image": "data:image/png;base64,@@@"}}, 400, 'the "image" is not valid base64'),
        # the data URL's header ends at its first comma
        ({"json": {"image": "data:image/png;base64,iVBO,Rw=="}}, 400, 'the "image" is not valid base64'),
        ({"json": {"image": "data:image/png,abc"}}, 400, NOT_BASE64_URL),
        ({"content": b"", "headers": PNG}, 400, EMPTY),
        ({"files": {"file": ("a.png", b"123", "image/png")}}, 415, A_FORM),
        ({"content": encoded(Image.new("LAB", (32, 32)), "TIFF"), "headers": PNG}, 415, "cannot convert"),
        ({"content": encoded(Image.new("RGB", (32, 32)), "EPS"), "headers": PNG}, 415, "not an image"),
        ({"content": encoded(draw_digit("4"))[:600], "headers": PNG}, 415, "cannot decode"),
    ],
    ids=[
        "too-large",
        "not-an-image",
        "malformed-json",
        "json-not-utf8",
        "json-deep",
        "json-33-deep",
        "json-long-number",
        "json-101-digits",
        "json-brackets-in-a-string",
        "no-image-key",
        "json-not-an-object",
        "bad-base64",
        "comma-in-base64",
        "not-base64-url",
        "empty",
        "form",
        "lab-tiff",
        "eps-as-png",
        "truncated-png",
    ],
)
def test_bad_requests_get_4xx_with_a_message(client, kwargs, status, message):
    r = client.post("/api/predict", **kwargs)
    assert r.status_code == status and message in r.json()["detail"]
    if message in (NOT_AN_OBJECT, NOT_BASE64_URL, EMPTY, A_FORM) or message.startswith("the "):
        assert r.json()["detail"] == message  # the whole message


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_of_exactly_max_bytes_is_read(client, chunked):
    body = b"x" * 200_000  # the client's limit: read, and found to be no image
    r = client.post("/api/predict", content=iter([body]) if chunked else body, headers=PNG)
    assert r.status_code == 415 and "not an image" in r.json()["detail"]


def test_blank_drawing_is_422_no_digit(client):
    r = client.post("/api/predict", content=encoded(draw_digit(" ")), headers={"Content-Type": "image/png"})
    assert r.status_code == 422 and "no digit found" in r.json()["detail"]


def dot(diameter: int) -> bytes:
    """A PNG of one round dot on a 280x280 canvas, as the page's pen leaves at a click."""
    from PIL import ImageDraw

    img = Image.new("L", (280, 280), 255)
    r = diameter / 2
    ImageDraw.Draw(img).ellipse((140 - r, 140 - r, 140 + r, 140 + r), fill=17)
    return encoded(img)


@pytest.mark.parametrize("query", ["", "?number=1"])
@pytest.mark.parametrize("diameter", [4, 20, 48])  # the page's pen: thinnest, default, thickest
def test_a_single_dot_is_422_no_digit(client, diameter, query):
    r = client.post("/api/predict" + query, content=dot(diameter), headers=PNG)
    assert r.status_code == 422 and "no digit found" in r.json()["detail"]


def test_favicon_is_a_small_svg(client):
    r = client.get("/favicon.ico")
    assert r.status_code == 200 and r.headers["content-type"] == "image/svg+xml"
    assert r.content.startswith(b"<svg") and len(r.content) < 2000
    assert '<link rel="icon" href="/favicon.ico" type="image/svg+xml">' in client.get("/").text


def test_predict_a_number_reads_each_digit(client, untrained_run):
    data = encoded(draw_digit("41", size=(360, 160)))
    expected = Predictor.load(untrained_run).predict_number(data).to_dict()
    for query in ("?number=1", "?number=true"):
        start = time.perf_counter()
        r = client.post("/api/predict" + query, content=data, headers=PNG)
        elapsed_ms = 1000 * (time.perf_counter() - start)
        assert r.status_code == 200
        body = r.json()
        assert len(body["number"]) == len(body["digits"]) == 2 and body["number"] == expected["number"]
        assert 0 < body["ms"] < elapsed_ms and body["probability"] == pytest.approx(
            expected["probability"], abs=1e-6
        )
        for got, want in zip(body["digits"], expected["digits"], strict=True):
            assert got["label"] == want["label"] and got["box"] == want["box"]
            shown = base64.b64decode(got["input"].split(",")[1])
            assert Image.open(io.BytesIO(shown)).size == (28, 28)
        assert body["digits"][0]["box"][2] <= body["digits"][1]["box"][0]  # left to right
    for query in ("?number=0", "?number=false", "?number=FALSE", ""):
        as_digit = client.post("/api/predict" + query, content=data, headers=PNG).json()
        assert "label" in as_digit and "number" not in as_digit


@pytest.mark.parametrize(
    "query,kwargs,status,message",
    [
        ("?number=maybe", {"content": encoded(draw_digit("4")), "headers": PNG}, 400, "must be 0, 1"),
        ("?number=1", {"content": encoded(draw_digit(" ")), "headers": PNG}, 422, "no digit found"),
        ("?number=1", {"content": b"plain text", "headers": PNG}, 415, "not an image"),
        ("?number=1", {"json": {"image": "@@"}}, 400, "not valid base64"),
    ],
    ids=["bad-flag", "blank", "not-an-image", "bad-base64"],
)
def test_number_requests_get_the_same_errors(client, query, kwargs, status, message):
    r = client.post("/api/predict" + query, **kwargs)
    assert r.status_code == status and message in r.json()["detail"]


def test_an_unexpected_error_is_a_json_500_that_goes_no_further(untrained_run, monkeypatch, caplog):
    predictor = Predictor.load(untrained_run)
    monkeypatch.setattr(predictor, "probabilities", lambda images: 1 / 0)
    # the test client re-raises what escapes the app; uvicorn would close the connection under it
    with TestClient(create_app(predictor)) as client:
        r = client.post("/api/predict", content=encoded(draw_digit("1")), headers=PNG)
    assert r.status_code == 500 and "ZeroDivisionError" in r.json()["detail"]
    # and the log says which request failed, with the traceback
    logged = [record for record in caplog.records if record.name == "uvicorn.error"]
    assert [record.getMessage() for record in logged] == ["POST /api/predict failed"]
    assert logged[0].exc_info[0] is ZeroDivisionError


def test_past_max_pending_requests_wait_no_more_429(untrained_run, monkeypatch):
    predictor = Predictor.load(untrained_run)
    release, probabilities = threading.Event(), predictor.probabilities
    monkeypatch.setattr(predictor, "probabilities", lambda images: release.wait(10) and probabilities(images))
    app = create_app(predictor, Limits(workers=1, max_pending=2))
    data = encoded(draw_digit("1"))

    async def send_three() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as c:
            sent = [asyncio.create_task(c.post("/api/predict", content=data, headers=PNG)) for _ in range(3)]
            # two are in progress (one in the model, one prepared and waiting for it) until released
            await asyncio.wait(sent, return_when=asyncio.FIRST_COMPLETED)
            release.set()
            return sorted([await r for r in sent], key=lambda r: r.status_code)

    with TestClient(app):  # for the app's lifespan: its image workers start, and stop after
        for _ in range(2):  # and again: each request gave its place back
            release.clear()
            first, second, third = asyncio.run(send_three())
            assert first.status_code == second.status_code == 200
            assert third.status_code == 429 and "busy with 2 requests" in third.json()["detail"]
            assert third.headers["Retry-After"] == "1"


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--idle-timeout", "0", "'0' is not a number in (0, 3600]"),
        ("--head-timeout", "nan", "'nan' is not a number in (0, 3600]"),
        ("--body-timeout", "1e9", "'1e9' is not a number in (0, 3600]"),
        ("--workers", "0", "'0' is not a whole number from 1 to 64"),
    ],
)
def test_limits_out_of_range_are_refused_by_the_parser(option, value, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "RUN", option, value])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and f"error: argument {option}: {message}" in err


def start_server(*args: str) -> tuple[subprocess.Popen, str]:
    """`digitlearn serve [RUN] --port 0 ...` in its own process; returns it and the URL it printed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "digitlearn", "serve", *map(str, args), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    match = re.search(r"http://\S+/", line)
    if not match:
        proc.kill()
        raise AssertionError(f"the server did not start: {line!r} {proc.stderr.read()!r}")
    return proc, match.group(0)


def test_serve_listens_on_loopback_by_default(untrained_run):
    proc, url = start_server(untrained_run)
    try:
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(url + "health", timeout=10).json()["status"] == "ok"
        r = httpx.post(url + "api/predict", content=encoded(draw_digit("5")), timeout=10)
        assert r.status_code == 200 and r.json()["label"] in list("0123456789")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_taken_port_is_one_line_and_exit_1(untrained_run):
    # another program listens on the port (a listening socket is all the server would be to it)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        second = subprocess.run(
            [sys.executable, "-m", "digitlearn", "serve", str(untrained_run), "--port", port],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert second.returncode == 1
    assert second.stderr.strip().splitlines() == [
        f"digitlearn: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


def test_a_body_without_a_length_is_cut_off_at_the_limit(client):
    """Chunked, with no Content-Length to refuse it by: counted as it arrives, refused at the limit."""

    def chunks():
        for _ in range(30):
            yield b"x" * 10_000  # 300,000 bytes in all, over the 200,000 limit

    r = client.post("/api/predict", content=chunks(), headers=PNG)
    assert r.status_code == 413 and "over the limit of 200,000 bytes" in r.json()["detail"]
    small = client.post("/api/predict", content=iter([encoded(draw_digit("4"))]), headers=PNG)
    assert small.status_code == 200


def test_an_error_after_the_answer_began_is_not_answered_again(untrained_run, caplog):
    """Half an answer cannot be mended: an error after the response started (after its first part,
    or before it but after the status went out) goes on to the server, which closes the connection,
    rather than a second answer on the same one."""
    from fastapi.responses import StreamingResponse

    app = create_app(Predictor.load(untrained_run))

    def half() -> Iterator[bytes]:
        yield b"the first half"
        raise RuntimeError("the second half failed")

    def none() -> Iterator[bytes]:
        raise RuntimeError("the first part failed")
        yield b"never"

    app.get("/half")(lambda: StreamingResponse(half()))
    app.get("/none")(lambda: StreamingResponse(none()))
    for path, error in (("/half", "the second half failed"), ("/none", "the first part failed")):
        with pytest.raises(RuntimeError, match=f"^{error}$"):
            TestClient(app).get(path)
    assert not [r for r in caplog.records if r.getMessage().endswith("failed")]  # no 500 logged
