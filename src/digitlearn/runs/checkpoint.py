"""A run's checkpoint: written after every epoch, it makes the run resumable, and marks it unfinished.

The file is `training.checkpoint`'s (everything a fit needs to go on exactly); its metadata also
holds the epoch reached and planned, read here from the header alone.
"""

from pathlib import Path

from safetensors import SafetensorError, safe_open

from ..errors import DigitlearnError
from ..training.checkpoint import save_checkpoint
from ..training.events import Callback, Learner
from ..training.recorder import write_history

# an unfinished run's checkpoint (training.checkpoint): its metadata says how far the run got
CHECKPOINT = "checkpoint.safetensors"


def unfinished(path: str | Path) -> tuple[int, int] | None:
    """(epochs done, epochs planned) if `path` is a run that has not finished, else None; a
    checkpoint file there that cannot be read is a DigitlearnError that calls it damaged."""
    file = Path(path) / CHECKPOINT
    if not file.is_file():
        return None
    try:
        with safe_open(file, "pt") as f:  # the header only: no tensor is read
            meta = f.metadata() or {}
        progress = int(meta["epoch"]), int(meta["n_epoch"])
    except (SafetensorError, OSError, KeyError, ValueError) as e:
        # there, but unreadable: a truncated or damaged file, which must not pass for no checkpoint
        what = f"no {e} in its header" if isinstance(e, KeyError) else str(e)
        raise DigitlearnError(f"{file}: the checkpoint is damaged ({what})") from None
    if not 0 <= progress[0] <= progress[1]:
        raise DigitlearnError(f"{file}: the checkpoint is damaged (epoch {progress[0]} of {progress[1]})")
    return progress


def refuse_unfinished(path: str | Path) -> None:
    """One clear line for a run that has not finished: its weights are not a trained model's."""
    progress = unfinished(path)
    if progress is not None:
        raise DigitlearnError(
            f"{path} is an unfinished run (epoch {progress[0]} of {progress[1]}): "
            f"resume it with digitlearn train --resume {path}"
        )


class Checkpoint(Callback):
    """After every epoch, writes the checkpoint and history.csv into the folder `folder`."""

    order = 85  # after the Recorder's row and the trackers' verdicts; before Ctrl-C stops the fit
    in_lr_find = False

    def __init__(self, folder: str | Path, extra: dict | None = None) -> None:
        self.folder, self.extra = Path(folder), extra

    def after_epoch(self, learn: Learner) -> None:
        save_checkpoint(learn, self.folder / CHECKPOINT, self.extra)
        write_history(learn.recorder, self.folder / "history.csv")
