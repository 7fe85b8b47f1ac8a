"""The `digitlearn` command: a thin layer over the public functions a notebook user calls."""

import argparse
import json
import sys
from collections.abc import Sequence

from . import __version__
from .baseline import DISTANCES, PixelSimilarity, mnist_distance, rmse_distance
from .data import Dataset, load_dataset
from .errors import DigitlearnError
from .plots import format_pixels, image_grid, save_figure
from .sources import REGISTRY, home, mirror


def _size(text: str) -> tuple[int, int]:
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2) or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 28 or 28x28")
    return (parts[0], parts[-1])


def _range(text: str) -> slice:
    try:
        start, stop = (int(p) if p else None for p in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a range like 4:10") from None
    return slice(start, stop)


def _load(args: argparse.Namespace) -> Dataset:
    return load_dataset(args.data, size=args.size)


def cmd_datasets(args: argparse.Namespace) -> int:
    where = mirror()
    print(f"cache: {home()}" + (f"   mirror: {where}" if where else ""))
    for name, spec in sorted(REGISTRY.items()):
        state = "cached" if (home() / "data" / name).is_dir() else "not fetched"
        print(f"  {name:<14} {state:<12} {spec.description}")
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    ds = _load(args)
    split = ds.split(args.split)
    model = PixelSimilarity(args.distance).fit(ds.train.x, ds.train.y, len(ds.classes))
    report = model.evaluate(split, ds.classes)
    if args.json:
        print(
            json.dumps(
                {
                    "data": args.data,
                    "split": args.split,
                    "distance": args.distance,
                    "classes": [
                        {"class": c, "images": n, "correct": k, "accuracy": a}
                        for c, n, k, a in zip(
                            ds.classes, report.counts, report.correct, report.class_accuracy, strict=True
                        )
                    ],
                    "mean_class_accuracy": report.mean_class_accuracy,
                    "accuracy": report.accuracy,
                },
                indent=2,
            )
        )
        return 0
    print(
        f"pixel similarity, {args.data} {args.split}: nearest class mean by {args.distance.upper()} "
        f"distance (means of {len(ds.train):,} train images)"
    )
    print(f"{'class':>5}  {'images':>7}  {'correct':>7}  {'accuracy':>8}")
    for c, n, k, a in zip(ds.classes, report.counts, report.correct, report.class_accuracy, strict=True):
        print(f"{c:>5}  {n:>7,}  {k:>7,}  {a:>8.4f}")
    print(f"average of class accuracies: {report.mean_class_accuracy:.4f}")
    print(f"overall accuracy: {report.accuracy:.4f} ({sum(report.correct):,}/{sum(report.counts):,})")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    ds = _load(args)
    model = PixelSimilarity().fit(ds.train.x, ds.train.y, len(ds.classes))
    if args.means:
        fig = image_grid(model.means, [f"mean {c}" for c in ds.classes])
        print(f"wrote {save_figure(fig, args.out)}")
        return 0
    split = ds.split(args.split)
    where = f"{args.split}"
    if args.cls is not None:
        split = split.of_class(ds.class_index(args.cls))
        where += f" class {args.cls}"
    if not 0 <= args.index < len(split) or args.count < 1 or args.index + args.count > len(split):
        asked = f"--index {args.index}" + (f" --count {args.count}" if args.count != 1 else "")
        raise DigitlearnError(
            f"{asked} is out of range: {where} has {len(split):,} images (index 0 to {len(split) - 1:,})"
        )
    item = split[args.index]
    image, label = item.x[0], ds.classes[int(item.y)]
    print(f"{args.data} {args.split}/{item.names[0]}: class {label}, image {args.index} of {where}")
    print(format_pixels(image, args.rows, args.cols))
    x = image.float() / 255
    print(f"\n{'distance to mean of':<20} {'L1':>7} {'RMSE':>7}")
    for c, mean in zip(ds.classes, model.means, strict=True):
        print(f"{c:<20} {mnist_distance(x, mean):>7.4f} {rmse_distance(x, mean):>7.4f}")
    print(f"nearest mean (L1): {ds.classes[int(model.predict(image[None]))]}")
    if args.out:
        shown = split[args.index : args.index + args.count]
        fig = image_grid(shown.x, shown.names)
        print(f"wrote {save_figure(fig, args.out)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="digitlearn", description="fastbook chapter 4 as real software.")
    p.add_argument("--version", action="version", version=f"digitlearn {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def data_args(q: argparse.ArgumentParser) -> None:
        q.add_argument(
            "--data",
            default="mnist_sample",
            help="a dataset name (%(default)s, mnist, mnist_png) or a folder/archive path",
        )
        q.add_argument("--size", type=_size, help="resize every image, e.g. 28 or 28x28")

    q = sub.add_parser("datasets", help="list the known datasets and whether they are cached")
    q.set_defaults(run=cmd_datasets)

    q = sub.add_parser("baseline", help="the pixel-similarity model: accuracy of the nearest class mean")
    data_args(q)
    q.add_argument("--distance", choices=list(DISTANCES), default="l1")
    q.add_argument("--split", default="valid", help="split to evaluate (default %(default)s)")
    q.add_argument("--json", action="store_true", help="print the figures as JSON")
    q.set_defaults(run=cmd_baseline)

    q = sub.add_parser("show", help="print an image's pixels and distances; draw images or class means")
    data_args(q)
    q.add_argument("--split", default="train")
    q.add_argument("--class", dest="cls", metavar="CLASS", help="count --index within this class")
    q.add_argument("--index", type=int, default=0, help="which image (default %(default)s)")
    q.add_argument("--count", type=int, default=1, help="images in the --out figure, from --index")
    q.add_argument("--rows", type=_range, default=slice(None), help="print only these rows, e.g. 4:10")
    q.add_argument("--cols", type=_range, default=slice(None), help="print only these columns")
    q.add_argument("--means", action="store_true", help="draw the class means (needs --out)")
    q.add_argument("--out", metavar="FILE.png", help="write the image(s) as a figure")
    q.set_defaults(run=cmd_show)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "means", False) and not args.out:
        parser.error("--means needs --out FILE.png")
    try:
        return args.run(args)
    except DigitlearnError as e:
        print(f"digitlearn: error: {e}", file=sys.stderr)
    except OSError as e:  # the environment said no (permissions, disk full): not a bug to trace
        print(f"digitlearn: error: {e.strerror or e}: {e.filename or ''}".rstrip(": "), file=sys.stderr)
    except KeyboardInterrupt:
        print("digitlearn: interrupted", file=sys.stderr)
        return 130
    return 1
