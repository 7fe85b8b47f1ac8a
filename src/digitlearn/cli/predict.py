"""`digitlearn predict`: classify people's digit images with a trained run."""

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import DigitlearnError
from ..jsondata import jsonable
from .shared import add_device, count

if TYPE_CHECKING:
    from ..inference.predictor import Predictor

NAME, HELP, TORCH = "predict", "classify your own digit images (any size, format, colours)", True


def add_arguments(q: argparse.ArgumentParser) -> None:
    q.add_argument(
        "paths",
        metavar="[RUN_DIR] IMAGE",
        nargs="+",
        help="a run folder written by `digitlearn train` (default: the model that ships with digitlearn), "
        "then PNG, JPEG, BMP, GIF, WebP or TIFF files",
    )
    q.add_argument("--top", type=count, default=3, help="probabilities shown per image")
    q.add_argument("--json", action="store_true", help="print the results as JSON")
    q.add_argument(
        "--number", action="store_true", help="read every digit, left to right, as one number (e.g. 4096)"
    )
    q.add_argument("--show", metavar="FILE.png", help="draw each image above the 28x28 input the model saw")
    add_device(q, "cpu")
    add_runtime(q)


def add_runtime(q: argparse.ArgumentParser) -> None:
    """--runtime, for predict and serve."""
    q.add_argument(
        "--runtime",
        choices=("torch", "onnx"),
        default="torch",
        help="what runs the model: PyTorch (default), or onnxruntime on the model exported as "
        "`digitlearn export` does (needs the export extra)",
    )


def _read_numbers(predictor: "Predictor", files: list[str], as_json: bool) -> list[dict]:
    """`--number`: each file's number and digits, printed (or returned for JSON) as they come."""
    rows = []
    for file in files:
        try:
            r = predictor.predict_number(file)
        except DigitlearnError as e:
            rows.append({"file": str(file), "error": str(e)})
            if not as_json:
                print(f"digitlearn: error: {e}", file=sys.stderr)
            continue
        rows.append({"file": str(file), **r.to_dict()})
        if not as_json:
            digits = ", ".join(f"{d.label} {d.probability:.3f}" for d in r.digits)
            print(f"{file}: {r.number}   ({digits})", flush=True)
    return rows


def _warn_if_several(file: str, marks: int) -> None:
    """An image of a number read as one digit gives a confident wrong answer: say so."""
    if marks > 1:
        print(
            f"digitlearn: warning: {file} holds {marks} marks that look like separate digits: "
            "use --number to read them all",
            file=sys.stderr,
        )


def split_run(paths: list[str]) -> tuple[str | None, list[str]]:
    """(the run folder, the images): a first path that is a folder is the run; without one, the
    model that ships with digitlearn is used, and a line on stderr says so."""
    from ..inference.predictor import BOXED_NOTE

    first = Path(paths[0])
    if first.is_dir():
        if len(paths) == 1:
            raise DigitlearnError(f"{first} is a folder: give the images to classify after it")
        return paths[0], paths[1:]
    if len(paths) > 1 and not first.exists() and not first.suffix:  # a run folder's name, mistyped
        raise DigitlearnError(f"{first} is not a saved model: no such folder")
    print(f"digitlearn: {BOXED_NOTE}", file=sys.stderr)
    return None, paths


def run(args: argparse.Namespace) -> int:
    from ..inference.runtime import load_predictor

    run_dir, args.images = split_run(args.paths)
    predictor = load_predictor(run_dir, args.device, args.runtime)
    if args.number:
        rows = _read_numbers(predictor, args.images, args.json)
        if args.json:
            print(json.dumps(jsonable(rows), indent=2))
        return 1 if any("error" in row for row in rows) else 0
    results = predictor.predict_many(args.images)
    rows = []
    for file, r in zip(args.images, results, strict=True):
        if isinstance(r, DigitlearnError):
            rows.append({"file": str(file), "error": str(r)})  # the message names the file
            if not args.json:
                print(f"digitlearn: error: {r}", file=sys.stderr)
            continue
        rows.append({"file": str(file), **r.to_dict(args.top)})
        _warn_if_several(file, r.marks)
        if not args.json:
            others = ", ".join(f"{c} {p:.3f}" for c, p in r.top(args.top)[1:])
            print(
                f"{file}: {r.label} ({r.probability:.3f})" + (f"   then {others}" if others else ""),
                flush=True,
            )
    if args.json:
        print(json.dumps(jsonable(rows), indent=2))
    if args.show:
        from ..plots.charts import plot_predicted, save_figure

        path = save_figure(plot_predicted(args.images, results), args.show)
        print(f"wrote {path}", file=sys.stderr if args.json else sys.stdout)
    return 1 if any("error" in row for row in rows) else 0
