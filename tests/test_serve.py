"""The web app: page, health, the prediction API and its errors; the server on loopback."""

import base64
import io
import re
import socket
import subprocess
import sys

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient

from digitlearn.predictor import Predictor
from digitlearn.serve import create_app
from tests.conftest import draw_digit, encoded


@pytest.fixture(scope="module")
def client(untrained_run):
    return TestClient(create_app(Predictor.load(untrained_run), max_bytes=200_000))


def test_page_and_health(client):
    page = client.get("/")
    assert page.status_code == 200 and "<canvas" in page.text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.text)  # no external resources
    health = client.get("/health").json()
    assert (
        health["status"] == "ok" and health["classes"] == list("0123456789") and health["input"] == [28, 28]
    )


def test_predict_from_bytes_and_from_a_data_url(client, untrained_run):
    data = encoded(draw_digit("3"))
    expected = Predictor.load(untrained_run).predict(data)
    raw = client.post("/api/predict", content=data, headers={"Content-Type": "image/png"})
    url = "data:image/png;base64," + base64.b64encode(data).decode()
    as_json = client.post("/api/predict", json={"image": url})
    for r in (raw, as_json):
        assert r.status_code == 200
        body = r.json()
        assert body["label"] == expected.label and list(body["probabilities"]) == list("0123456789")
        assert body["probabilities"][expected.label] == pytest.approx(expected.probability, abs=1e-6)
        assert body["input"].startswith("data:image/png;base64,")
    shown = base64.b64decode(as_json.json()["input"].split(",")[1])
    from PIL import Image

    assert Image.open(io.BytesIO(shown)).size == (28, 28)


@pytest.mark.parametrize(
    "kwargs,status,message",
    [
        ({"content": b"x" * 200_001, "headers": {"Content-Type": "image/png"}}, 413, "limit"),
        ({"content": b"plain text", "headers": {"Content-Type": "text/plain"}}, 415, "not an image"),
        ({"content": b'{"image": ', "headers": {"Content-Type": "application/json"}}, 400, "malformed JSON"),
        ({"json": {"picture": "x"}}, 400, '"image"'),
        ({"json": {"image": "data:image/png;base64,@@@"}}, 400, "not valid base64"),
        ({"json": {"image": "data:image/png,abc"}}, 400, "base64-encoded"),
        ({"content": b"", "headers": {"Content-Type": "image/png"}}, 400, "empty request"),
        ({"files": {"file": ("a.png", b"123", "image/png")}}, 415, "not a form"),
    ],
    ids=[
        "too-large",
        "not-an-image",
        "malformed-json",
        "no-image-key",
        "bad-base64",
        "not-base64-url",
        "empty",
        "form",
    ],
)
def test_bad_requests_get_4xx_with_a_message(client, kwargs, status, message):
    r = client.post("/api/predict", **kwargs)
    assert r.status_code == status and message in r.json()["detail"]


def test_blank_drawing_is_422_no_digit(client):
    r = client.post("/api/predict", content=encoded(draw_digit(" ")), headers={"Content-Type": "image/png"})
    assert r.status_code == 422 and "no digit found" in r.json()["detail"]


def start_server(run, *args: str) -> tuple[subprocess.Popen, str]:
    """`digitlearn serve RUN --port 0` in its own process; returns it and the URL it printed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "digitlearn", "serve", str(run), "--port", "0", *args],
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
