"""`serve` on a thread of the test process: the line it prints, the address it listens on, and
what it does with connections (a deadline for each request's head, kept-alive connections left
idle, too many connections, bytes that are not HTTP).

tests/test_serve.py and tests/test_serve_load.py also run `digitlearn serve` as a program, where
the process boundary is the point; here the server's own code runs in the test process, where
mutation testing (docs/architecture.md, "Testing") sees which tests reach it."""

import contextlib
import logging
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx2 as httpx
import pytest

from digitlearn.errors import DigitlearnError
from digitlearn.inference.predictor import Predictor
from digitlearn.inference.serve import Limits, serve
from tests.conftest import draw_digit, encoded

PNG = {"Content-Type": "image/png"}
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
IDLE, HEAD, BODY = 0.5, 1.5, 3.0  # the timing server's seconds: idling kept alive, a head, a body


class Pipe:
    """A pipe whose write end stands in for sys.stdout (block-buffered, as a program's stdout is
    when a parent reads it through a pipe) or sys.stderr (line-buffered); a thread collects what
    comes through."""

    def __init__(self, line_buffered: bool) -> None:
        read, write = os.pipe()
        self.file = open(write, "w", buffering=1 if line_buffered else -1)  # noqa: SIM115
        self.data = b""
        self._reader = threading.Thread(target=self._read, args=(read,), daemon=True)
        self._reader.start()

    def _read(self, fd: int) -> None:
        with open(fd, "rb", buffering=0) as f:
            while chunk := f.read(65536):
                self.data += chunk

    def close(self) -> str:
        self.file.close()
        self._reader.join(10)
        return self.data.decode()


@dataclass
class Served:
    predictor: Predictor
    line: str  # the first line the server printed
    url: str
    stderr: str = ""  # all it wrote there, once it has stopped


@contextlib.contextmanager
def serving(run, host: str = "127.0.0.1", port: int | None = None, **limits) -> Iterator[Served]:
    """`serve(...)` on a thread, its stdout and stderr pipes; yields once it answers /health on
    `port` (None: serve's default; else a free one), with the line it printed by then, and stops it
    after (through `stop`), checking that it ended cleanly."""
    kept = {name: logging.getLogger(name) for name in UVICORN_LOGGERS}
    kept = {name: (lg, lg.handlers[:], lg.level, lg.propagate, lg.disabled) for name, lg in kept.items()}
    predictor, stop, failed = Predictor.load(run), threading.Event(), []
    # serve's defaults where not given: its host is loopback
    args = (predictor,) if host == "127.0.0.1" and port is None else (predictor, host, port or 8000)
    where = "127.0.0.1" if host == "0.0.0.0" else f"[{host}]" if ":" in host else host
    health = f"http://{where}:{port or 8000}/health"

    def run_server() -> None:
        try:
            serve(*args, limits=Limits(**{"workers": 1, **limits}), stop=stop)
        except BaseException as e:  # reported by the test
            failed.append(e)

    out, err = Pipe(line_buffered=False), Pipe(line_buffered=True)
    real = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out.file, err.file  # uvicorn's log handler takes this stderr, too
    thread = threading.Thread(target=run_server, name="serve", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60  # the first start of the image workers' fork server
        while True:
            assert thread.is_alive() and time.monotonic() < deadline, (failed, out.data, err.data)
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(health, timeout=1).status_code == 200:
                    break
            time.sleep(0.05)
        # it answers: the line that says so has reached the pipe (printed, and flushed)
        for _ in range(100):
            if b"\n" in out.data:
                break
            time.sleep(0.01)
        line = out.data.decode().partition("\n")[0]
        match = re.search(r"http://\S+/", line)
        assert match, (line, out.data)
        served = Served(predictor, line, match.group(0))
        yield served
    finally:
        stop.set()
        thread.join(30)
        sys.stdout, sys.stderr = real
        for lg, handlers, level, propagate, disabled in kept.values():
            lg.handlers, lg.level, lg.propagate, lg.disabled = handlers, level, propagate, disabled
        out.close()
        stderr = err.close()
    assert not thread.is_alive() and not failed, failed
    served.stderr = stderr


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    try:
        socket.create_server(("127.0.0.1", port)).close()
    except OSError:
        return False
    return True


def test_serve_prints_its_url_answers_and_stops(untrained_run):
    # serve's default port where it is free (another program may hold it: then a given one)
    port = 8000 if port_is_free(8000) else free_port()
    with serving(untrained_run, port=None if port == 8000 else port, max_bytes=123_456) as served:
        assert served.line == f"serving {served.predictor!r} at http://127.0.0.1:{port}/ (Ctrl+C to stop)"
        health = httpx.get(served.url + "health", timeout=10).json()
        assert health["status"] == "ok" and health["max_bytes"] == 123_456  # the limits given
        data = encoded(draw_digit("5"))
        r = httpx.post(served.url + "api/predict", content=data, headers=PNG, timeout=30)
        assert r.status_code == 200 and r.json()["label"] == served.predictor.predict(data).label
    assert served.stderr == ""  # nothing logged: no start-up lines, no access log, no warning
    with pytest.raises(httpx.ConnectError):  # stopped: nothing listens there
        httpx.get(served.url + "health", timeout=5)


def test_an_ipv6_address_is_shown_in_brackets(untrained_run):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        pytest.skip("no IPv6 loopback")
    with serving(untrained_run, host="::1", port=free_port()) as served:
        assert re.fullmatch(r"http://\[::1\]:\d+/", served.url)
    assert served.stderr == ""


def test_listening_beyond_loopback_warns(untrained_run):
    # every address of this machine, for the second or two the test takes
    with serving(untrained_run, host="0.0.0.0", port=free_port()) as served:
        assert served.url.startswith("http://0.0.0.0:")
    assert served.stderr == (
        "digitlearn: warning: listening on 0.0.0.0: other machines can reach this server\n"
    )


def test_a_port_taken_or_a_host_unknown_is_one_clear_error(untrained_run):
    predictor = Predictor.load(untrained_run)
    # were it to listen after all, it would stop at once rather than serve for ever
    stop = threading.Event()
    stop.set()
    limits = Limits(workers=1)
    with socket.create_server(("127.0.0.1", 0)) as taken:  # another program listens there
        port = taken.getsockname()[1]
        with pytest.raises(DigitlearnError) as error:
            serve(predictor, "127.0.0.1", port, limits, stop)
    assert str(error.value) == f"cannot listen on 127.0.0.1:{port}: Address already in use"
    with pytest.raises(DigitlearnError) as error:
        serve(predictor, "nosuchhost.invalid", 8000, limits, stop)
    # the resolver's reason in words ("Name or service not known"), not "[Errno -2] ..."
    assert re.fullmatch(r"cannot listen on nosuchhost\.invalid:8000: [A-Z][^\[\]]+", str(error.value))
    with pytest.raises(DigitlearnError) as error:
        serve(predictor, "x" * 64, 8000, limits, stop)  # not even a name: a label of 64 characters
    assert str(error.value).startswith("cannot listen on " + "x" * 64 + ":8000: ")
    assert "label too long" in str(error.value)


# ---------------------------------------------------------------- connections


@pytest.fixture
def timed(untrained_run) -> Iterator[Served]:
    """A server whose kept-alive connections may idle IDLE seconds, whose heads must arrive within
    HEAD and bodies within BODY, with at most 6 connections open. One for each test: mutation
    testing runs a test for a mutant only where that test itself runs the mutated code."""
    limits = {"idle_timeout": IDLE, "head_timeout": HEAD, "body_timeout": BODY, "max_connections": 6}
    with serving(untrained_run, port=free_port(), **limits) as served:
        yield served


def address(served: Served) -> tuple[str, int]:
    host, port = served.url[len("http://") : -1].rsplit(":", 1)
    return host, int(port)


def talk(served: Served, steps: list[bytes | float], limit: float = 6) -> tuple[float, bytes]:
    """On one connection, send each bytes step and wait each float step (seconds), reading all the
    while; then read until the server closes the connection. Returns the seconds from the start
    to the close (inf: not within `limit`) and everything the server sent."""
    got, pending = b"", list(steps)
    with socket.create_connection(address(served)) as sock:
        sock.settimeout(0.02)
        start = time.monotonic()
        wait_until = start
        while time.monotonic() - start < limit:
            if pending and time.monotonic() >= wait_until:
                step = pending.pop(0)
                if isinstance(step, bytes):
                    sock.sendall(step)
                else:
                    wait_until = time.monotonic() + step
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return time.monotonic() - start, got
            got += chunk
    return float("inf"), got


HEALTH = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
POST_10 = (
    b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\nContent-Length: 10\r\n\r\n"
)


def answers(got: bytes) -> list[bytes]:
    """The status lines in what the server sent."""
    return re.findall(rb"HTTP/1\.1 \d\d\d [^\r]*", got)


def dribble(data: bytes, every: float = 0.1) -> list[bytes | float]:
    return [step for byte in data for step in (bytes([byte]), every)]


def test_heads_must_arrive_in_time_and_kept_alive_connections_idle_only_so_long(timed):
    clients = {  # name: (steps, when the server should close it: seconds from the start)
        # nothing at all: closed when its head is late
        "silent": ([], HEAD),
        # its head a byte at a time: also when the head is late, not before
        "slow head": (dribble(b"GET /health HTTP/1.1\r\nX-Padding: " + b"x" * 40), HEAD),
        # answered, then silent: when it has idled its time
        "idle after an answer": ([HEALTH], IDLE),
        # answered, then the next head a byte at a time: late, counted from the answer
        "slow next head": ([HEALTH, 0.2, *dribble(b"GET /health HTTP/1.1\r\nX: " + b"x" * 40)], HEAD),
        # its body short of its length: answered 408, and closed, when the body is late
        "short body": ([POST_10 + b"01234"], BODY),
    }
    with ThreadPoolExecutor(len(clients)) as pool:
        results = dict(zip(clients, pool.map(lambda c: talk(timed, c[0]), clients.values()), strict=True))
    for name, (seconds, got) in results.items():
        expected = clients[name][1]
        assert expected - 0.1 < seconds < expected + 0.4, (name, seconds, got[:80])
        if name == "short body":
            assert answers(got) == [b"HTTP/1.1 408 Request Timeout"] and b"connection: close" in got
            assert got.endswith(b'{"detail":"the request body did not arrive within 3 seconds"}')
        else:
            assert answers(got) == ([b"HTTP/1.1 200 OK"] if "answer" in name or "next" in name else []), name


def test_a_client_gone_before_its_body_is_no_error(untrained_run):
    with serving(untrained_run, port=free_port()) as served:
        talk(served, [POST_10 + b"01234"], limit=0.3)  # and closes its end
        time.sleep(0.3)
        assert httpx.get(served.url + "health", timeout=5).status_code == 200
    assert served.stderr == ""  # nothing logged: an answer nobody reads is not an error


def test_the_head_deadline_stops_once_a_head_arrives(timed):
    # two requests at once (pipelined), the second's body arriving after the head deadline (it
    # has the body timeout): both answered; then a third on the same connection
    steps = [HEALTH + POST_10, HEAD + 0.5, b"0123456789", 0.2, HEALTH]
    _, got = talk(timed, steps)
    assert answers(got) == [b"HTTP/1.1 200 OK", b"HTTP/1.1 415 Unsupported Media Type", b"HTTP/1.1 200 OK"]
    assert b"not an image" in got


def test_bytes_that_are_not_http_get_a_json_400_and_the_connection_closes(timed):
    seconds, got = talk(timed, [b"HELLO\r\n\r\n"])
    assert seconds < 1
    body = b'{"detail": "the request is not valid HTTP/1.1"}'
    assert got == (
        b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
    )


def test_past_max_connections_the_next_request_gets_503(timed):
    host, port = address(timed)
    # 5 connections open, silent; the sixth's request is refused
    with contextlib.ExitStack() as held:
        for _ in range(5):
            held.enter_context(socket.create_connection((host, port)))
        r = httpx.get(timed.url + "health", timeout=5)
        assert r.status_code == 503
    time.sleep(0.1)  # the server sees them closed
    assert httpx.get(timed.url + "health", timeout=5).status_code == 200
