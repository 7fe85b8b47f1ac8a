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
import os
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from ..errors import DigitlearnError
from ..jsondata import jsonable


class Drawn:
    """A figure already drawn, as PNG bytes at the report's 100 dpi: saved (`savefig`) and shown in
    Jupyter as a matplotlib figure is, but not redrawn: no axes, no other format or resolution."""

    def __init__(self, png: bytes) -> None:
        self.png = png

    def savefig(self, fname: str | os.PathLike | IO[bytes], format: str | None = None, **_: object) -> None:
        if format not in (None, "png"):
            raise DigitlearnError(f"a figure drawn in another process is a PNG, not {format!r}")
        if isinstance(fname, str | os.PathLike):
            Path(fname).write_bytes(self.png)
        else:
            fname.write(self.png)

    def _repr_png_(self) -> bytes:  # how Jupyter shows it
        return self.png


def run_step(run: Callable[[Any], object], ctx: Any) -> tuple[float, list, list[tuple[str, str, Any]]]:
    """Run one step on `ctx`: its seconds, the checks it added, and the figures it added as
    (name, caption, figure). The same in either process."""
    checks, figures, t = len(ctx.checks), set(ctx.figures), time.perf_counter()
    run(ctx)
    new = [(name, *ctx.figures[name]) for name in ctx.figures if name not in figures]
    return time.perf_counter() - t, ctx.checks[checks:], new


def available() -> bool:
    """Whether a second Python process can be started: not from a frozen or embedded program,
    where `sys.executable` is not a Python that takes `-c`."""
    return bool(sys.executable) and not getattr(sys, "frozen", False)


def start(entry: str, titles: list[str], seed: int, device: str, threads: int) -> subprocess.Popen:
    """A Python process that runs the steps called `titles` on `threads` threads; `finish` reads it.

    `entry` ("module:function", the caller's own) is what the process runs: a function that takes
    the request and calls `answer` with it and the steps. The process imports from this one's
    `sys.path`, in isolated mode (`-I`): a stray `random.py` in the working folder is not imported
    in place of the library's. It runs in a session of its own, so a Ctrl-C at the terminal
    reaches only this process, which decides; and its stdin stays open while this process lives,
    so that it ends when this one does, however this one ends."""
    module, function = entry.split(":")
    code = "import json, sys; r = json.loads(sys.stdin.readline()); sys.path[:] = r['path']; "
    code += f"from {module} import {function}; {function}(r)"
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE}
    proc = subprocess.Popen([sys.executable, "-I", "-c", code], **pipes, start_new_session=True)
    request = {"titles": titles, "seed": seed, "device": device, "threads": threads, "path": sys.path}
    try:
        proc.stdin.write(json.dumps(request).encode() + b"\n")
        proc.stdin.flush()
    except BrokenPipeError:  # it ended before reading: `finish` says so
        pass
    return proc


def finish(proc: subprocess.Popen) -> dict:
    """What the steps `start` began found, each step's as {title: {seconds, checks, figures}}, and
    the results, once the process ends. Its error, or its end without an answer, is raised."""
    with proc:  # closes the pipes
        out = proc.stdout.read()
        code = proc.wait()
    try:
        answer = json.loads(out)
    except ValueError:
        ended = f"the second process of steps ended (status {code}) without an answer"
        raise DigitlearnError(ended) from None
    if "error" in answer:
        raise DigitlearnError(answer["error"])
    for done in answer["steps"].values():
        done["figures"] = [(name, text, Drawn(base64.b64decode(png))) for name, text, png in done["figures"]]
    return answer


def stop(proc: subprocess.Popen) -> None:
    """End the process `start` began, before its answer (an error or a Ctrl-C here)."""
    proc.kill()
    with proc:  # waits, closes the pipes
        pass


def answer(request: dict, steps: dict[str, Callable], context: Callable[..., Any]) -> None:
    """In the second process: run the steps `start`'s `request` names (`steps`: each title's run
    function) in a `context(seed=, device=)`, then answer on stdout."""
    import torch

    from ..plots.charts import png_bytes

    def end_with_the_first() -> None:  # its end closes our stdin, however it ended
        sys.stdin.read()
        os._exit(1)

    threading.Thread(target=end_with_the_first, daemon=True).start()
    torch.set_num_threads(request["threads"])
    ctx = context(seed=request["seed"], device=request["device"])
    done = {}
    try:
        for title in request["titles"]:
            seconds, checks, figures = run_step(steps[title], ctx)
            pngs = [(name, text, base64.b64encode(png_bytes(f)).decode("ascii")) for name, text, f in figures]
            done[title] = {"seconds": seconds, "checks": [asdict(c) for c in checks], "figures": pngs}
        found = {"steps": done, "results": ctx.results}
    except DigitlearnError as e:  # a user's mistake, such as data not found: its one line
        found = {"error": str(e)}
    except Exception as e:  # anything else is a bug: its traceback here, its name and message there
        traceback.print_exc()
        found = {"error": f"{type(e).__name__} in the second process of steps: {e}"}
    sys.stdout.write(json.dumps(jsonable(found)))
