"""`digitlearn train`: train with a recipe and write the run folder."""

import argparse
from typing import TYPE_CHECKING

from ..recipes import Recipe
from .shared import Interrupted, add_recipe, learning_rate, load_data, number, recipe_from

if TYPE_CHECKING:
    from ..training import Learner

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
    q.add_argument("--force", action="store_true", help="replace --out if it exists")


def describe(recipe: Recipe, learn: "Learner") -> str:
    """The settings of a run, in one line: what a reader needs to repeat it."""
    from ..losses import describe as describe_loss
    from ..training import MixedPrecision

    loss = describe_loss(learn.loss_func)["name"]
    parts = [
        f"{recipe.epochs} epoch{'s' if recipe.epochs != 1 else ''}",
        f"{'one-cycle to ' if recipe.one_cycle else ''}lr {recipe.lr:g}",
        recipe.opt + (f" wd {recipe.wd:g}" if recipe.wd else ""),
        f"batch size {recipe.bs}",
        f"loss {loss}" + (f" (label smoothing {recipe.label_smoothing:g})" if recipe.label_smoothing else ""),
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


def run(args: argparse.Namespace) -> int:
    from ..models.layers import n_params
    from ..run_folder import check_run_dir, new_run_dir, save_run

    recipe = recipe_from(args)
    # the folder is checked before training: a bad --out costs no run
    out = (
        check_run_dir(args.out, args.force)
        if args.out
        else new_run_dir(args.data, args.recipe or recipe.model)
    )
    ds = load_data(args)
    learn = recipe.learner(ds, args.seed, args.device, progress=not args.quiet)
    named = f" (recipe {args.recipe})" if args.recipe else ""
    print(
        f"training {recipe.model}{named} ({n_params(learn.model):,} parameters) on {args.data}: "
        f"{len(ds.train):,} train, {len(ds.valid):,} valid images, classes {', '.join(ds.classes)}\n"
        f"{describe(recipe, learn)}, seed {args.seed}"
    )
    recipe.fit(learn)
    record = save_run(out, learn, recipe, args.data, args.seed, args.recipe, replace=args.force)
    if record["results"]:
        n = record["epochs_done"]
        figures = ", ".join(f"{k} {v:.4f}" for k, v in record["results"].items())
        print(f"after {n} epoch{'s' if n != 1 else ''} ({record['train_seconds']:.1f}s): {figures}")
    print(f"wrote {out}: {', '.join(sorted(p.name for p in out.iterdir()))}")
    if learn.interrupted:
        raise Interrupted("the run holds the weights and history so far")
    return 0
