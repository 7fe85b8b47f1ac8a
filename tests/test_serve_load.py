"""`digitlearn serve` under attack, in its own process on 127.0.0.1: a mixed load of good and
hostile requests on kept-alive connections, and clients that are slow, silent or short of bytes.

The hostile requests are the ones an attack campaign sent: each must be a 4xx with a JSON reason,
cost the server little, and leave the good requests beside it untouched."""

import asyncio
import base64
import select
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx2 as httpx
import pytest
from PIL import Image

from digitlearn.inference.predictor import Predictor
from tests.conftest import draw_digit, encoded
from tests.test_serve import start_server

CONCURRENCY = 24
MAX_BYTES = 1_000_000  # the load's own limit: an oversized body need not be 5 MiB
# An image at the decode budget takes ~300 MB while it is prepared: the load sends HEAVY at once
# to a server with one worker, which peaks near 560 MiB; with a thread each (the old pool of 40)
# it peaked at 1,374 MiB, and each EXIF RGBA bomb took 1.2 GB before images.py had a budget.
# The images are prepared in worker processes, so each process's peak is bounded: a worker that
# took several heavy images at once would pass it. (Their sum counts the libraries and the memory
# a worker shares with the fork server it comes from once in each: more than is used.)
HEAVY, PEAK_MEMORY = 4, 2**30
TIMEOUT = 1.0  # seconds, each of the strict server's timeouts
PNG = {"Content-Type": "image/png"}
JSON = {"Content-Type": "application/json"}


def rotated_rgba(side: int) -> bytes:
    """A white RGBA PNG whose EXIF says to rotate it: small on disk, side x side x 4 bytes decoded,
    and the rotation copies it (a few hundred kB that cost 1.2 GB before the decode budget)."""
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees
    return encoded(Image.new("RGBA", (side, side), "white"), exif=exif)


class Chunked:
    """An oversized body sent in chunks, with no Content-Length to refuse it by (an object, not a
    generator, so that every request sends it again)."""

    async def __aiter__(self):
        yield b"\0" * MAX_BYTES
        yield b"\0"


def data_url(data: bytes) -> dict:
    return {"image": "data:image/png;base64," + base64.b64encode(data).decode()}


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """The campaign's: 220 kB that decode to 7071x7071 RGBA, then rotated (1.2 GB and 3.9 s)."""
    return rotated_rgba(7071)


@pytest.fixture(scope="module")
def bad(bomb) -> list[tuple[str, dict, int, str]]:
    """(name, httpx arguments, status, a word of the reason) for each class of hostile request."""
    drawing, eps = encoded(draw_digit("4")), encoded(Image.new("RGB", (32, 32)), "EPS")
    return [
        ("deep JSON", {"content": b"[" * 100_000 + b"]" * 100_000, "headers": JSON}, 400, "nested"),
        ("long JSON number", {"content": b'{"image": ' + b"9" * 5000 + b"}", "headers": JSON}, 400, "5,000"),
        ("LAB TIFF", {"content": encoded(Image.new("LAB", (64, 64)), "TIFF")}, 415, "convert"),
        ("EXIF RGBA bomb", {"content": bomb}, 415, "too large"),
        ("1-bit 9000x9000", {"content": encoded(Image.new("1", (9000, 9000)))}, 415, "too large"),
        ("EPS as PNG", {"content": eps, "headers": PNG}, 415, "format"),
        ("truncated PNG", {"content": drawing[: len(drawing) // 2], "headers": PNG}, 415, "decode"),
        ("not an image", {"content": b"MZ\x90\x00" + bytes(range(256)) * 4}, 415, "format"),
        ("wrong base64", {"json": {"image": "data:image/png;base64,iVBORw0K?=="}}, 400, "base64"),
        ("oversized", {"content": b"\0" * (MAX_BYTES + 1), "headers": PNG}, 413, "limit"),
        ("oversized, chunked", {"content": Chunked()}, 413, "limit"),
        ("multipart", {"files": {"file": ("7.png", drawing, "image/png")}}, 415, "form"),
    ]


@pytest.fixture(scope="module")
def server(untrained_run):
    proc, url = start_server(untrained_run, "--workers", "1", "--max-bytes", str(MAX_BYTES))
    yield proc, url
    proc.terminate()
    proc.wait(timeout=10)


async def send_all(url: str, jobs: list[tuple[str, dict, int, str]]) -> list[str]:
    """Send the jobs, CONCURRENCY at once on as many kept-alive connections; what went wrong."""
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    queue, failures = list(reversed(jobs)), []
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def worker() -> None:
            while queue:
                name, kwargs, status, expected = queue.pop()
                try:
                    r = await client.post("api/predict", **kwargs)
                    got = r.json()["label" if r.status_code == 200 else "detail"]  # all answers are JSON
                except (httpx.HTTPError, ValueError, KeyError) as e:
                    failures.append(f"{name}: {type(e).__name__} {e}")
                    continue
                if r.status_code != status or expected not in got:
                    failures.append(f"{name}: {r.status_code} {got!r}, expected {status} {expected!r}")

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return failures


def peak_memory(pid: int) -> list[int]:
    """The peak resident memory in bytes (VmHWM) of a process and of each process it started (the
    server's image workers, the fork server they come from, multiprocessing's resource tracker)."""
    status = Path(f"/proc/{pid}/status").read_text()
    peak = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) * 1024
    tasks = Path(f"/proc/{pid}/task").iterdir()
    children = [int(child) for task in tasks for child in (task / "children").read_text().split()]
    return [peak, *(p for child in children for p in peak_memory(child))]


def good_requests(run: Path) -> list[tuple[str, dict, int, str]]:
    """Drawings of each digit, as PNG bytes and as a data URL, and the label the model gives them."""
    predictor = Predictor.load(run)
    good = []
    for digit in "0123456789":
        png = encoded(draw_digit(digit))
        label = predictor.predict(png).label  # the server must answer the same: a deterministic model
        good += [(f"{digit} as PNG", {"content": png, "headers": PNG}, 200, label)] * 3
        good += [(f"{digit} as a data URL", {"json": data_url(png)}, 200, label)] * 3
    return good


def test_a_mixed_load_answers_every_good_request_and_no_5xx(server, bad, untrained_run):
    proc, url = server
    # not hostile, but the most an image may cost (the budget admits it; it has no digit): at once
    heavy = ("at the decode budget", {"content": rotated_rgba(5792), "headers": PNG}, 422, "no digit")
    jobs = [heavy] * HEAVY
    for k, job in enumerate(good_requests(untrained_run)):  # every hostile class among the good ones
        jobs += [job, *([bad[k // 2 % len(bad)]] if k % 2 else [])]
    start = time.perf_counter()
    failures = asyncio.run(send_all(url, jobs))
    seconds, peaks = time.perf_counter() - start, peak_memory(proc.pid)
    shown = ", ".join(f"{peak / 2**20:,.0f}" for peak in peaks)
    print(f"{len(jobs)} requests in {seconds:.1f} s; the server's processes' peak memory (MiB): {shown}")
    assert failures == [], f"{len(failures)} of {len(jobs)} failed"
    # the server, its one worker, the fork server and multiprocessing's resource tracker
    assert max(peaks) < PEAK_MEMORY and len(peaks) <= 4
    assert proc.poll() is None


def test_a_decompression_bomb_is_refused_from_its_header(server, bomb):
    # refused before decoding (how fast, and the memory it costs: bench/refusals.py)
    r = httpx.post(server[1] + "api/predict", content=bomb, headers=PNG, timeout=10)
    assert r.status_code == 415 and "7071x7071 pixels" in r.json()["detail"]


# ---------------------------------------------------------------- slow, silent and short clients


@pytest.fixture(scope="module")
def strict(untrained_run):
    """A server with TIMEOUT seconds for each timeout, and its address."""
    proc, url = start_server(
        untrained_run, *(f"--{kind}-timeout={TIMEOUT}" for kind in ("idle", "head", "body"))
    )
    yield proc, url
    proc.terminate()
    proc.wait(timeout=10)


def connect(url: str, request: bytes, dribble: bytes = b"") -> tuple[float, bytes]:
    """Send `request` to the server at `url`, then `dribble` a byte every 0.1 s, until the server
    closes the connection: the seconds that took (inf: it did not, in 5 s) and all the server sent."""
    where = urlsplit(url)
    with socket.create_connection((where.hostname, where.port)) as sock:
        start, got, left = time.monotonic(), b"", iter(dribble)
        sock.sendall(request)
        while time.monotonic() - start < 5:
            if select.select([sock], [], [], 0.1)[0]:
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                if not chunk:
                    return time.monotonic() - start, got
                got += chunk
            elif (byte := next(left, None)) is not None:
                sock.sendall(bytes([byte]))
    return float("inf"), got


HEAD = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
POST = b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n"
CLIENTS = {  # name: (request, dribble, what the server answers before it closes)
    "silent": (b"", b"", b""),
    "slow head": (HEAD[:-2], b"X-Padding: " + b"x" * 100, b""),
    "idle after a request": (HEAD, b"", b"HTTP/1.1 200 OK"),
    "short body": (POST + b"0123456789", b"", b"HTTP/1.1 408 Request Timeout"),
    "slow body": (POST + b"0123456789", b"x" * 990, b"HTTP/1.1 408 Request Timeout"),
}


def test_slow_silent_and_short_clients_are_closed_in_time(strict):
    url = strict[1]
    kinds = list(CLIENTS) * 20  # the campaign held 300 such connections for 75 s
    with ThreadPoolExecutor(len(kinds)) as pool:
        results = pool.map(lambda kind: connect(url, *CLIENTS[kind][:2]), kinds)
        # and meanwhile the server answers others
        assert httpx.get(url + "health", timeout=5).json()["status"] == "ok"
        results = list(results)
    for kind, (seconds, got) in zip(kinds, results, strict=True):
        answer = CLIENTS[kind][2]
        assert seconds < TIMEOUT + 1.5 and got.startswith(answer), (kind, seconds, got[:100])
        if answer.endswith(b"Timeout"):
            assert b'{"detail":"the request body did not arrive within 1 seconds"}' in got


def test_a_request_that_is_not_http_gets_a_json_400(strict):
    seconds, got = connect(strict[1], b"HELLO\r\n\r\n")
    assert seconds < 1 and got.startswith(b"HTTP/1.1 400 Bad Request")
    assert got.endswith(b'{"detail": "the request is not valid HTTP/1.1"}')
