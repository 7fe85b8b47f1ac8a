"""A training run's folder: the model (weights.safetensors, config.json with the recipe, the data,
the seed and the results), the history (history.csv, history.json) and its curves (history.png).

`save_run` writes it all into a temporary folder and renames it into place, so a run folder is
whole or absent. `predict`, `evaluate` and `serve` need nothing else.
"""

import re
import shutil
from pathlib import Path

import torch

from .. import __version__
from ..errors import DigitlearnError
from ..files import atomic_dir, remove_stale
from ..models.saved import CONFIG, FORMAT, WEIGHTS
from ..training import Learner, MixedPrecision, write_history
from ..training.recipes import Recipe
from .checkpoint import CHECKPOINT, unfinished
from .model import read_config


def new_run_dir(data: str, name: str, root: str | Path = "runs") -> Path:
    """`root/<data>-<name>`, numbered -2, -3... rather than replacing an earlier run."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(data).name.removesuffix(".tgz")) or "data"
    base = Path(root) / f"{stem}-{name}"
    out, k = base, 1
    while out.exists():
        k += 1
        out = base.with_name(f"{base.name}-{k}")
    return out


# what a run folder holds: replacing one (--force) deletes nothing else
RUN_FILES = frozenset({CONFIG, WEIGHTS, CHECKPOINT, "history.csv", "history.json", "history.png"})


def is_run_folder(path: Path) -> bool:
    """Whether `path` is a folder that digitlearn wrote as a run, finished or not, holding nothing
    but a run's files (and the temporary files of a writer killed mid-write, which go first)."""
    if not path.is_dir() or path.is_symlink():
        return False
    remove_stale(path / CONFIG)
    if not {p.name for p in path.iterdir()} <= RUN_FILES:
        return False
    if unfinished(path) is not None:
        return True
    try:
        return read_config(path).get("format") == FORMAT
    except DigitlearnError:
        return False


def check_run_dir(out: str | Path, replace: bool = False) -> Path:
    """`out` as a place to write a run: new, or (with `replace`) an earlier run, and only that."""
    out = Path(out)
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise DigitlearnError(f"{out} is not a folder: --out names a folder for the run")
    if out.exists() and not replace:
        raise DigitlearnError(f"{out} already exists: choose another --out, or add --force to replace it")
    if out.exists() and not is_run_folder(out):
        raise DigitlearnError(
            f"{out} is not a digitlearn run (it holds other files): --force replaces only a run; "
            "choose another --out"
        )
    return out


def run_record(
    learn: Learner,
    recipe: Recipe,
    data: str,
    seed: int,
    recipe_name: str | None = None,
    extra: dict | None = None,
) -> dict:
    """What config.json says of the run beyond the model: how it was trained, and what it reached.

    `extra` adds to "train" (the schema leaves that part open): world_size and backend, say."""
    history = learn.recorder.history
    final = history[-1] if history else {}
    return {
        "train": {
            "data": data,
            "recipe": recipe_name,
            **recipe.to_dict(),
            "seed": seed,
            "device": str(learn.device),
            "mixed_precision": any(isinstance(cb, MixedPrecision) for cb in learn.cbs),
            **(extra or {}),
        },
        "results": {k: v for k, v in final.items() if k not in ("epoch", "time")},
        "epochs_done": len(history),
        "train_seconds": sum(row["time"] for row in history),
        "interrupted": learn.interrupted,
        "versions": {"digitlearn": __version__, "torch": torch.__version__},
    }


def save_run(
    out: str | Path,
    learn: Learner,
    recipe: Recipe,
    data: str,
    seed: int,
    recipe_name: str | None = None,
    replace: bool = False,
    extra: dict | None = None,
    keep_checkpoint: bool = False,
) -> dict:
    """Write the run folder `out` for a trained `learn`; returns what config.json records of it.

    `keep_checkpoint` (for a run stopped early) keeps `out`'s checkpoint in the new folder, so the run can
    be resumed; until it is, nothing takes its weights for a trained model's."""
    record = run_record(learn, recipe, data, seed, recipe_name, extra)
    history = learn.recorder.history
    out = Path(out)
    with atomic_dir(out, replace=replace) as tmp:
        if keep_checkpoint and (out / CHECKPOINT).is_file():
            shutil.copyfile(out / CHECKPOINT, tmp / CHECKPOINT)
        learn.save(tmp, record)
        write_history(learn.recorder, tmp / "history.csv")
        write_history(learn.recorder, tmp / "history.json")
        if history:
            title = f"{recipe.model} on {data}"
            from ..plots.charts import plot_history, save_figure  # matplotlib: only when a run is saved

            save_figure(plot_history(history, learn.recorder.metric_columns, title), tmp / "history.png")
    return record


def start_run(out: str | Path, learn: Learner, n_epoch: int, resume: dict, replace: bool = False) -> None:
    """Make the run folder `out` as training starts: the checkpoint before the first epoch and
    an empty history.csv, renamed into place together (replacing an earlier run if `replace`).
    `resume` is what `digitlearn train --resume` needs to rebuild the run (JSON data)."""
    learn.n_epoch = n_epoch  # the checkpoint's "epoch 0 of n"
    with atomic_dir(Path(out), replace=replace) as tmp:
        learn.save_checkpoint(tmp / CHECKPOINT, resume)
        write_history(learn.recorder, tmp / "history.csv")
