"""The `digitlearn` command: a thin layer over the public functions a notebook user calls.

Building the parser imports nothing heavy, and each command imports what it uses, so `--help`,
`recipes` and `datasets` answer at once instead of after seconds of loading torch and matplotlib.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .errors import DigitlearnError
from .files import atomic_dir, atomic_path
from .models import MODELS
from .recipes import MODEL_RECIPES, RECIPES, Recipe, recipe_for

if TYPE_CHECKING:
    from .data import Dataset
    from .predictor import Predictor
    from .training import Learner

DISTANCES = ("l1", "rmse")  # baseline.DISTANCES' names, here so that the parser needs no torch
VIEWABLE = ("1", "L", "LA", "P", "PA", "RGB", "RGBA")  # Pillow modes matplotlib can draw as they are
LOSS_NAMES = {"mnist": "mnist_loss", "bce": "bce_loss", "ce": "cross_entropy"}
# recipe settings a command-line flag of the same name can replace
RECIPE_FLAGS = (
    "model", "epochs", "lr", "opt", "bs", "one_cycle", "mom", "sqr_mom", "wd", "loss", "label_smoothing",
    "augment", "normalize", "precision", "init_std", "hidden", "channels", "skip_learned", "validate",
)  # fmt: skip


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


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a probability from 0 to 1")
    return value


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(p) for p in text.split(",")]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of layer sizes like 100 or 200,100")
    return sizes


def _load(args: argparse.Namespace) -> Dataset:
    from .data import load_dataset

    return load_dataset(args.data, size=args.size)


def cmd_datasets(args: argparse.Namespace) -> int:
    from .sources import REGISTRY, home, mirror

    where = mirror()
    print(f"cache: {home()}" + (f"   mirror: {where}" if where else ""))
    for name, spec in sorted(REGISTRY.items()):
        state = "cached" if (home() / "data" / name).is_dir() else "not fetched"
        print(f"  {name:<14} {state:<12} {spec.description}")
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    from .baseline import PixelSimilarity

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
    from .baseline import PixelSimilarity, mnist_distance, rmse_distance
    from .plots import format_pixels, image_grid, save_figure

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


def _recipe(args: argparse.Namespace) -> Recipe:
    """The named recipe (or the model's default one), with each flag the user gave replacing its setting."""
    recipe = recipe_for(args.recipe, args.model)
    flags = {k: getattr(args, k, None) for k in RECIPE_FLAGS}
    if flags["opt"] not in (None, recipe.opt) and flags["lr"] is None:
        flags["lr"] = 1e-3 if flags["opt"] == "adam" else 0.1  # the recipe's lr was for its optimizer
    for k in ("hidden", "channels"):
        flags[k] = tuple(flags[k]) if flags[k] is not None else None
    flags["loss"] = LOSS_NAMES.get(flags["loss"])
    return recipe.updated(**flags)


def _run_dir(args: argparse.Namespace, name: str) -> Path:
    """--out, or runs/<data>-<name>, numbered -2, -3... rather than replacing an earlier run."""
    if args.out:
        out = Path(args.out)
        if out.exists() and not args.force:
            raise DigitlearnError(f"{out} already exists: choose another --out, or add --force to replace it")
        if out.exists() and not out.is_dir():
            raise DigitlearnError(f"{out} is a file: --out names a folder for the run")
        return out
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(args.data).name.removesuffix(".tgz")) or "data"
    base = Path("runs") / f"{stem}-{name}"
    out, k = base, 1
    while out.exists():
        k += 1
        out = base.with_name(f"{base.name}-{k}")
    return out


def _describe(recipe: Recipe, learn: Learner) -> str:
    """The settings of a run, in one line: what a reader needs to repeat it."""
    from .losses import describe
    from .training import MixedPrecision

    parts = [
        f"{recipe.epochs} epoch{'s' if recipe.epochs != 1 else ''}",
        f"{'one-cycle to ' if recipe.one_cycle else ''}lr {recipe.lr:g}",
        recipe.opt + (f" wd {recipe.wd:g}" if recipe.wd else ""),
        f"batch size {recipe.bs}",
        f"loss {describe(learn.loss_func)['name']}"
        + (f" (label smoothing {recipe.label_smoothing:g})" if recipe.label_smoothing else ""),
    ]
    if recipe.augment:
        parts.append("augmented")
    if recipe.skip_learned:
        parts.append(f"later epochs only on examples at p < {recipe.skip_learned:g}")
    if recipe.validate == "last":
        parts.append("validated after the last epoch")
    mixed = any(isinstance(cb, MixedPrecision) for cb in learn.cbs)
    parts.append(f"{learn.device.type} {'bf16 mixed precision' if mixed else 'fp32'}")
    return ", ".join(parts)


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from .models.layers import n_params
    from .plots import plot_history, save_figure
    from .training import MixedPrecision, write_history

    recipe = _recipe(args)
    out = _run_dir(args, args.recipe or recipe.model)  # before training: a bad --out costs no run
    ds = _load(args)
    learn = recipe.learner(ds, args.seed, args.device, progress=not args.quiet)
    named = f" (recipe {args.recipe})" if args.recipe else ""
    print(
        f"training {recipe.model}{named} ({n_params(learn.model):,} parameters) on {args.data}: "
        f"{len(ds.train):,} train, {len(ds.valid):,} valid images, classes {', '.join(ds.classes)}\n"
        f"{_describe(recipe, learn)}, seed {args.seed}"
    )
    recipe.fit(learn)
    history = learn.recorder.history
    final = history[-1] if history else {}
    extra = {
        "train": {
            "data": args.data,
            "recipe": args.recipe,
            **recipe.to_dict(),
            "seed": args.seed,
            "device": str(learn.device),
            "mixed_precision": any(isinstance(cb, MixedPrecision) for cb in learn.cbs),
        },
        "results": {k: v for k, v in final.items() if k not in ("epoch", "time")},
        "epochs_done": len(history),
        "train_seconds": sum(row["time"] for row in history),
        "interrupted": learn.interrupted,
        "versions": {"digitlearn": __version__, "torch": torch.__version__},
    }
    with atomic_dir(out, replace=args.force) as tmp:
        learn.save(tmp, extra)
        write_history(learn.recorder, tmp / "history.csv")
        write_history(learn.recorder, tmp / "history.json")
        if history:
            metrics = learn.recorder.names[3:-1]
            save_figure(plot_history(history, metrics, f"{recipe.model} on {args.data}"), tmp / "history.png")
    if final:
        print(
            f"after {len(history)} epoch{'s' if len(history) != 1 else ''} ({extra['train_seconds']:.1f}s): "
            + ", ".join(f"{k} {v:.4f}" for k, v in extra["results"].items())
        )
    files = ", ".join(sorted(p.name for p in out.iterdir()))
    print(f"wrote {out}: {files}")
    if learn.interrupted:
        print("digitlearn: interrupted: the run holds the weights and history so far", file=sys.stderr)
        return 130
    return 0


def cmd_lr_find(args: argparse.Namespace) -> int:
    from .plots import save_figure

    recipe = _recipe(args)
    ds = _load(args)
    learn = recipe.learner(ds, args.seed, args.device, progress=not args.quiet)
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


def cmd_recipes(args: argparse.Namespace) -> int:
    # a setting some model takes as an option is shown only for those models
    options = {k for spec in MODELS.values() for k in spec.options}

    def show(name: str, recipe: Recipe) -> None:
        settings = " ".join(
            f"{k}={v}"
            for k, v in recipe.to_dict().items()
            if v is not None
            and (k not in options or k in recipe.spec.options)
            and (k != "sqr_mom" or recipe.opt == "adam")
        )
        print(f"  {name:<11} {recipe.about}\n  {'':<11} {settings}")

    print("named recipes (digitlearn train --recipe NAME):")
    for name, recipe in RECIPES.items():
        show(name, recipe)
    print("each model's default recipe (digitlearn train --model NAME):")
    for name, recipe in MODEL_RECIPES.items():
        show(name, recipe)
    print("any flag of `digitlearn train` replaces the setting of the same name")
    return 0


COMPARED = ("baseline", "linear", "mlp", "lenet")


def _models(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    known = ("baseline", *MODELS, *RECIPES)
    bad = [n for n in names if n not in known]
    if not names or bad:
        raise argparse.ArgumentTypeError(f"{text!r}: choose from {', '.join(known)}")
    return names


def cmd_compare(args: argparse.Namespace) -> int:
    from .baseline import PixelSimilarity
    from .models.layers import n_params

    ds = _load(args)
    print(
        f"comparing {', '.join(args.models)} on {args.data}: {len(ds.train):,} train images, "
        f"accuracy on {len(ds.valid):,} valid images",
        flush=True,
    )
    rows = []
    for name in args.models:
        if name == "baseline":
            start = time.perf_counter()
            # RMSE: on ten classes it beats the chapter's L1 (0.82 against 0.67 on MNIST)
            model = PixelSimilarity("rmse").fit(ds.train.x, ds.train.y, len(ds.classes))
            seconds = time.perf_counter() - start
            acc = model.evaluate(ds.valid, ds.classes).accuracy
            rows.append({"model": "baseline", "recipe": "nearest mean (RMSE)", "accuracy": acc,
                         "train_seconds": seconds, "parameters": model.means.numel()})  # fmt: skip
        else:
            recipe = RECIPES[name] if name in RECIPES else MODEL_RECIPES[name]
            learn = recipe.learner(ds, args.seed, args.device, progress=False)
            recipe.fit(learn)
            history = learn.recorder.history
            rows.append({
                "model": recipe.model,
                "recipe": f"{name} recipe" if name in RECIPES else "default recipe",
                "accuracy": history[-1][learn.recorder.names[3]],
                "train_seconds": sum(row["time"] for row in history),
                "parameters": n_params(learn.model),
            })  # fmt: skip
            if learn.interrupted:
                print("digitlearn: interrupted", file=sys.stderr)
                return 130
        row = rows[-1]
        done = f"{row['model']:<10} accuracy {row['accuracy']:.4f} in {row['train_seconds']:.1f}s"
        print(f"  {done}", flush=True)
    if args.json:
        print(json.dumps({"data": args.data, "results": rows}, indent=2))
        return 0
    print()
    w = max(len(row["recipe"]) for row in rows)
    print(f"{'model':<10}  {'recipe':<{w}}  {'accuracy':>8}  {'train s':>7}  {'parameters':>10}")
    for row in rows:
        print(
            f"{row['model']:<10}  {row['recipe']:<{w}}  {row['accuracy']:>8.4f}  "
            f"{row['train_seconds']:>7.1f}  {row['parameters']:>10,}"
        )
    return 0


def _evaluation_data(args: argparse.Namespace, predictor: Predictor) -> Dataset:
    """--data, or the data the run was trained on; its classes and image size must be the model's."""
    from .data import load_dataset

    data = args.data or (predictor.config.get("train") or {}).get("data")
    if not data:
        raise DigitlearnError(
            f"{args.run_dir}: the run does not say what data it was trained on: give --data"
        )
    ds = load_dataset(data, size=args.size)
    if list(ds.classes) != predictor.classes:
        raise DigitlearnError(
            f"{args.run_dir} was trained on classes {', '.join(predictor.classes)}, but {data} has "
            f"{', '.join(ds.classes)}"
        )
    if tuple(ds.train.x.shape[1:]) != predictor.size:
        h, w = predictor.size
        got = "x".join(map(str, ds.train.x.shape[1:]))
        raise DigitlearnError(f"{data} has {got} images, the model takes {h}x{w}: add --size {h}x{w}")
    args.data = data
    return ds


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .interpret import Interpretation
    from .plots import save_figure
    from .predictor import Predictor

    predictor = Predictor.load(args.run_dir, args.device)
    ds = _evaluation_data(args, predictor)
    split = ds.split(args.split)
    interp = Interpretation.from_predictor(predictor, split)
    cm, rows = interp.confusion_matrix(), interp.per_class()
    confused = interp.most_confused()
    correct = int(cm.diag().sum())
    figures = {}
    if args.out:
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            raise DigitlearnError(f"{out} is a file: --out names a folder for the figures")
        out.mkdir(parents=True, exist_ok=True)
        figures = {
            "confusion_matrix": save_figure(interp.plot_confusion_matrix(), out / "confusion_matrix.png"),
            "top_losses": save_figure(interp.plot_top_losses(args.top_losses), out / "top_losses.png"),
        }
    report = {
        "run": str(args.run_dir),
        "data": args.data,
        "split": args.split,
        "images": len(split),
        "accuracy": interp.accuracy,
        "per_class": rows,
        "confusion_matrix": cm.tolist(),
        "most_confused": [{"actual": a, "predicted": p, "count": n} for a, p, n in confused],
    }
    if args.out:
        with atomic_path(Path(args.out) / "evaluation.json") as tmp:
            tmp.write_text(json.dumps(report, indent=2) + "\n")
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    arch = (predictor.config.get("model") or {}).get("arch", "model")
    print(f"{args.run_dir} ({arch}) on {args.data} {args.split}: {len(split):,} images")
    print(f"accuracy {interp.accuracy:.4f} ({correct:,}/{len(split):,})\n")
    w = max(5, *(len(r["class"]) for r in rows))
    print(f"{'class':>{w}}  {'precision':>9}  {'recall':>7}  {'f1':>7}  {'images':>7}")
    for r in rows:
        scores = f"{r['precision']:>9.4f}  {r['recall']:>7.4f}  {r['f1']:>7.4f}"
        print(f"{r['class']:>{w}}  {scores}  {r['support']:>7,}")
    print("\nconfusion matrix (rows: actual, columns: predicted)")
    cw = max(w, len(f"{int(cm.max()):,}") if cm.numel() else 1)
    print(" " * w + "".join(f"  {c:>{cw}}" for c in predictor.classes))
    for c, line in zip(predictor.classes, cm.tolist(), strict=True):
        print(f"{c:>{w}}" + "".join(f"  {v:>{cw},}" for v in line))
    if confused:
        shown = ", ".join(f"{a} as {p} ({n})" for a, p, n in confused[:5])
        print(f"\nmost confused (actual as predicted): {shown}")
    for path in figures.values():
        print(f"wrote {path}")
    if args.out:
        print(f"wrote {Path(args.out) / 'evaluation.json'}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .predictor import Prediction, Predictor

    predictor = Predictor.load(args.run_dir, args.device)
    results = predictor.predict_many(args.images)
    rows = []
    for file, r in zip(args.images, results, strict=True):
        if isinstance(r, DigitlearnError):
            message = str(r)  # it names the file
            rows.append({"file": str(file), "error": message})
            if not args.json:
                print(f"digitlearn: error: {message}", file=sys.stderr)
            continue
        rows.append({"file": str(file), **r.to_dict(args.top)})
        if not args.json:
            others = ", ".join(f"{c} {p:.3f}" for c, p in r.top(args.top)[1:])
            print(
                f"{file}: {r.label} ({r.probability:.3f})" + (f"   then {others}" if others else ""),
                flush=True,
            )
    if args.json:
        print(json.dumps(rows, indent=2))
    if args.show:
        import numpy as np
        from PIL import Image

        from .plots import plot_predictions, save_figure
        from .preprocess import open_image, to_gray

        originals = []
        for file in args.images:
            try:
                img = open_image(file)
                # 16-bit and float images have no RGB view of their own: show their gray levels
                originals.append(
                    img if img.mode in VIEWABLE else Image.fromarray(np.uint8(255 * to_gray(img)))
                )
            except DigitlearnError:
                originals.append(None)
        titles = [
            f"{Path(f).name}\n"
            + (f"{r.label} ({r.probability:.2f})" if isinstance(r, Prediction) else "no result")
            for f, r in zip(args.images, results, strict=True)
        ]
        inputs = [r.input if isinstance(r, Prediction) else None for r in results]
        fig = plot_predictions(originals, inputs, titles)
        path = save_figure(fig, args.show)
        print(f"wrote {path}", file=sys.stderr if args.json else sys.stdout)
    return 1 if any("error" in row for row in rows) else 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from .report import check_out, write_report
    from .reproduce import format_table, reproduce, status

    out = Path(args.out)
    check_out(out)  # before the work: a bad --out costs no run
    what = "mnist_sample only (--quick)" if args.quick else "mnist_sample, then full MNIST"
    print(f"reproducing fastbook chapter 4: {what}, seed {args.seed}", flush=True)
    rep = reproduce(quick=args.quick, seed=args.seed, device=args.device)
    print()
    print(format_table(rep.checks))
    write_report(rep, out)
    print(f"\n{rep.seconds:.1f}s; wrote {out / 'report.html'}, {out / 'report.md'}, {out / 'results.json'}")
    return status(rep.checks)


def cmd_serve(args: argparse.Namespace) -> int:
    from .predictor import Predictor
    from .serve import serve

    predictor = Predictor.load(args.run_dir, args.device)
    serve(predictor, args.host, args.port, **({"max_bytes": args.max_bytes} if args.max_bytes else {}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="digitlearn", description="fastbook chapter 4 as real software.")
    p.add_argument("--version", action="version", version=f"digitlearn {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    threads = argparse.ArgumentParser(add_help=False)
    threads.add_argument(
        "--threads",
        type=_positive(int),
        metavar="N",
        help="PyTorch threads (default: $DIGITLEARN_THREADS, else one per core); 1 can be faster when "
        "other programs keep the cores busy",
    )

    def torch_command(name: str, help: str) -> argparse.ArgumentParser:
        """A command that computes with torch: it takes --threads, which main() applies first."""
        return sub.add_parser(name, help=help, parents=[threads])

    def data_args(q: argparse.ArgumentParser) -> None:
        q.add_argument(
            "--data",
            default="mnist_sample",
            help="a dataset name (%(default)s, mnist, mnist_png) or a folder/archive path",
        )
        q.add_argument("--size", type=_size, help="resize every image, e.g. 28 or 28x28")

    q = sub.add_parser("datasets", help="list the known datasets and whether they are cached")
    q.set_defaults(run=cmd_datasets)

    q = torch_command("baseline", help="the pixel-similarity model: accuracy of the nearest class mean")
    data_args(q)
    q.add_argument("--distance", choices=DISTANCES, default="l1")
    q.add_argument("--split", default="valid", help="split to evaluate (default %(default)s)")
    q.add_argument("--json", action="store_true", help="print the figures as JSON")
    q.set_defaults(run=cmd_baseline)

    q = torch_command("show", help="print an image's pixels and distances; draw images or class means")
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

    def device_args(q: argparse.ArgumentParser) -> None:
        q.add_argument("--device", default="auto", help="auto (a GPU if there is one), cpu or cuda")
        q.add_argument("--seed", type=int, default=42, help="random seed (default %(default)s)")

    def model_args(q: argparse.ArgumentParser) -> None:
        data_args(q)
        device_args(q)
        q.add_argument("--recipe", choices=list(RECIPES), help="a named recipe (see `digitlearn recipes`)")
        q.add_argument("--model", choices=list(MODELS), help="default: the recipe's model, else simple_net")
        q.add_argument("--hidden", type=_sizes, help="mlp/lenet hidden layer sizes, e.g. 200,100")
        q.add_argument("--init-std", type=_positive(float), help="linear: std of the initial weights")
        q.add_argument("--channels", type=_sizes, help="cnn/lenet/resnet channels per stage, e.g. 16,32,64")
        q.add_argument("--bs", type=_positive(int), help="batch size")
        q.add_argument("--opt", choices=["sgd", "adam"], help="optimizer (adam has decoupled weight decay)")
        q.add_argument("--mom", type=float, help="momentum (sgd, default 0) or beta1 (adam, default 0.9)")
        q.add_argument("--sqr-mom", type=float, help="adam's beta2 (default 0.999)")
        q.add_argument("--wd", type=float, help="weight decay")
        q.add_argument(
            "--loss",
            choices=list(LOSS_NAMES),
            help="mnist (the chapter's), bce, or ce (softmax); default mnist for two classes, else ce",
        )
        q.add_argument("--label-smoothing", type=float, help="label smoothing for --loss ce, e.g. 0.1")
        q.add_argument(
            "--augment",
            action=argparse.BooleanOptionalAction,
            help="random shifts/rotations (cnn, lenet, resnet)",
        )
        q.add_argument(
            "--normalize", action=argparse.BooleanOptionalAction, help="scale inputs to mean 0, std 1"
        )
        q.add_argument(
            "--precision", choices=["auto", "fp32", "bf16"], help="auto: bf16 where it runs fast (AMX, GPUs)"
        )
        q.add_argument(
            "--skip-learned",
            type=_probability,
            metavar="P",
            help="after the first epoch, train only on examples whose true class had probability < P "
            "when last seen (0: off)",
        )
        q.add_argument(
            "--validate", choices=["each", "last"], help="validate after each epoch or after the last only"
        )
        q.add_argument("--quiet", action="store_true", help="no progress display")

    q = torch_command("train", help="train a model with the Learner and save the run")
    model_args(q)
    q.add_argument("--epochs", type=_positive(int), help="default: the recipe's")
    q.add_argument(
        "--lr", type=_positive(float), help="(peak) learning rate; default: the recipe's (1e-3 for adam "
        "and 0.1 for sgd when --opt changes the optimizer)"
    )  # fmt: skip
    q.add_argument("--one-cycle", action=argparse.BooleanOptionalAction, help="one-cycle schedule up to --lr")
    q.add_argument(
        "--out", metavar="RUN_DIR", help="where to write the run (default runs/<data>-<recipe or model>[-N])"
    )
    q.add_argument("--force", action="store_true", help="replace --out if it exists")
    q.set_defaults(run=cmd_train)

    q = sub.add_parser("recipes", help="list the named recipes and each model's default settings")
    q.set_defaults(run=cmd_recipes)

    q = torch_command("compare", help="train each model with its default recipe; one table of results")
    data_args(q)
    device_args(q)
    q.add_argument("--models", type=_models, default=list(COMPARED), help=f"default {','.join(COMPARED)}")
    q.add_argument("--json", action="store_true", help="print the results as JSON")
    q.set_defaults(run=cmd_compare)

    q = torch_command("lr-find", help="suggest a learning rate and plot loss against learning rate")
    model_args(q)
    q.add_argument("--start-lr", type=_positive(float), default=1e-7)
    q.add_argument("--end-lr", type=_positive(float), default=10.0)
    q.add_argument("--num-it", type=_positive(int), default=100, help="batches to try (default %(default)s)")
    q.add_argument("--out", metavar="FILE.png", default="lr_find.png", help="the plot (default %(default)s)")
    q.set_defaults(run=cmd_lr_find)

    q = torch_command("evaluate", help="accuracy, per-class precision/recall and confusion matrix of a run")
    q.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by `digitlearn train`")
    q.add_argument("--data", help="dataset to evaluate on (default: the one the run was trained on)")
    q.add_argument("--size", type=_size, help="resize every image, e.g. 28 or 28x28")
    q.add_argument("--split", default="valid", help="split to evaluate (default %(default)s)")
    q.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    q.add_argument("--out", metavar="DIR", help="write confusion_matrix.png, top_losses.png, evaluation.json")
    q.add_argument("--top-losses", type=_positive(int), default=16, help="images in top_losses.png")
    q.add_argument("--json", action="store_true", help="print the figures as JSON")
    q.set_defaults(run=cmd_evaluate)

    q = torch_command("predict", help="classify your own digit images (any size, format, colours)")
    q.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by `digitlearn train`")
    q.add_argument("images", metavar="IMAGE", nargs="+", help="PNG, JPEG, BMP, GIF, WebP or TIFF files")
    q.add_argument("--top", type=_positive(int), default=3, help="probabilities shown per image")
    q.add_argument("--json", action="store_true", help="print the results as JSON")
    q.add_argument("--show", metavar="FILE.png", help="draw each image above the 28x28 input the model saw")
    q.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    q.set_defaults(run=cmd_predict)

    q = torch_command("reproduce", help="run the chapter end to end: its figures next to ours, and a report")
    q.add_argument("--out", metavar="DIR", default="report", help="the report's folder (default %(default)s)")
    q.add_argument("--quick", action="store_true", help="mnist_sample only, under a minute; no full MNIST")
    device_args(q)
    q.set_defaults(run=cmd_reproduce)

    q = torch_command("serve", help="a web page to draw digits on, and a JSON API, for a trained run")
    q.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by `digitlearn train`")
    q.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default %(default)s: this machine only)"
    )
    q.add_argument("--port", type=int, default=8000, help="port (default %(default)s; 0 picks a free one)")
    q.add_argument("--max-bytes", type=_positive(int), help="largest request accepted (default 5 MiB)")
    q.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    q.set_defaults(run=cmd_serve)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "means", False) and not args.out:
        parser.error("--means needs --out FILE.png")
    try:
        if hasattr(args, "threads"):  # a command that computes with torch
            from .hardware import set_threads

            set_threads(args.threads)
        return args.run(args)
    except DigitlearnError as e:
        print(f"digitlearn: error: {e}", file=sys.stderr)
    except BrokenPipeError:  # the reader went away (`digitlearn recipes | head`): nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so exit's flush is quiet
    except OSError as e:  # the environment said no (permissions, disk full): not a bug to trace
        print(f"digitlearn: error: {e.strerror or e}: {e.filename or ''}".rstrip(": "), file=sys.stderr)
    except KeyboardInterrupt:
        print("digitlearn: interrupted", file=sys.stderr)
        return 130
    return 1
