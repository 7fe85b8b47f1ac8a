"""`digitlearn train`: train with a recipe and write the run folder, checkpointed after every
epoch so that `--resume` goes on with a run that was stopped."""

import argparse
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import DigitlearnError
from ..training.recipes import Recipe
from .shared import RECIPE_FLAGS, Interrupted, add_recipe, learning_rate, load_data, number, recipe_from

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
    q.add_argument(
        "--resume", metavar="RUN_DIR", help="go on with the unfinished run RUN_DIR, with its settings"
    )


def describe(recipe: Recipe, learn: "Learner", parallel: dict | None = None) -> str:
    """The settings of a run, in one line: what a reader needs to repeat it."""
    from ..training import MixedPrecision
    from ..training.losses import describe as describe_loss

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
    if parallel:
        parts.append(f"{parallel['world_size']} processes ({parallel['backend']})")
    return ", ".join(parts)


def run(args: argparse.Namespace) -> int:
    from ..models.layers import n_params
    from ..runs.folder import check_run_dir, is_run_folder, new_run_dir, start_run
    from ..training.distributed import rank

    if args.resume:
        return resume(args)
    recipe = recipe_from(args)
    lead = rank() == 0  # under torchrun, only rank 0 prints and writes; the others have no folder
    # the folder is checked before training: a bad --out costs no run
    out = None
    if lead:
        out = (
            check_run_dir(args.out, args.force)
            if args.out
            else new_run_dir(args.data, args.recipe or recipe.model)
        )
    settings = {
        "data": args.data,
        "size": args.size,
        "recipe_name": args.recipe,
        "recipe": recipe.to_dict(),
        "seed": args.seed,
        "device": args.device,
    }
    ds = load_data(args)
    learn = recipe.learner(ds, args.seed, args.device, progress=not args.quiet and lead)
    with _processes(learn) as parallel:
        if lead:
            named = f" (recipe {args.recipe})" if args.recipe else ""
            print(
                f"training {recipe.model}{named} ({n_params(learn.model):,} parameters) on {args.data}: "
                f"{len(ds.train):,} train, {len(ds.valid):,} valid images, classes {', '.join(ds.classes)}\n"
                f"{describe(recipe, learn, parallel)}, seed {args.seed}"
            )
            start_run(out, learn, recipe.epochs, {"run": settings}, replace=args.force)
        try:
            return _train(out, learn, recipe, settings, parallel)
        except DigitlearnError:
            # a run that failed (diverged) before finishing an epoch has nothing to resume or keep
            if out is not None and learn.epochs_done == 0 and is_run_folder(out):
                shutil.rmtree(out)
            raise


def resume(args: argparse.Namespace) -> int:
    """`--resume RUN_DIR`: rebuild the run from the settings its checkpoint records, then go on."""
    from ..runs.checkpoint import CHECKPOINT, unfinished
    from ..training.checkpoint import read_checkpoint
    from ..training.distributed import rank

    settable = ("recipe", "out", "force", *RECIPE_FLAGS)
    given = [k for k in settable if getattr(args, k, None) not in (None, False)]
    if given:
        flag = "--" + given[0].replace("_", "-")
        raise DigitlearnError(f"--resume takes every setting from {args.resume}: give no {flag}")
    out = Path(args.resume)
    progress = unfinished(out)
    if progress is None:
        raise DigitlearnError(f"{out} is not an unfinished run: there is no checkpoint in it to resume")
    settings = read_checkpoint(out / CHECKPOINT)[0]["extra"]["run"]
    # JSON has no tuples: the layer sizes come back as lists
    recipe = Recipe(**{k: tuple(v) if isinstance(v, list) else v for k, v in settings["recipe"].items()})
    size = tuple(settings["size"]) if settings["size"] else None
    ds = load_data(argparse.Namespace(data=settings["data"], size=size))
    lead = rank() == 0
    learn = recipe.learner(ds, settings["seed"], settings["device"], progress=not args.quiet and lead)
    learn.load_checkpoint(out / CHECKPOINT)
    with _processes(learn) as parallel:
        if lead:
            print(
                f"resuming {out} at epoch {progress[0]} of {progress[1]}: "
                f"{describe(recipe, learn, parallel)}, seed {settings['seed']}"
            )
        return _train(out if lead else None, learn, recipe, settings, parallel)


@contextmanager
def _processes(learn: "Learner") -> Iterator[dict]:
    """Data-parallel training when torchrun started this process; yields what config.json's
    "train" records of it (nothing for one process)."""
    from ..training.distributed import launched

    if not launched():
        yield {}
        return
    import torch.distributed as dist

    with learn.distributed():
        yield {"world_size": dist.get_world_size(), "backend": dist.get_backend()}


def _train(out: Path | None, learn: "Learner", recipe: Recipe, settings: dict, parallel: dict) -> int:
    """Fit, checkpointing into `out` after every epoch; then write the run folder there.
    `out` is None in the processes of a data-parallel run that write nothing."""
    from ..runs.checkpoint import Checkpoint
    from ..runs.folder import save_run

    checkpoint = [Checkpoint(out, {"run": settings})] if out is not None else []
    learn.add_cbs(checkpoint)
    try:
        recipe.fit(learn)
    finally:
        learn.remove_cbs(checkpoint)
    if out is None:
        return 130 if learn.interrupted else 0
    stopped = learn.interrupted and learn.epochs_done < recipe.epochs
    record = save_run(
        out,
        learn,
        recipe,
        settings["data"],
        settings["seed"],
        settings["recipe_name"],
        replace=True,  # the folder is this run's own, made when training started
        extra=parallel,
        keep_checkpoint=stopped,
    )
    if record["results"]:
        n = record["epochs_done"]
        figures = ", ".join(f"{k} {v:.4f}" for k, v in record["results"].items())
        print(f"after {n} epoch{'s' if n != 1 else ''} ({record['train_seconds']:.1f}s): {figures}")
    print(f"wrote {out}: {', '.join(sorted(p.name for p in out.iterdir()))}")
    if learn.interrupted:
        more = f"; go on with digitlearn train --resume {out}" if stopped else ""
        raise Interrupted(f"the run holds the weights and history so far{more}")
    return 0
