"""Chapter steps run in a second process, beside the others.

Most of the chapter's models are small: on a two-core CPU a step runs about as fast on one thread
as on two. So `reproduce` runs the full-MNIST steps that need nothing from the rest (the baseline,
the linear model and the MLP) in a second Python process, each side on half the cores, and
merges what that process found: its checks, results and figures (drawn there, as PNG).

The two processes talk JSON over a pipe, nothing else: the request names the steps, the answer
holds plain values and base64 PNGs.
"""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import IO, Any

from ..errors import DigitlearnError
from ..jsondata import jsonable


class Drawn:
    """A figure already drawn, as PNG bytes: saved and shown as a matplotlib figure would be."""

    def __init__(self, png: bytes) -> None:
        self.png = png

    def savefig(self, fname: IO[bytes], format: str = "png", **kwargs: object) -> None:
        if format != "png":
            raise DigitlearnError(f"a figure drawn in another process is a PNG, not {format!r}")
        fname.write(self.png)

    def _repr_png_(self) -> bytes:  # how Jupyter shows it
        return self.png


def start(entry: str, titles: list[str], seed: int, device: str, threads: int) -> subprocess.Popen:
    """A Python process that runs the steps called `titles` on `threads` threads; `finish` reads it.

    `entry` ("module:function", the caller's own) is what the process runs: a function that takes
    the request and calls `answer` with it and the steps. The process imports from this one's
    `sys.path`, in isolated mode (`-I`): a stray `random.py` in the working folder is not imported
    in place of the library's."""
    module, function = entry.split(":")
    code = "import json, sys; r = json.load(sys.stdin); sys.path[:] = r['path']; "
    code += f"from {module} import {function}; {function}(r)"
    proc = subprocess.Popen([sys.executable, "-I", "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    request = {"titles": titles, "seed": seed, "device": device, "threads": threads, "path": sys.path}
    try:
        proc.stdin.write(json.dumps(request).encode())
        proc.stdin.close()
    except BrokenPipeError:  # it ended before reading: `finish` says so
        pass
    return proc


def finish(proc: subprocess.Popen) -> dict:
    """What the steps `start` began found, each step's as {title: {seconds, checks, figures}}, and
    the results, once the process ends. Its error, or its end without an answer, is raised."""
    out = proc.stdout.read()
    code = proc.wait()
    try:
        answer = json.loads(out)
    except ValueError:
        ended = f"the process running the full-MNIST steps ended (status {code}) without an answer"
        raise DigitlearnError(ended) from None
    if "error" in answer:
        raise DigitlearnError(answer["error"])
    for done in answer["steps"].values():
        done["figures"] = [(name, text, Drawn(base64.b64decode(png))) for name, text, png in done["figures"]]
    return answer


def answer(request: dict, steps: dict[str, Callable], context: Callable[..., Any]) -> None:
    """In the second process: run the steps `start`'s `request` names (`steps`: each title's run
    function) in a `context(seed=, device=)`, then answer on stdout."""
    import torch

    from ..plots.charts import png_bytes

    # Ctrl-C reaches both processes, and the first decides: it stops its fit, or stops the whole
    # run and this process with it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(request["threads"])
    ctx = context(seed=request["seed"], device=request["device"])
    done = {}
    try:
        for title in request["titles"]:
            checks, figures, t = len(ctx.checks), set(ctx.figures), time.perf_counter()
            steps[title](ctx)
            done[title] = {
                "seconds": time.perf_counter() - t,
                "checks": [asdict(c) for c in ctx.checks[checks:]],
                "figures": [
                    (name, caption, base64.b64encode(png_bytes(fig)).decode("ascii"))
                    for name, (caption, fig) in ctx.figures.items()
                    if name not in figures
                ],
            }
        found = {"steps": done, "results": ctx.results}
    except DigitlearnError as e:
        found = {"error": str(e)}
    sys.stdout.write(json.dumps(jsonable(found)))
