"""The `digitlearn` command: a thin layer over the public functions a notebook user calls."""

import argparse
import functools
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from . import __version__
from .baseline import DISTANCES, PixelSimilarity, mnist_distance, rmse_distance
from .callbacks import write_history
from .data import Dataset, load_dataset
from .errors import DigitlearnError
from .files import atomic_dir
from .learner import Learner, set_seed
from .losses import bce_loss, cross_entropy, mnist_loss
from .metrics import accuracy, batch_accuracy
from .models import ARCHS, n_params
from .optim import SGD, Adam
from .plots import format_pixels, image_grid, plot_history, save_figure
from .sources import REGISTRY, home, mirror

# --model name -> (builder, the chapter's epochs and SGD learning rate for it)
MODELS = {"linear": ("linear1", 20, 1.0), "simple_net": ("simple_net", 40, 0.1), "mlp": ("mlp", 40, 0.1)}
LOSSES = {"mnist": mnist_loss, "bce": bce_loss, "ce": cross_entropy}


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


def _positive(kind: type):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not value > 0:
            raise argparse.ArgumentTypeError(f"{text!r} is not a positive {kind.__name__}")
        return value

    return parse


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(p) for p in text.split(",")]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of layer sizes like 100 or 200,100")
    return sizes


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


def _learner(args: argparse.Namespace, ds: Dataset) -> Learner:
    """The Learner a `train` or `lr-find` command line describes (seeded before anything random)."""
    n_classes = len(ds.classes)
    loss = args.loss or ("mnist" if n_classes == 2 else "ce")
    binary = loss in ("mnist", "bce")
    if binary and n_classes != 2:
        raise DigitlearnError(
            f"--loss {loss} is for two classes, but {args.data} has {n_classes}; use --loss ce"
        )
    set_seed(args.seed)
    dls = ds.dataloaders(bs=args.bs)
    builder, _, _ = MODELS[args.model]
    kwargs = {"n_in": ds.train.x[0].numel(), "n_out": 1 if binary else n_classes}
    if args.model == "mlp":
        kwargs["hidden"] = args.hidden
    model = ARCHS[builder](**kwargs)
    if args.opt == "sgd":
        opt_func = functools.partial(SGD, mom=args.mom or 0.0, wd=args.wd)
    else:
        opt_func = functools.partial(Adam, mom=0.9 if args.mom is None else args.mom, wd=args.wd)
    metric = batch_accuracy if binary else accuracy
    return Learner(
        dls, model, opt_func=opt_func, loss_func=LOSSES[loss], metrics=metric, progress=not args.quiet
    )


def _lr(args: argparse.Namespace) -> float:
    return args.lr or (MODELS[args.model][2] if args.opt == "sgd" else 1e-3)


def _run_dir(args: argparse.Namespace) -> Path:
    """--out, or runs/<data>-<model>, numbered -2, -3... rather than replacing an earlier run."""
    if args.out:
        out = Path(args.out)
        if out.exists() and not args.force:
            raise DigitlearnError(f"{out} already exists: choose another --out, or add --force to replace it")
        if out.exists() and not out.is_dir():
            raise DigitlearnError(f"{out} is a file: --out names a folder for the run")
        return out
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(args.data).name.removesuffix(".tgz")) or "data"
    base = Path("runs") / f"{stem}-{args.model}"
    out, k = base, 1
    while out.exists():
        k += 1
        out = base.with_name(f"{base.name}-{k}")
    return out


def cmd_train(args: argparse.Namespace) -> int:
    out = _run_dir(args)  # before training: a bad --out should not cost a training run
    ds = _load(args)
    learn = _learner(args, ds)
    epochs = args.epochs or MODELS[args.model][1]
    lr = _lr(args)
    print(
        f"training {args.model} ({n_params(learn.model):,} parameters) on {args.data}: "
        f"{len(ds.train):,} train, {len(ds.valid):,} valid images, classes {', '.join(ds.classes)}\n"
        f"{epochs} epochs, {'one-cycle to ' if args.one_cycle else ''}lr {lr:g}, {args.opt}, "
        f"batch size {args.bs}, loss {learn.loss_func.__name__}, seed {args.seed}"
    )
    if args.one_cycle:
        learn.fit_one_cycle(epochs, lr)
    else:
        learn.fit(epochs, lr)
    history = learn.recorder.history
    final = history[-1] if history else {}
    settings = {k: getattr(args, k) for k in ("data", "model", "bs", "opt", "mom", "wd", "one_cycle", "seed")}
    extra = {
        "train": {**settings, "epochs": epochs, "lr": lr},
        "results": {k: v for k, v in final.items() if k not in ("epoch", "time")},
        "epochs_done": len(history),
        "interrupted": learn.interrupted,
        "versions": {"digitlearn": __version__, "torch": torch.__version__},
    }
    with atomic_dir(out, replace=args.force) as tmp:
        learn.save(tmp, extra)
        write_history(learn.recorder, tmp / "history.csv")
        write_history(learn.recorder, tmp / "history.json")
        if history:
            metrics = learn.recorder.names[3:-1]
            save_figure(plot_history(history, metrics, f"{args.model} on {args.data}"), tmp / "history.png")
    if final:
        print(
            f"after {len(history)} epochs: " + ", ".join(f"{k} {v:.4f}" for k, v in extra["results"].items())
        )
    files = ", ".join(sorted(p.name for p in out.iterdir()))
    print(f"wrote {out}: {files}")
    if learn.interrupted:
        print("digitlearn: interrupted: the run holds the weights and history so far", file=sys.stderr)
        return 130
    return 0


def cmd_lr_find(args: argparse.Namespace) -> int:
    ds = _load(args)
    learn = _learner(args, ds)
    result = learn.lr_find(args.start_lr, args.end_lr, args.num_it)
    if learn.interrupted:
        print("digitlearn: interrupted", file=sys.stderr)
        return 130
    print(
        f"suggested learning rate: {result.suggestion:.3g} "
        f"(where the loss falls fastest, over {len(result.lrs)} batches)"
    )
    print(f"wrote {save_figure(result.plot(), args.out)}")
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

    def model_args(q: argparse.ArgumentParser) -> None:
        data_args(q)
        q.add_argument("--model", choices=list(MODELS), default="simple_net", help="(default %(default)s)")
        q.add_argument("--hidden", type=_sizes, default=[100], help="mlp hidden layer sizes, e.g. 200,100")
        q.add_argument("--bs", type=_positive(int), default=256, help="batch size (default %(default)s)")
        q.add_argument("--opt", choices=["sgd", "adam"], default="sgd", help="(default %(default)s)")
        q.add_argument("--mom", type=float, help="momentum (sgd, default 0) or beta1 (adam, default 0.9)")
        q.add_argument("--wd", type=float, default=0.0, help="weight decay (default 0)")
        q.add_argument(
            "--loss",
            choices=list(LOSSES),
            help="mnist (the chapter's), bce, or ce (softmax); default mnist for two classes, else ce",
        )
        q.add_argument("--seed", type=int, default=42, help="random seed (default %(default)s)")
        q.add_argument("--quiet", action="store_true", help="no progress display")

    q = sub.add_parser("train", help="train a model with the Learner and save the run")
    model_args(q)
    q.add_argument(
        "--epochs", type=_positive(int), help="default: the chapter's (linear 20, simple_net/mlp 40)"
    )
    q.add_argument(
        "--lr", type=_positive(float), help="learning rate (default: linear 1.0, others 0.1; adam 1e-3)"
    )
    q.add_argument("--one-cycle", action="store_true", help="one-cycle schedule up to --lr")
    q.add_argument(
        "--out", metavar="RUN_DIR", help="where to write the run (default runs/<data>-<model>[-N])"
    )
    q.add_argument("--force", action="store_true", help="replace --out if it exists")
    q.set_defaults(run=cmd_train)

    q = sub.add_parser("lr-find", help="suggest a learning rate and plot loss against learning rate")
    model_args(q)
    q.add_argument("--start-lr", type=_positive(float), default=1e-7)
    q.add_argument("--end-lr", type=_positive(float), default=10.0)
    q.add_argument("--num-it", type=_positive(int), default=100, help="batches to try (default %(default)s)")
    q.add_argument("--out", metavar="FILE.png", default="lr_find.png", help="the plot (default %(default)s)")
    q.set_defaults(run=cmd_lr_find)
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
