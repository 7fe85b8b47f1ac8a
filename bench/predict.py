"""Prediction speed: preparing people's images, the model in PyTorch and in onnxruntime, and the
`digitlearn predict` command over many files.

    python bench/predict.py [--run RUN_DIR] [--n 200] [--files 5000] [--rounds 3]
                            [--parts preparation,runtimes,command]

- `preparation`: `Predictor.predict` on a 280x280 drawing as the page sends it (bench/serve_load.py's)
  and on a phone-sized photo (1600x1200 JPEG of a small digit on shaded paper), one PyTorch thread,
  after a warm-up; apart from it, its two parts: preparing (`Predictor.prepare`) and the model.
- `runtimes`: the model alone (`Predictor.probabilities`) on 1 image and on 1,024, with PyTorch and
  with onnxruntime (`--runtime onnx`), at one thread and at one per core.
- `predict_command`: `digitlearn predict RUN` over `--files` MNIST test images written as PNG files,
  the whole command in a new process (start, loading, preparing, printing), median of `--rounds`,
  with each runtime. It needs MNIST (set DIGITLEARN_MIRROR to a local copy).
`--parts` runs some of the three only (each takes under a minute on two cores).
The server under load: bench/serve_load.py. Without --run, the model that ships with digitlearn
(the fast recipe's). Prints one JSON object; times in milliseconds unless they say seconds.
"""

import argparse
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from serve_load import drawing  # bench/, beside this file

from digitlearn.hardware import default_threads, machine_info, set_threads
from digitlearn.inference.predictor import BOXED, Predictor
from digitlearn.inference.runtime import load_predictor


def font(size: int) -> ImageFont.FreeTypeFont:
    import matplotlib

    return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts/ttf/DejaVuSans.ttf"), size)


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
    return {"p50": round(statistics.median(ms), 3), "p99": round(q[98], 3)}


def timed(fn, n: int, warm: int = 10) -> list[float]:
    for _ in range(warm):
        fn()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - start))
    return times


def preparation(p: Predictor, data: bytes, n: int) -> dict:
    x = p.prepare(data)
    return {
        "bytes": len(data),
        "predict": percentiles(timed(lambda: p.predict(data), n)),
        "prepare": percentiles(timed(lambda: p.prepare(data), n)),
        "model": percentiles(timed(lambda: p.probabilities(x[None]), n)),
    }


def runtimes(run: Path, threads: list[int]) -> dict:
    images = {1: torch.rand(1, 28, 28), 1024: torch.rand(1024, 28, 28)}
    result = {}
    for n in threads:
        set_threads(n)  # before loading: onnxruntime's session takes PyTorch's count
        predictors = {name: load_predictor(run, runtime=name) for name in ("torch", "onnx")}
        for name, p in predictors.items():
            one = timed(lambda p=p: p.probabilities(images[1]), 300)
            many = timed(lambda p=p: p.probabilities(images[1024]), 15, warm=3)
            result[f"{name}, {n} thread{'s' if n > 1 else ''}"] = {
                "1 image": round(statistics.median(one), 3),
                "1024 images": round(statistics.median(many), 2),
            }
    return result


def write_pngs(folder: Path, count: int) -> list[str]:
    from digitlearn import load_dataset

    x = load_dataset("mnist").valid.x[:count].numpy()
    paths = []
    for k, image in enumerate(x):
        paths.append(str(folder / f"{k:05d}.png"))
        Image.fromarray(image).save(paths[-1])
    return paths


def predict_command(run: Path, files: list[str], rounds: int) -> dict:
    result = {}
    for runtime in ("torch", "onnx"):
        seconds = []
        for _ in range(rounds):
            command = [sys.executable, "-m", "digitlearn", "predict", str(run), *files, "--runtime", runtime]
            start = time.perf_counter()
            done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            seconds.append(time.perf_counter() - start)
            if done.returncode != 0:
                raise SystemExit(f"digitlearn predict failed: {done.stderr[-500:]}")
        result[runtime] = {
            "median_s": round(statistics.median(seconds), 2),
            "runs_s": [round(s, 2) for s in seconds],
        }
    return {"files": len(files), **result}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", type=Path, default=BOXED, help="a run folder (default: the model that ships)")
    ap.add_argument(
        "--n", type=int, default=200, help="timed predictions of the drawing (the photo: a quarter)"
    )
    ap.add_argument("--files", type=int, default=5000, help="PNG files for `digitlearn predict`")
    ap.add_argument("--rounds", type=int, default=3, help="runs of `digitlearn predict` per runtime")
    ap.add_argument("--parts", default="preparation,runtimes,command", help="what to measure (default: all)")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    set_threads(1)
    p = Predictor.load(args.run)
    result = {"run": str(args.run), "machine": machine_info(p.device)}
    if "preparation" in parts:
        result["preparation_1_thread"] = {
            "drawing_280px_png": preparation(p, drawing(), args.n),
            "photo_1600x1200_jpeg": preparation(p, photo(), max(args.n // 4, 20)),
        }
    if "runtimes" in parts:
        result["runtimes_model_only"] = runtimes(args.run, sorted({1, default_threads()}))
    if "command" in parts:
        set_threads()
        with tempfile.TemporaryDirectory() as tmp:
            result["predict_command"] = predict_command(
                args.run, write_pngs(Path(tmp), args.files), args.rounds
            )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
