"""`digitlearn baseline`: the pixel-similarity model, the accuracy of the nearest class mean."""

import argparse
import json

from ..jsondata import jsonable
from ..tables import table
from .shared import add_data, load_data

NAME, HELP, TORCH = "baseline", "the pixel-similarity model: accuracy of the nearest class mean", True
DISTANCES = ("l1", "rmse")  # baseline.DISTANCES' names, here so that the parser needs no torch


def add_arguments(q: argparse.ArgumentParser) -> None:
    add_data(q)
    q.add_argument("--distance", choices=DISTANCES, default="l1")
    q.add_argument("--split", default="valid", help="split to evaluate (default %(default)s)")
    q.add_argument("--json", action="store_true", help="print the figures as JSON")


def run(args: argparse.Namespace) -> int:
    from ..chapter.baseline import PixelSimilarity

    ds = load_data(args)
    model = PixelSimilarity(args.distance).fit(ds.train.x, ds.train.y, len(ds.classes))
    report = model.evaluate(ds.split(args.split), ds.classes)
    per_class = list(zip(ds.classes, report.counts, report.correct, report.class_accuracy, strict=True))
    if args.json:
        figures = {
            "data": args.data,
            "split": args.split,
            "distance": args.distance,
            "classes": [{"class": c, "images": n, "correct": k, "accuracy": a} for c, n, k, a in per_class],
            "mean_class_accuracy": report.mean_class_accuracy,
            "accuracy": report.accuracy,
        }
        print(json.dumps(jsonable(figures), indent=2))
        return 0
    print(
        f"pixel similarity, {args.data} {args.split}: nearest class mean by {args.distance.upper()} "
        f"distance (means of {len(ds.train):,} train images)"
    )
    rows = [[c, f"{n:,}", f"{k:,}", f"{a:.4f}"] for c, n, k, a in per_class]
    print(table(["class", "images", "correct", "accuracy"], rows, align=">>>>"))
    print(f"average of class accuracies: {report.mean_class_accuracy:.4f}")
    print(f"overall accuracy: {report.accuracy:.4f} ({sum(report.correct):,}/{sum(report.counts):,})")
    return 0
