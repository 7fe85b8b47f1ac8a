"""Seconds to load all 70,000 MNIST images, side by side in one run, printed as JSON.

Contenders:
  png_cold     digitlearn from the extracted PNG folders with no decode cache (parallel decode)
  png_warm     digitlearn from the same folders, decode cache present
  idx          digitlearn from the four IDX files
  chapter_way  the chapter's own code: a Python list of tensor(Image.open(f)), then torch.stack
Also reported once: extract_s, fetching and extracting mnist_png.tgz into an empty cache home.

Usage: DIGITLEARN_MIRROR=../shared/datasets python bench/load_data.py [--repeat 3]
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def chapter_way(root: Path) -> torch.Tensor:
    tensors = []
    for split in ("training", "testing"):
        for digit in sorted((root / split).iterdir()):
            tensors += [torch.tensor(np.array(Image.open(f))) for f in sorted(digit.iterdir())]
    return torch.stack(tensors)


def timed(fn, repeat: int, before=lambda: None) -> list[float]:
    times = []
    for _ in range(repeat):
        before()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="digitlearn-bench-")
    os.environ["DIGITLEARN_HOME"] = home
    try:
        run(args.repeat)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def run(repeat: int) -> None:
    from digitlearn import fetch, load_dataset
    from digitlearn.hardware import machine_info, set_threads

    set_threads()  # as the command line: $DIGITLEARN_THREADS, else one per core

    start = time.perf_counter()
    folder = fetch("mnist_png")
    extract_s = time.perf_counter() - start
    load_dataset("mnist")  # fetch the IDX files too, untimed
    root = next(p for p in folder.rglob("training")).parent

    def drop_cache():
        for p in root.glob(".digitlearn-cache-*"):
            p.unlink()

    results = {
        "png_cold": timed(lambda: load_dataset("mnist_png"), repeat, drop_cache),
        "png_warm": timed(lambda: load_dataset("mnist_png"), repeat),
        "idx": timed(lambda: load_dataset("mnist"), repeat),
        "chapter_way": timed(lambda: chapter_way(root), repeat),
    }
    assert torch.equal(
        chapter_way(root), torch.cat([load_dataset("mnist_png").train.x, load_dataset("mnist_png").valid.x])
    )
    median = {k: statistics.median(v) for k, v in results.items()}
    print(
        json.dumps(
            {
                "benchmark": "load all 70,000 MNIST images",
                "machine": {**machine_info(), "cpus": os.cpu_count(), "python": platform.python_version()},
                "repeat": repeat,
                "extract_s": round(extract_s, 3),
                "seconds_median": {k: round(v, 3) for k, v in median.items()},
                "seconds_all": {k: [round(t, 3) for t in v] for k, v in results.items()},
                "speedup_over_chapter_way": {
                    k: round(median["chapter_way"] / median[k], 1) for k in ("png_cold", "png_warm", "idx")
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
