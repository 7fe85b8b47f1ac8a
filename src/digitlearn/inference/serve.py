"""`digitlearn serve`: a drawing page and a JSON API around a Predictor (FastAPI on uvicorn).

  GET  /             the page: draw a digit or a number (mouse or touch) or upload an image
  GET  /favicon.ico  the icon, an SVG (the path browsers ask for where a page, /health say, names none)
  GET  /health       {"status": "ok", model, classes, input size, max_bytes}
  POST /api/predict  an image's bytes (any image Content-Type), or JSON {"image": "data:...;base64,..."}
                     -> {"label", "index", "probability", "probabilities", "top", "input" (a PNG data
                     URL), "ms"}
  POST /api/predict?number=1  the same request, read as a number's digits left to right
                     -> {"number", "probability", "digits": [{"label", "probability", "box", "input"}],
                     "ms"}

Errors are JSON {"detail": "<what is wrong>"}, and a bad request gets a 4xx, never a 5xx:
  400  an empty body; `number` other than 0, 1, true or false; malformed JSON or base64; JSON
       nested over MAX_JSON_DEPTH levels or with a number over MAX_JSON_DIGITS digits; a request
       that is not HTTP (the connection is closed)
  408  the body did not all arrive within `body_timeout` (the connection is closed)
  413  a body over `max_bytes`, refused before it is read when its Content-Length says so (the
       rest is still read, and dropped, within `head_timeout`: so the client sees the answer)
  415  bytes that are not an image we open (images.py: format allow-list, MAX_PIXELS and
       DECODE_BUDGET, every conversion inside its guard), or a multipart form
  422  an image with no digit on it, or one the model cannot score
  429  `max_pending` API requests are in progress already: try again after Retry-After seconds
  500  a bug: logged, answered, and the kept-alive connection stays usable for the next request
  503  `max_connections` connections are open (uvicorn's answer, in plain text)

The limits (`Limits`; most are command-line options) keep one client from taking the server from
the others. A slow or silent client held a connection for ever, so a kept-alive connection may
wait `idle_timeout` (5 s) for its next request, whose line and headers must then arrive within
`head_timeout` (10 s) and its body within `body_timeout` (30 s). `workers` (the CPUs this
process may use, at most 4) images are prepared at once, each in a worker process (workers.py),
and the others wait their turn: each can take a few hundred MB, and more at once is more memory,
not more speed. At most `max_pending` (64) API requests are in progress, each holding its body of
at most `max_bytes` (5 MiB), and `max_connections` (1,000) connections open.

Where a request's time goes: the event loop reads it and hands its bytes to a worker process,
which decodes and prepares the image (a drawing takes about 3 ms) and returns the 28x28 input;
the inputs of requests prepared meanwhile go through the model together (batching.py), in a thread
beside the loop. A number's request (?number=1) is read in a thread of this process instead, since
reading a number runs the model on each cut of the ink.
"""

import asyncio
import base64
import binascii
import io
import ipaddress
import logging
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.resources import files

import h11
import numpy as np
import torch
import uvicorn
from anyio import CapacityLimiter, fail_after, to_thread
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from PIL import Image
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..errors import DigitlearnError
from ..hardware import usable_cores
from ..jsondata import JSONError, read_json
from ..vision.images import ImageError
from .batching import Batcher
from .predictor import Prediction, Predictor, prepared
from .workers import Workers

MAX_JSON_DEPTH = 32  # {"image": "..."} is 1 deep; Python's parser recurses once a level
MAX_JSON_DIGITS = 100  # int() of a few thousand digits is refused, of more is slow: none is needed
LOG = logging.getLogger("uvicorn.error")  # uvicorn prints it (warnings and errors)


@dataclass(frozen=True)
class Limits:
    """What one client may take from the server (see the module's description)."""

    max_bytes: int = 5 * 2**20  # a photo from a phone fits; a drawing is a few kB
    idle_timeout: float = 5.0  # seconds a kept-alive connection may wait for its next request
    head_timeout: float = 10.0  # seconds for a request's line and headers to arrive, all of them
    body_timeout: float = 30.0  # seconds for its body: max_bytes at 170 kB/s, a slow phone upload
    workers: int = min(4, usable_cores())  # worker processes, images prepared at once: ~300 MB each
    max_pending: int = 64  # API requests in progress (arriving, waiting, predicting); each holds its body
    max_connections: int = 1000  # under the usual limit of 1,024 open files


def png_data_url(image) -> str:
    """A (H, W) float image in [0, 1] as a PNG data URL (for showing the model's input)."""
    buf = io.BytesIO()
    Image.fromarray((np.asarray(image) * 255).round().astype(np.uint8)).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


# ---------------------------------------------------------------- a request's image


async def _read_body(request: Request, limits: Limits) -> bytes:
    """The request body, refused (413) as soon as it is known to pass `max_bytes`, and (408) if
    it has not all arrived within `body_timeout`."""
    limit = limits.max_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"the request is {int(declared):,} bytes; the limit is {limit:,}")
    body = bytearray()
    try:
        with fail_after(limits.body_timeout):
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise HTTPException(413, f"the request is over the limit of {limit:,} bytes")
    except TimeoutError:  # and the connection closed: it is a slow client's
        raise HTTPException(
            408,
            f"the request body did not arrive within {limits.body_timeout:g} seconds",
            {"Connection": "close"},
        ) from None
    except ClientDisconnect:  # the client is gone: an answer nobody reads, not an error in the log
        raise HTTPException(400, "the client closed the connection before sending the body") from None
    return bytes(body)


def _json_image(body: bytes) -> bytes:
    """The image in a JSON body {"image": "<a data URL or base64>"}, decoded."""
    try:
        payload = read_json(body, MAX_JSON_DEPTH, MAX_JSON_DIGITS)
    except JSONError as e:
        raise HTTPException(400, f"malformed JSON: {e}") from None
    image = payload.get("image") if isinstance(payload, dict) else None
    if not isinstance(image, str):
        raise HTTPException(400, 'the JSON must be an object with "image": a data URL or base64 string')
    if image.startswith("data:"):
        header, sep, image = image.partition(",")
        if not sep or not header.endswith(";base64"):
            raise HTTPException(
                400, 'the "image" data URL must be base64-encoded ("data:image/png;base64,...")'
            )
    try:
        return base64.b64decode(image, validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(400, 'the "image" is not valid base64') from None


def _image_bytes(body: bytes, content_type: str) -> bytes:
    """The image inside a request body: the body itself, or the data URL (or base64) in JSON."""
    if not body:
        raise HTTPException(
            400, 'empty request: send an image\'s bytes, or JSON {"image": "data:image/png;base64,..."}'
        )
    kind = content_type.split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        raise HTTPException(
            415, "send the image's bytes as the request body (Content-Type image/png etc.), not a form"
        )
    return _json_image(body) if kind == "application/json" else body


def _number_flag(request: Request) -> bool:
    """Whether the request asks for a number (?number=1) rather than one digit."""
    value = request.query_params.get("number", "0").lower()
    if value not in ("0", "1", "true", "false"):
        raise HTTPException(400, f"number={value!r}: it must be 0, 1, true or false")
    return value in ("1", "true")


@dataclass(frozen=True)
class _Refusal:
    """What is wrong with a request, found in a worker process (an HTTPException is not picklable)."""

    status: int
    detail: str


@dataclass(frozen=True)
class _Input:
    """A request's image prepared in a worker: the model's input, and how it looks."""

    image: np.ndarray  # (H, W) float32 in [0, 1]
    shown: str  # the input as a PNG data URL
    ms: float  # the preparing's milliseconds


def _prepare(body: bytes, content_type: str, size: tuple[int, int]) -> _Input | _Refusal:
    """A request's image as the model's input, or what is wrong with it (400 the request, 415 not
    an image we open, 422 no digit). Runs in a worker process: all of it is CPU work on the
    client's bytes."""
    start = time.perf_counter()
    try:
        # the API has no warning of several marks: they are not counted
        result = prepared(_image_bytes(body, content_type), size, count_marks=False)
    except HTTPException as e:
        return _Refusal(e.status_code, e.detail)
    if isinstance(result, DigitlearnError):
        return _Refusal(415 if isinstance(result, ImageError) else 422, str(result))
    image = result[0]
    return _Input(image.numpy(), png_data_url(image), 1000 * (time.perf_counter() - start))


def _read_number(predictor: Predictor, body: bytes, content_type: str) -> dict:
    """The API's answer for a request's number, with the milliseconds it took; what is wrong with
    the request as a 4xx. Runs in a worker thread: reading a number runs the model on each
    candidate cut of the ink, so it stays beside the model."""
    start = time.perf_counter()
    data = _image_bytes(body, content_type)
    try:
        result = predictor.predict_number(data)
    except DigitlearnError as e:  # not an image we open (415); no digit, or no finite output (422)
        raise HTTPException(415 if isinstance(e, ImageError) else 422, str(e)) from None
    answer = result.to_dict()
    for digit, prediction in zip(answer["digits"], result.digits, strict=True):
        digit["input"] = png_data_url(prediction.input)
    return {**answer, "ms": 1000 * (time.perf_counter() - start)}


class _Admission:
    """The API requests in progress (arriving, waiting for a worker, predicting). Past `limit`,
    the next is refused (429) before its body is read: waiting ones, each holding its body, cannot
    pile up without bound. Used on the event loop only, so the count needs no lock."""

    def __init__(self, limit: int) -> None:
        self.limit, self.count = limit, 0

    def __enter__(self) -> None:
        if self.count >= self.limit:
            raise HTTPException(
                429, f"the server is busy with {self.count} requests; try again shortly", {"Retry-After": "1"}
            )
        self.count += 1

    def __exit__(self, *exc: object) -> None:
        self.count -= 1


class _ContainErrors:
    """ASGI middleware: an exception no handler expected is logged and answered with a JSON 500,
    and goes no further. Starlette's own 500 re-raises it, and uvicorn then closes the connection
    under the response: a client reusing that kept-alive connection saw its next request fail."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as e:
            if started or scope["type"] != "http":  # half an answer cannot be mended: uvicorn closes
                raise
            LOG.exception("%s %s failed", scope["method"], scope["path"])
            detail = f"the server failed on this request ({type(e).__name__}); its log says more"
            await JSONResponse({"detail": detail}, 500)(scope, receive, send)


def create_app(predictor: Predictor, limits: Limits = Limits()) -> FastAPI:
    """The web app for `predictor`; serve it with any ASGI server (`serve` uses uvicorn, and adds
    the limits on connections). Its images are prepared in `limits.workers` worker processes,
    started with the app (or at the first request), and go through the model in batches."""
    workers = Workers(limits.workers, preload=[__name__])
    batcher = Batcher(predictor.probabilities)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await to_thread.run_sync(workers.start)
        yield
        workers.close()
        batcher.close()

    # no /docs: its page loads scripts from a CDN, which an offline machine cannot reach
    app = FastAPI(title="digitlearn", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.add_middleware(_ContainErrors)
    app.state.workers = workers  # for `serve`, to start them before it says it is serving
    static = files("digitlearn.inference") / "static"
    page = (static / "index.html").read_text(encoding="utf-8")
    icon = (static / "favicon.svg").read_bytes()
    arch = (predictor.config.get("model") or {}).get("arch", "model")
    info = {
        "status": "ok",
        "model": arch,
        "run": predictor.path.name if predictor.path else None,
        "classes": predictor.classes,
        "input": list(predictor.size),
        "max_bytes": limits.max_bytes,
    }
    admission = _Admission(limits.max_pending)
    # images prepared at once, in the workers or (numbers) in threads; the others wait their turn
    # in order: under load, requests are slower, not refused
    preparing = CapacityLimiter(limits.workers)

    @app.get("/", response_class=HTMLResponse)
    async def index() -> str:
        return page

    @app.get("/favicon.ico")
    async def favicon() -> Response:
        # an SVG under the name browsers ask for: one small file serves every size
        return Response(icon, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})

    @app.get("/health")
    async def health() -> dict:
        return info

    @app.post("/api/predict")
    async def predict(request: Request) -> dict:
        number = _number_flag(request)
        with admission:
            body = await _read_body(request, limits)
            content_type = request.headers.get("content-type", "")
            # off the event loop: the image work would otherwise hold up every request
            async with preparing:
                if number:
                    return await to_thread.run_sync(_read_number, predictor, body, content_type)
                ready = await workers.run(_prepare, body, content_type, predictor.size)
            if isinstance(ready, _Refusal):
                raise HTTPException(ready.status, ready.detail)
            start = time.perf_counter()
            image = torch.from_numpy(ready.image)
            try:
                probs = await batcher(image)
            except DigitlearnError as e:  # no finite output for this image
                raise HTTPException(422, str(e)) from None
            index, classes = int(probs.argmax()), predictor.classes
            result = Prediction(classes[index], index, probs, classes, image)
            ms = ready.ms + 1000 * (time.perf_counter() - start)
            return {**result.to_dict(), "input": ready.shown, "ms": ms}

    return app


# ---------------------------------------------------------------- connections


class _HeadDeadline(H11Protocol):
    """uvicorn's h11 connection (its pure-Python HTTP/1.1, the one it picks when httptools is not
    installed), with a deadline for each request's head: uvicorn has none, so a client that sent
    nothing, or its headers a byte at a time, held a connection for ever. The clock starts when
    the connection opens or an answer is sent (the client may then still be sending a body nobody
    reads), and stops when a request's head has arrived."""

    head_timeout: float = Limits.head_timeout  # a server's own, in the subclass `_connections` makes
    _clock: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)
        self._start_clock()

    def handle_events(self) -> None:
        super().handle_events()
        if self._handling():
            self._stop_clock()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # may start a request that was sent behind this one
        if not self._handling() and not self.transport.is_closing():
            self._start_clock()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_clock()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        # uvicorn's answer to a request h11 cannot parse is plain text: the API's errors are JSON
        body = b'{"detail": "the request is not valid HTTP/1.1"}'
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        response = h11.Response(status_code=400, headers=headers, reason=b"Bad Request")
        for event in (response, h11.Data(data=body), h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self.transport.close()

    def _handling(self) -> bool:
        """Whether a request's head has arrived and its answer is not yet sent."""
        return self.cycle is not None and not self.cycle.response_complete

    def _start_clock(self) -> None:
        self._stop_clock()
        self._clock = self.loop.call_later(self.head_timeout, self.transport.close)

    def _stop_clock(self) -> None:
        if self._clock is not None:
            self._clock.cancel()
            self._clock = None


def _connections(head_timeout: float) -> type[_HeadDeadline]:
    """The connection class for a server whose requests' heads must arrive within `head_timeout`."""
    return type("HeadDeadline", (_HeadDeadline,), {"head_timeout": head_timeout})


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or one clear error (port taken, unknown host)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, UnicodeError) as e:
        raise DigitlearnError(
            f"cannot listen on {host}:{port}: {getattr(e, 'strerror', None) or e}"
        ) from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise DigitlearnError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, which also stops once `stop` is set (it looks every tenth of a second)."""

    def __init__(self, config: uvicorn.Config, stop: threading.Event | None) -> None:
        super().__init__(config)
        self.stop = stop

    async def on_tick(self, counter: int) -> bool:
        return await super().on_tick(counter) or (self.stop is not None and self.stop.is_set())


def serve(
    predictor: Predictor,
    host: str = "127.0.0.1",
    port: int = 8000,
    limits: Limits = Limits(),
    stop: threading.Event | None = None,
) -> None:
    """Serve the page and API until Ctrl+C, or until `stop` is set (a server on a thread of one's
    own program, where no Ctrl+C reaches it). Port 0 picks a free port; the URL is printed.

    The image workers are processes started afresh (not forked from this one), and, as with any
    multiprocessing, each imports the main module: a script that calls `serve` (or runs
    `create_app`'s app) does so under `if __name__ == "__main__":`."""
    sock = _listen(host, port)
    address, actual = sock.getsockname()[:2]
    shown = f"[{address}]" if ":" in address else address
    if not ipaddress.ip_address(address).is_loopback:
        print(
            f"digitlearn: warning: listening on {address}: other machines can reach this server",
            file=sys.stderr,
        )
    app = create_app(predictor, limits)
    app.state.workers.start()  # before the line that says it serves: requests are then answered at once
    print(f"serving {predictor!r} at http://{shown}:{actual}/ (Ctrl+C to stop)", flush=True)
    config = uvicorn.Config(
        app,
        http=_connections(limits.head_timeout),
        timeout_keep_alive=limits.idle_timeout,  # annotated int, but any number of seconds works
        limit_concurrency=limits.max_connections,
        log_level="warning",
        access_log=False,
    )
    _Server(config, stop).run(sockets=[sock])
