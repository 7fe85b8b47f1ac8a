"""`digitlearn predict`: classify people's digit images with a trained run."""

import argparse
import json
import sys

from ..errors import DigitlearnError
from ..jsondata import jsonable
from .shared import count

NAME, HELP, TORCH = "predict", "classify your own digit images (any size, format, colours)", True


def add_arguments(q: argparse.ArgumentParser) -> None:
    q.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by `digitlearn train`")
    q.add_argument("images", metavar="IMAGE", nargs="+", help="PNG, JPEG, BMP, GIF, WebP or TIFF files")
    q.add_argument("--top", type=count, default=3, help="probabilities shown per image")
    q.add_argument("--json", action="store_true", help="print the results as JSON")
    q.add_argument("--show", metavar="FILE.png", help="draw each image above the 28x28 input the model saw")
    q.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")


def run(args: argparse.Namespace) -> int:
    from ..predictor import Predictor

    results = Predictor.load(args.run_dir, args.device).predict_many(args.images)
    rows = []
    for file, r in zip(args.images, results, strict=True):
        if isinstance(r, DigitlearnError):
            rows.append({"file": str(file), "error": str(r)})  # the message names the file
            if not args.json:
                print(f"digitlearn: error: {r}", file=sys.stderr)
            continue
        rows.append({"file": str(file), **r.to_dict(args.top)})
        if not args.json:
            others = ", ".join(f"{c} {p:.3f}" for c, p in r.top(args.top)[1:])
            print(
                f"{file}: {r.label} ({r.probability:.3f})" + (f"   then {others}" if others else ""),
                flush=True,
            )
    if args.json:
        print(json.dumps(jsonable(rows), indent=2))
    if args.show:
        from ..plots import plot_predicted, save_figure

        path = save_figure(plot_predicted(args.images, results), args.show)
        print(f"wrote {path}", file=sys.stderr if args.json else sys.stdout)
    return 1 if any("error" in row for row in rows) else 0
