"""`digitlearn train`: train with a recipe and write the run folder, checkpointed after every
epoch so that `--resume` goes on with a run that was stopped."""

import argparse
from typing import TYPE_CHECKING

from ..errors import DigitlearnError
from .shared import RECIPE_FLAGS, Interrupted, add_recipe, learning_rate, number, recipe_flags

if TYPE_CHECKING:
    from ..runs.train import Run

NAME, HELP, TORCH = "train", "train a model with the Learner and save the run", True


def add_arguments(q: argparse.ArgumentParser) -> None:
    add_recipe(q)
    q.add_argument("--epochs", type=number(int, 1, 100_000), help="default: the recipe's")
    q.add_argument(
        "--lr", type=learning_rate, help="(peak) learning rate; default: the recipe's (1e-3 for adam "
        "and 0.1 for sgd when --opt changes the optimizer)"
    )  # fmt: skip
    q.add_argument("--one-cycle", action=argparse.BooleanOptionalAction, help="one-cycle schedule up to --lr")
    q.add_argument(
        "--out", metavar="RUN_DIR", help="where to write the run (default runs/<data>-<recipe or model>[-N])"
    )
    q.add_argument(
        "--valid-split", type=number(float, 0, 1, low_open=True, high_open=True), metavar="FRACTION",
        help="validate on this fraction of the training images (the same ones every run), never "
        "reading the test set: for choosing settings, e.g. 0.1",
    )  # fmt: skip
    q.add_argument("--force", action="store_true", help="replace --out if it exists")
    q.add_argument("--plot", action="store_true", help="also draw the loss and metric curves: history.png")
    q.add_argument(
        "--resume", metavar="RUN_DIR", help="go on with the unfinished run RUN_DIR, with its settings"
    )
    q.add_argument(
        "--log",
        nargs=2,
        metavar=("KIND", "DIR"),
        help="also log training: tensorboard DIR (losses, metrics, learning rate and epoch times)",
    )


def run(args: argparse.Namespace) -> int:
    from ..runs.train import resume_run, train_run

    if args.resume:
        settable = ("recipe", "out", "force", "valid_split", *RECIPE_FLAGS)
        given = [k for k in settable if getattr(args, k, None) not in (None, False)]
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise DigitlearnError(f"--resume takes every setting from {args.resume}: give no {flag}")
        return report(resume_run(args.resume, plot=args.plot, progress=not args.quiet, cbs=loggers(args)))
    flags = recipe_flags(args)
    settings = {k: v for k, v in flags.items() if k != "model"}
    run = train_run(
        args.data,
        args.recipe,
        args.out,
        model=args.model,
        seed=args.seed,
        device=args.device,
        size=args.size,
        valid_split=args.valid_split,
        force=args.force,
        plot=args.plot,
        progress=not args.quiet,
        cbs=loggers(args),
        **settings,
    )
    return report(run)


def loggers(args: argparse.Namespace) -> list:
    """The callbacks `--log KIND DIR` asks for."""
    if not args.log:
        return []
    kind, folder = args.log
    if kind != "tensorboard":
        raise DigitlearnError(f"--log {kind}: the known kind is tensorboard (--log tensorboard DIR)")
    from ..training.tensorboard import TensorBoard

    return [TensorBoard(folder)]


def report(run: "Run") -> int:
    """The run's figures and folder, in two lines; exit 130 for a run stopped by Ctrl-C."""
    if run.path is None:  # another process of a data-parallel run
        return 130 if run.interrupted else 0
    record = run.record
    if record["results"]:
        n = record["epochs_done"]
        figures = ", ".join(f"{k} {v:.4f}" for k, v in record["results"].items())
        print(f"after {n} epoch{'s' if n != 1 else ''} ({record['train_seconds']:.1f}s): {figures}")
    files = sorted(p.name for p in run.path.iterdir() if not p.name.startswith("."))  # not the lock
    print(f"wrote {run.path}: {', '.join(files)}")
    if run.interrupted:
        more = f"; go on with digitlearn train --resume {run.path}" if run.resumable else ""
        raise Interrupted(f"the run holds the weights and history so far{more}")
    return 0
