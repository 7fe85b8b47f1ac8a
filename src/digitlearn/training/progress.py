"""Showing progress: bars where they can redraw, and the epoch table, a row per epoch."""

import math
import sys

from tqdm.auto import tqdm

from ..tables import line
from .events import Callback, Learner


def format_row(names: list[str], row: dict | None = None) -> str:
    """One line of the epoch table, printed as each epoch ends: the header when `row` is None."""
    widths = [max(len(n), 5 if n == "epoch" else 8) for n in names]
    align = ">" * len(names)
    if row is None:
        return line(names, widths, align)
    cells = []
    for n in names:
        v = row.get(n, math.nan)
        if n == "epoch":
            cells.append(str(v))
        elif math.isnan(v):
            cells.append("-")  # not measured this epoch (validation skipped, or the stage cancelled)
        else:
            cells.append(f"{v:.2f}s" if n == "time" else f"{v:.6f}")
    return line(cells, widths, align)


def interactive() -> bool:
    """True in a terminal or a Jupyter kernel: places where a progress bar can redraw."""
    return sys.stderr.isatty() or "ipykernel" in sys.modules


class ProgressCallback(Callback):
    """Progress bars while training (terminal or Jupyter) and an aligned table, a row per epoch.

    Where nothing can redraw (a pipe, a log file, CI), there are no bars: just the table,
    printed one plain line per epoch as each epoch ends.
    """

    order = 60
    in_lr_find = False

    def __init__(self, file=None) -> None:
        self.file = file  # where the table goes (default: sys.stdout at fit time)
        self.bars = False
        self.epochs = self.batches = None

    def _print(self, line: str) -> None:
        out = self.file or sys.stdout
        if self.bars:
            tqdm.write(line, file=out)
        else:
            print(line, file=out, flush=True)

    def before_fit(self, learn: Learner) -> None:
        self.bars = interactive() and self.file is None
        self.epochs = (
            tqdm(total=learn.n_epoch, desc="epochs", unit="epoch", leave=False) if self.bars else None
        )
        self._print(format_row(learn.recorder.names))

    def _start(self, learn: Learner, desc: str) -> None:
        if self.bars:
            self.batches = tqdm(total=len(learn.dl), desc=desc, unit="batch", leave=False)

    def before_train(self, learn: Learner) -> None:
        self._start(learn, "train")

    def before_validate(self, learn: Learner) -> None:
        self._start(learn, "valid")

    def after_batch(self, learn: Learner) -> None:
        if self.batches is not None:
            self.batches.update(1)

    def _stop(self, learn: Learner) -> None:
        if self.batches is not None:
            self.batches.close()
            self.batches = None

    after_train = after_validate = _stop

    def after_epoch(self, learn: Learner) -> None:
        self._print(format_row(learn.recorder.names, learn.recorder.history[-1]))
        if self.epochs is not None:
            self.epochs.update(1)

    def after_fit(self, learn: Learner) -> None:
        self._stop(learn)
        if self.epochs is not None:
            self.epochs.close()
            self.epochs = None
