"""`digitlearn serve`: a drawing page and a JSON API around a Predictor (FastAPI on uvicorn).

  GET  /             the page: draw a digit (mouse or touch) or upload an image, see the prediction
  GET  /health       {"status": "ok", model, classes, input size}
  POST /api/predict  an image's bytes (any image Content-Type), or JSON {"image": "data:...;base64,..."}
                     -> {"label", "index", "probability", "probabilities", "top", "input" (a PNG data URL)}

Bad requests get a 4xx status and {"detail": "<what is wrong>"}: 413 over the size limit, 400 for
malformed JSON or base64, 415 for bytes that are not an image, 422 for an image with no digit.
"""

import base64
import binascii
import io
import ipaddress
import json
import socket
import sys
import time
from importlib.resources import files

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse
from PIL import Image
from starlette.concurrency import run_in_threadpool

from .errors import DigitlearnError
from .images import ImageError
from .predictor import Predictor
from .preprocess import NoDigitError

MAX_BYTES = 5 * 2**20  # a photo from a phone fits; a drawing is a few kB


def png_data_url(image) -> str:
    """A (H, W) float image in [0, 1] as a PNG data URL (for showing the model's input)."""
    buf = io.BytesIO()
    Image.fromarray((np.asarray(image) * 255).round().astype(np.uint8)).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it is known to pass `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"the request is {int(declared):,} bytes; the limit is {limit:,}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, f"the request is over the limit of {limit:,} bytes")
    return bytes(body)


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
    if kind != "application/json":
        return body
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
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


def create_app(predictor: Predictor, max_bytes: int = MAX_BYTES) -> FastAPI:
    """The web app for `predictor`; serve it with any ASGI server (`serve` uses uvicorn)."""
    # no /docs: its page loads scripts from a CDN, which an offline machine cannot reach
    app = FastAPI(title="digitlearn", docs_url=None, redoc_url=None)
    page = (files("digitlearn") / "static" / "index.html").read_text(encoding="utf-8")
    arch = (predictor.config.get("model") or {}).get("arch", "model")
    info = {
        "status": "ok",
        "model": arch,
        "run": predictor.path.name if predictor.path else None,
        "classes": predictor.classes,
        "input": list(predictor.size),
        "max_bytes": max_bytes,
    }

    @app.get("/", response_class=HTMLResponse)
    async def index() -> str:
        return page

    @app.get("/health")
    async def health() -> dict:
        return info

    @app.post("/api/predict")
    async def predict(request: Request) -> dict:
        body = await _read_body(request, max_bytes)
        data = _image_bytes(body, request.headers.get("content-type", ""))
        start = time.perf_counter()
        try:
            # in a worker thread: the model and the image work would otherwise hold up every request
            result = await run_in_threadpool(predictor.predict, data)
        except NoDigitError as e:
            raise HTTPException(422, str(e)) from None
        except ImageError as e:
            raise HTTPException(415, str(e)) from None
        return {
            **result.to_dict(),
            "input": png_data_url(result.input),
            "ms": 1000 * (time.perf_counter() - start),
        }

    return app


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


def serve(
    predictor: Predictor, host: str = "127.0.0.1", port: int = 8000, max_bytes: int = MAX_BYTES
) -> None:
    """Serve the page and API until Ctrl+C. Port 0 picks a free port; the URL is printed."""
    import uvicorn

    sock = _listen(host, port)
    address, actual = sock.getsockname()[:2]
    shown = f"[{address}]" if ":" in address else address
    if not ipaddress.ip_address(address).is_loopback:
        print(
            f"digitlearn: warning: listening on {address}: other machines can reach this server",
            file=sys.stderr,
        )
    print(f"serving {predictor!r} at http://{shown}:{actual}/ (Ctrl+C to stop)", flush=True)
    server = uvicorn.Server(
        uvicorn.Config(create_app(predictor, max_bytes), log_level="warning", access_log=False)
    )
    server.run(sockets=[sock])
