"""Training a run, and resuming one: what `digitlearn train --out` and `--resume` do, from Python.

    run = train_run("mnist", "fast", out="runs/mnist-fast")   # checkpointed after every epoch
    run = resume_run("runs/mnist-fast")                         # a stopped run goes on exactly

Under torchrun, every process calls the same function: they train data-parallel, and only rank 0
prints and writes the folder.
"""

import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from ..data.dataset import Dataset, load_dataset
from ..errors import DigitlearnError
from ..models.layers import n_params
from ..models.limits import MAX_SIZE
from ..training import Callback, Learner, MixedPrecision
from ..training.checkpoint import read_checkpoint
from ..training.distributed import launched, rank
from ..training.losses import describe as describe_loss
from ..training.recipes import RECIPES, Recipe, recipe_for
from .checkpoint import CHECKPOINT, Checkpoint, unfinished
from .folder import check_run_dir, finish_run, is_run_folder, new_run_dir, run_record, start_run
from .lock import LOCK, run_lock

Log = Callable[[str], None]


@dataclass
class Run:
    """A trained (or stopped) run: its folder, the Learner, the recipe, and what config.json records.

    `path` is None in the processes of a data-parallel run that write nothing."""

    path: Path | None
    learn: Learner
    recipe: Recipe
    record: dict

    @property
    def interrupted(self) -> bool:
        return self.learn.interrupted

    @property
    def resumable(self) -> bool:
        """Stopped before its last epoch, with its checkpoint kept: `resume_run` goes on with it."""
        return self.learn.interrupted and self.learn.epochs_done < self.recipe.epochs


def describe(recipe: Recipe, learn: Learner, parallel: dict | None = None) -> str:
    """The settings of a run, in one line: what a reader needs to repeat it."""
    loss = describe_loss(learn.loss_func)["name"]
    parts = [
        f"{recipe.epochs} epoch{'s' if recipe.epochs != 1 else ''}",
        f"{'one-cycle to ' if recipe.one_cycle else ''}lr {recipe.lr:g}",
        recipe.opt + (f" wd {recipe.wd:g}" if recipe.wd else ""),
        f"batch size {recipe.bs}",
        f"loss {loss}" + (f" (label smoothing {recipe.label_smoothing:g})" if recipe.label_smoothing else ""),
    ]
    if recipe.whiten:
        parts.append("first convolution whitened, not trained")
    if recipe.augment:
        ends = recipe.plain_ends
        plain = "the first and last epochs" if ends == 1 else f"the first {ends} and last {ends} epochs"
        parts.append(f"augmented except in {plain}" if ends else "augmented")
    if recipe.skip_learned:
        start = "later epochs" if recipe.skip_from >= 1 else f"from {recipe.skip_from:g} of the first epoch"
        parts.append(f"{start} only on examples at p < {recipe.skip_learned:g}")
        if recipe.skip_bs:  # the learner refused it without skip_from < 1
            parts.append(f"{recipe.skip_bs} at a time")
    if recipe.validate == "last":
        parts.append("validated after the last epoch")
    mixed = any(isinstance(cb, MixedPrecision) for cb in learn.cbs)
    parts.append(f"{learn.device.type} {'bf16 mixed precision' if mixed else 'fp32'}")
    if parallel:
        parts.append(f"{parallel['world_size']} processes ({parallel['backend']})")
    return ", ".join(parts)


def train_run(
    data: str = "mnist_sample",
    recipe: Recipe | str | None = None,
    out: str | Path | None = None,
    *,
    model: str | None = None,
    seed: int = 42,
    device: str = "auto",
    size: int | tuple[int, int] | None = None,
    valid_split: float | None = None,
    force: bool = False,
    plot: bool = False,
    progress: bool = True,
    cbs: Iterable[Callback] = (),
    log: Log | None = print,
    **settings: object,
) -> Run:
    """Train a run and write its folder, checkpointed after every epoch (`digitlearn train`).

    `recipe` is a Recipe or a named one ("fast", "best"); without it, `model`'s default recipe.
    `settings` replace the recipe's (`epochs=1`, `channels=(8, 16)`). `valid_split` (0.1, say)
    validates on that fraction of the training images instead of the valid (test) split, which
    the run then never reads: for choosing settings (`Dataset.hold_out`). `plot` draws the
    curves into history.png. `out` defaults to
    runs/<data>-<recipe or model>[-N]; an existing `out` is replaced only with `force`, and only if
    it holds a run. `cbs` are added to the Learner; `log` receives the lines the command prints.
    """
    recipe_name = (
        recipe if isinstance(recipe, str) else next((k for k, v in RECIPES.items() if v is recipe), None)
    )
    if not isinstance(recipe, Recipe):
        recipe = recipe_for(recipe, model)
    recipe = recipe.updated(**settings)
    lead = rank() == 0  # under torchrun, only rank 0 prints and writes; the others have no folder
    path = (Path(out) if out else new_run_dir(data, recipe_name or recipe.model)) if lead else None
    say = log if lead and log else _quiet
    with ExitStack() as held:
        new = False
        if path is not None:  # one writer per folder, from the check to the finish
            if (path.exists() or path.is_symlink()) and not is_run_folder(path):
                check_run_dir(path, force)  # refuses it, untouched: a file, a link, the user's folder
            new = held.enter_context(run_lock(path, create=True))
            if not new:  # checked under the lock, before training: a bad `out` costs no run
                check_run_dir(path, force)
            held.callback(_remove_if_unused, path, new)
        run = {
            "data": str(data),
            "size": list(size) if isinstance(size, tuple) else size,
            "recipe_name": recipe_name,
            "recipe": recipe.to_dict(),
            "seed": seed,
            "device": device,
            **({"valid_split": valid_split} if valid_split else {}),
        }
        ds = _dataset(run)
        learn = recipe.learner(ds, seed, device, progress=progress and lead)
        learn.add_cbs(cbs)
        parallel = held.enter_context(_processes(learn))
        named = f" (recipe {recipe_name})" if recipe_name else ""
        say(
            f"training {recipe.model}{named} ({n_params(learn.model):,} parameters) on {data}: "
            f"{len(ds.train):,} train, {len(ds.valid):,} valid images"
            f"{' (held out of train)' if valid_split else ''}, classes {', '.join(ds.classes)}\n"
            f"{describe(recipe, learn, parallel)}, seed {seed}"
        )
        if path is not None:
            start_run(path, learn, recipe.epochs, {"run": run}, replace=not new)
        try:
            return _train(path, learn, recipe, run, parallel, plot)
        except DigitlearnError:
            # a run that failed (diverged) before finishing an epoch has nothing to resume or keep
            if path is not None and learn.epochs_done == 0 and is_run_folder(path):
                shutil.rmtree(path)
            raise


def resume_run(
    run_dir: str | Path,
    *,
    plot: bool = False,
    progress: bool = True,
    cbs: Iterable[Callback] = (),
    log: Log | None = print,
) -> Run:
    """Go on with the unfinished run in `run_dir` (`digitlearn train --resume`): rebuilt from the
    settings its checkpoint records, it ends as the uninterrupted run would have."""
    path = Path(run_dir)
    _check_unfinished(path)  # before the lock: no .lock file in a folder that holds no run
    with run_lock(path) if rank() == 0 else nullcontext():
        return _resume(path, plot, progress, cbs, log)


def _resume(path: Path, plot: bool, progress: bool, cbs: Iterable[Callback], log: Log | None) -> Run:
    progress_made = _check_unfinished(path)
    run = _run_settings(read_checkpoint(path / CHECKPOINT)[0]["extra"], path / CHECKPOINT)
    recipe = Recipe.from_dict(run["recipe"])
    ds = _dataset(run)
    lead = rank() == 0
    learn = recipe.learner(ds, run["seed"], run["device"], progress=progress and lead)
    learn.add_cbs(cbs)
    learn.load_checkpoint(path / CHECKPOINT)
    say = log if lead and log else _quiet
    with _processes(learn) as parallel:
        say(
            f"resuming {path} at epoch {progress_made[0]} of {progress_made[1]}: "
            f"{describe(recipe, learn, parallel)}, seed {run['seed']}"
        )
        return _train(path if lead else None, learn, recipe, run, parallel, plot)


# what train_run records in the checkpoint for resume_run, with each value's type
RUN_SETTINGS = {"data": str, "size": (list, type(None)), "recipe_name": (str, type(None)), "recipe": dict,
                "seed": int, "device": str}  # fmt: skip


def _dataset(run: dict) -> Dataset:
    """The data a run trains and validates on, from its settings."""
    size = tuple(run["size"]) if isinstance(run["size"], list) else run["size"]
    ds = load_dataset(run["data"], size=size)
    return ds.hold_out(run["valid_split"]) if run.get("valid_split") else ds


def _run_settings(extra: dict, file: Path) -> dict:
    """The run's settings from its checkpoint, each checked: a hand-edited file is refused in one line."""

    def damaged(field: str, what: str) -> DigitlearnError:
        return DigitlearnError(f"{file}: the checkpoint is damaged: extra.run{field} {what}")

    run = extra.get("run")
    if not isinstance(run, dict):
        raise damaged("", "(the run's settings) is missing")
    for key, kinds in RUN_SETTINGS.items():
        if key not in run or not isinstance(run[key], kinds) or isinstance(run[key], bool):
            raise damaged(f".{key}", "is missing or of the wrong type")
    split = run.get("valid_split")  # absent: validated on the valid split
    if split is not None and (type(split) is not float or not 0 < split < 1):
        raise damaged(".valid_split", "must be a fraction above 0 and below 1")
    size = run["size"]
    if size is not None and (len(size) != 2 or not all(type(s) is int and 1 <= s <= MAX_SIZE for s in size)):
        raise damaged(".size", "must be [height, width]")
    for key, kinds in (("epochs", int), ("lr", (int, float)), ("bs", int)):
        value = run["recipe"].get(key)
        if not isinstance(value, kinds) or isinstance(value, bool) or not value > 0:
            raise damaged(f".recipe.{key}", f"must be a number above 0, not {value!r:.40}")
    try:
        Recipe.from_dict(run["recipe"])
    except (DigitlearnError, TypeError) as e:
        raise damaged(".recipe", f"is not a recipe ({e})") from None
    return run


def _check_unfinished(path: Path) -> tuple[int, int]:
    """(epochs done, epochs planned) of the unfinished run in `path`, refused in one line if none."""
    progress_made = unfinished(path)
    if progress_made is None:
        raise DigitlearnError(f"{path} is not an unfinished run: there is no checkpoint in it to resume")
    return progress_made


def _remove_if_unused(path: Path, made: bool) -> None:
    """Remove the folder this run made if it failed before writing anything into it."""
    if made and path.is_dir() and {p.name for p in path.iterdir()} <= {LOCK}:
        shutil.rmtree(path, ignore_errors=True)


def _quiet(line: str) -> None:
    """A log that says nothing: the other processes of a data-parallel run, or `log=None`."""


@contextmanager
def _processes(learn: Learner) -> Iterator[dict]:
    """Data-parallel training when torchrun started this process; yields what config.json's
    "train" records of it (nothing for one process)."""
    if not launched():
        yield {}
        return
    import torch.distributed as dist

    with learn.distributed():
        yield {"world_size": dist.get_world_size(), "backend": dist.get_backend()}


def _train(path: Path | None, learn: Learner, recipe: Recipe, run: dict, parallel: dict, plot: bool) -> Run:
    """Fit, checkpointing into `path` after every epoch; then write the run folder there."""
    checkpoint = [Checkpoint(path, {"run": run})] if path is not None else []
    learn.add_cbs(checkpoint)
    try:
        recipe.fit(learn)
    finally:
        learn.remove_cbs(checkpoint)
    if path is None:
        return Run(None, learn, recipe, {})
    stopped = learn.interrupted and learn.epochs_done < recipe.epochs
    held_out = {"valid_split": run["valid_split"]} if run.get("valid_split") else {}
    record = run_record(learn, recipe, run["data"], run["seed"], run["recipe_name"], {**held_out, **parallel})
    title = f"{recipe.model} on {run['data']}" if plot else None
    finish_run(path, learn, record, title, keep_checkpoint=stopped)
    return Run(path, learn, recipe, record)
