"""`digitlearn serve`: a page to draw digits on, and a JSON API, for a trained run."""

import argparse
import os

from .predict import add_runtime
from .shared import add_device, number

NAME, HELP, TORCH = "serve", "a web page to draw digits on, and a JSON API, for a trained run", True
# the options that set serve.Limits: one not given keeps the default there (which its help repeats)
LIMITS = ("max_bytes", "idle_timeout", "head_timeout", "body_timeout", "workers")


def add_arguments(q: argparse.ArgumentParser) -> None:
    q.add_argument(
        "run_dir",
        metavar="RUN_DIR",
        nargs="?",
        help="a run folder written by `digitlearn train` (default: the model that ships with digitlearn)",
    )
    q.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default %(default)s: this machine only)"
    )
    q.add_argument(
        "--port",
        type=number(int, 0, 65535),
        default=8000,
        help="port (default %(default)s; 0 picks a free one)",
    )
    q.add_argument("--max-bytes", type=number(int, 1, 2**30), help="largest request accepted (default 5 MiB)")
    seconds = number(float, 0, 3600, low_open=True)
    for name, default, what in (
        ("idle", 5, "a kept-alive connection may wait for its next request"),
        ("head", 10, "a request's line and headers may take to arrive"),
        ("body", 30, "a request's body may take to arrive"),
    ):
        q.add_argument(
            f"--{name}-timeout", type=seconds, metavar="S", help=f"seconds {what} (default {default})"
        )
    q.add_argument(
        "--workers",
        type=number(int, 1, 64),
        help="processes that prepare images, one at a time each, the rest waiting "
        "(default: the CPUs this process may use, at most 4)",
    )
    add_device(q, "cpu")
    add_runtime(q)


def run(args: argparse.Namespace) -> int:
    from ..hardware import THREADS_VARIABLE, set_threads
    from ..inference.runtime import load_predictor
    from ..inference.serve import Limits, serve

    if args.run_dir is None:
        import sys

        from ..inference.predictor import BOXED_NOTE

        print(f"digitlearn: {BOXED_NOTE}", file=sys.stderr)
    if args.threads is None and not os.environ.get(THREADS_VARIABLE, "").strip():
        # the model's calls here are small batches, and the other CPUs are the image workers': a
        # second PyTorch thread took more CPU time per request than it saved (bench/serve_load.py)
        set_threads(1)
    predictor = load_predictor(args.run_dir, args.device, args.runtime)
    given = {name: getattr(args, name) for name in LIMITS if getattr(args, name) is not None}
    serve(predictor, args.host, args.port, Limits(**given))
    return 0
