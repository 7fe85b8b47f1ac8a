"""Prediction speed: one image in-process, and the web server under load from another process.

    python bench/predict.py [--run RUN_DIR] [--requests 2000] [--concurrency 16]

In-process: `Predictor.predict` on a canvas drawing (the PNG the page sends) and on a phone-sized
photo (1600x1200 JPEG), after loading and a warm-up, and apart from it the two parts of its work:
preparing the image (`Predictor.prepare`) and running the model. Server: `digitlearn serve` in its
own process on 127.0.0.1, and this process sends `--requests` POST /api/predict with
`--concurrency` in flight at once (--requests 0: no server).
Without --run, an untrained model of the `fast` recipe's architecture is used: the same work.
Prints one JSON object.
"""

import argparse
import asyncio
import io
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from digitlearn.hardware import machine_info, set_threads
from digitlearn.inference.predictor import Predictor
from digitlearn.models.saved import save_model
from digitlearn.training.recipes import RECIPES


def font(size: int) -> ImageFont.FreeTypeFont:
    import matplotlib

    return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts/ttf/DejaVuSans.ttf"), size)


def drawing() -> bytes:
    """A 280x280 PNG of a dark 7 on white, as the drawing page sends it."""
    img = Image.new("RGB", (280, 280), "white")
    ImageDraw.Draw(img).line([(70, 60), (210, 60), (120, 240)], fill=(17, 17, 17), width=20, joint="curve")
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def photo() -> bytes:
    """A 1600x1200 JPEG: a 3 on grey paper with a shadow, blur and sensor noise."""
    img = Image.new("L", (1600, 1200), 200)
    ImageDraw.Draw(img).text((700, 500), "3", font=font(500), fill=40, anchor="mm")
    a = np.asarray(img.filter(ImageFilter.GaussianBlur(3)), dtype=np.float32)
    a *= np.linspace(1.0, 0.6, 1600)[None, :]
    a += np.random.default_rng(0).normal(0, 6, a.shape)
    buf = io.BytesIO()
    Image.fromarray(np.uint8(np.clip(a, 0, 255))).convert("RGB").save(buf, "JPEG", quality=85)
    return buf.getvalue()


def percentiles(ms: list[float]) -> dict:
    q = statistics.quantiles(ms, n=100)
    return {
        "p50_ms": round(statistics.median(ms), 3),
        "p99_ms": round(q[98], 3),
        "mean_ms": round(statistics.fmean(ms), 3),
    }


def in_process(p: Predictor, data: bytes, n: int) -> dict:
    for _ in range(10):
        p.predict(data)
    total, prep, model = [], [], []
    for _ in range(n):
        t0 = time.perf_counter()
        p.predict(data)
        t1 = time.perf_counter()
        x = p.prepare(data)
        t2 = time.perf_counter()
        p.probabilities(x[None])
        t3 = time.perf_counter()
        total.append(1000 * (t1 - t0))
        prep.append(1000 * (t2 - t1))
        model.append(1000 * (t3 - t2))
    return {
        "bytes": len(data),
        "predict": percentiles(total),
        "prepare": percentiles(prep),
        "model": percentiles(model),
    }


async def load(url: str, data: bytes, requests: int, concurrency: int) -> dict:
    latencies, errors = [], 0
    queue = iter(range(requests))

    async def worker(client: httpx2.AsyncClient) -> None:
        nonlocal errors
        for _ in queue:
            t0 = time.perf_counter()
            try:
                r = await client.post(url, content=data, headers={"Content-Type": "image/png"})
                ok = r.status_code == 200 and "label" in r.json()
            except httpx2.HTTPError:
                ok = False
            latencies.append(1000 * (time.perf_counter() - t0))
            errors += not ok

    limits = httpx2.Limits(max_connections=concurrency)
    async with httpx2.AsyncClient(timeout=60, limits=limits) as client:
        for _ in range(10):  # warm up: the server's first requests load its lazily built parts
            (await client.post(url, content=data)).raise_for_status()
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        wall = time.perf_counter() - start
    rate = round(requests / wall, 1)
    return {"requests": requests, "concurrency": concurrency, "seconds": round(wall, 3),
            "requests_per_s": rate, **percentiles(latencies), "errors": errors}  # fmt: skip


def server(run: Path, data: bytes, requests: int, concurrency: int) -> dict:
    proc = subprocess.Popen([sys.executable, "-m", "digitlearn", "serve", str(run), "--port", "0"],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        url = re.search(r"http://\S+/", proc.stdout.readline()).group(0) + "api/predict"
        return asyncio.run(load(url, data, requests, concurrency))
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", type=Path, help="a trained run folder (default: an untrained fast-recipe CNN)")
    ap.add_argument("--n", type=int, default=200, help="in-process predictions per image")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()
    set_threads()  # as the command line: $DIGITLEARN_THREADS, else one per core
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run
        if run is None:
            torch.manual_seed(0)
            fast = RECIPES["fast"]
            model = fast.spec.build(10, (28, 28), fast.to_dict())  # the fast recipe's lenet
            run = save_model(Path(tmp) / "fast-untrained", model, {
                "model": model.config, "classes": list("0123456789"),
                "input": {"height": 28, "width": 28, "flat": False, "mean": 0.1307, "std": 0.3081},
                "loss": {"name": "cross_entropy"},
            })  # fmt: skip
        p = Predictor.load(run)
        draw, shot = drawing(), photo()
        result = {
            "run": str(args.run) if args.run else "untrained fast-recipe lenet",
            "machine": machine_info(p.device),
            "in_process": {"drawing_280px_png": in_process(p, draw, args.n),
                           "photo_1600x1200_jpeg": in_process(p, shot, max(args.n // 4, 20))},
        }  # fmt: skip
        if args.requests > 0:
            result["server"] = {"drawing_280px_png": server(run, draw, args.requests, args.concurrency)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
