"""A training run's folder: the model (weights.safetensors, config.json with the recipe, the data,
the seed and the results), the history (history.csv, history.json) and, if asked, its curves
(history.png).

A run trained by `train_run` is made by `start_run`, checkpointed after every epoch, and finished
by `finish_run`; until its checkpoint is gone it is unfinished, and resumable. `save_run` writes
a trained Learner's run folder at once, whole or not at all. `predict`, `evaluate` and `serve`
need nothing else.
"""

import re
from pathlib import Path

import torch

from .. import __version__
from ..errors import DigitlearnError
from ..files import atomic_dir, remove_stale
from ..models.saved import CONFIG, FORMAT, WEIGHTS
from ..training import Learner, MixedPrecision, write_history
from ..training.recipes import Recipe
from .checkpoint import CHECKPOINT, unfinished
from .lock import LOCK
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
RUN_FILES = frozenset({CONFIG, WEIGHTS, CHECKPOINT, "history.csv", "history.json", "history.png", LOCK})


def is_run_folder(path: Path) -> bool:
    """Whether `path` is a folder that digitlearn wrote as a run, finished or not, holding nothing
    but a run's files (and the temporary files of a writer killed mid-write, which go first)."""
    if not path.is_dir() or path.is_symlink():
        return False
    remove_stale(path / CONFIG)
    names = {p.name for p in path.iterdir()}
    if not names <= RUN_FILES:
        return False
    try:
        if unfinished(path) is not None or names <= {LOCK}:  # a run, or one that never wrote a file
            return True
    except DigitlearnError:  # a run whose checkpoint is damaged: a run all the same
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
    plot: bool = False,
) -> dict:
    """Write a new run folder `out` for a trained `learn`, whole or not at all (a temporary folder
    renamed into place; an earlier run there is replaced only if `replace`). Returns what
    config.json records of the run; `plot` draws its curves too (history.png). A run trained with
    checkpoints is finished by `finish_run`."""
    record = run_record(learn, recipe, data, seed, recipe_name, extra)
    with atomic_dir(Path(out), replace=replace) as tmp:
        _write_results(tmp, learn, record, f"{recipe.model} on {data}" if plot else None)
    return record


def finish_run(
    out: Path, learn: Learner, record: dict, title: str | None = None, keep_checkpoint: bool = False
) -> None:
    """Finish the run folder `out` that `start_run` made and its checkpoints kept resumable, with
    `record` (`run_record`) as what config.json says of it, and its curves drawn (history.png)
    under `title` if one is given.

    Each result file is written beside the checkpoint, atomically, and removing the checkpoint is
    the one step that makes the run finished. A kill at any moment leaves a run that `--resume`
    finishes (its checkpoint holds the whole training) or a finished one; never neither.
    `keep_checkpoint` (a run stopped early) leaves it resumable."""
    _write_results(out, learn, record, title)
    if not keep_checkpoint:
        (out / CHECKPOINT).unlink(missing_ok=True)


def _write_results(folder: Path, learn: Learner, record: dict, title: str | None) -> None:
    """The model, its config and the history (csv, json, and the curves as history.png if `title`)."""
    history = learn.recorder.history
    write_history(learn.recorder, folder / "history.csv")
    write_history(learn.recorder, folder / "history.json")
    # only when asked: importing matplotlib and drawing take longer than the fast recipe's 2nd epoch
    if history and title is not None:
        from ..plots.charts import plot_history, save_figure

        save_figure(plot_history(history, learn.recorder.metric_columns, title), folder / "history.png")
    learn.save(folder, record)  # config.json last: a reader finds weights for every config


def start_run(out: str | Path, learn: Learner, n_epoch: int, resume: dict, replace: bool = False) -> None:
    """Start the run in the folder `out` (held by `run_lock`): the checkpoint before the first
    epoch and an empty history.csv. `resume` is what `resume_run` needs to rebuild the run (JSON
    data). An earlier run there (`replace`) is replaced in place: the new checkpoint first, which
    makes the folder this run's, then the old run's other files go."""
    learn.n_epoch = n_epoch  # the checkpoint's "epoch 0 of n"
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    learn.save_checkpoint(out / CHECKPOINT, resume)
    write_history(learn.recorder, out / "history.csv")
    if replace:
        for name in RUN_FILES - {CHECKPOINT, "history.csv", LOCK}:
            (out / name).unlink(missing_ok=True)
