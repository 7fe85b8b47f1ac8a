"""`digitlearn serve`: a page to draw digits on, and a JSON API, for a trained run."""

import argparse

from .shared import number

NAME, HELP, TORCH = "serve", "a web page to draw digits on, and a JSON API, for a trained run", True


def add_arguments(q: argparse.ArgumentParser) -> None:
    q.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by `digitlearn train`")
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
    q.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")


def run(args: argparse.Namespace) -> int:
    from ..predictor import Predictor
    from ..serve import serve

    predictor = Predictor.load(args.run_dir, args.device)
    serve(predictor, args.host, args.port, **({"max_bytes": args.max_bytes} if args.max_bytes else {}))
    return 0
