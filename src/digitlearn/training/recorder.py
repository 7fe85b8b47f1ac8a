"""Recording: the Recorder's per-batch losses and per-epoch history, and writing it as CSV or JSON."""

import csv
import io
import json
import math
import time
from collections.abc import Callable
from itertools import groupby
from pathlib import Path

import torch

from ..files import atomic_path
from ..jsondata import jsonable
from .events import Callback, Learner


def metric_name(metric: Callable) -> str:
    return getattr(metric, "__name__", type(metric).__name__)


class Recorder(Callback):
    """Records per-batch training loss and learning rate, and one row per epoch in `history`.

    A row holds epoch, train_loss (the mean over the epoch's batches, weighted by their size),
    valid_loss, each metric over the whole validation set, and the epoch's wall time in seconds.
    Values of a stage that was cancelled are NaN.
    """

    order = 50
    in_lr_find = False

    def __init__(self) -> None:
        self.history: list[dict] = []
        self.lrs: list[float] = []
        self.valid_values: dict[str, float] = {}
        self.names = ["epoch", "train_loss", "valid_loss", "time"]  # the columns of a history row
        self._train = _Mean()  # every training batch of this fit
        self._valid: list[_Mean] | None = None
        self._epoch_start, self._start = 0, None
        # set by data-parallel training: sums a tensor over every process, so that each epoch's
        # figures are those of all the data, as one process would have measured them
        self.reduce: Callable[[torch.Tensor], torch.Tensor] | None = None

    @property
    def valid_columns(self) -> list[str]:
        """The columns measured on the validation set: valid_loss and each metric."""
        return self.names[2:-1]

    @property
    def metric_columns(self) -> list[str]:
        """The metrics' columns, in the order of `learn.metrics`."""
        return self.names[3:-1]

    @property
    def losses(self) -> list[float]:
        """The training loss of every batch so far in this fit."""
        # those restored from a checkpoint are on the CPU, the later ones where the model is
        runs = groupby(self._train.parts, key=lambda t: t.device)
        return [x for _, run in runs for x in torch.stack(list(run)).float().tolist()]

    def _name_columns(self, learn: Learner) -> None:
        self.names = ["epoch", "train_loss", "valid_loss", *map(metric_name, learn.metrics), "time"]

    def before_fit(self, learn: Learner) -> None:
        self._name_columns(learn)
        self.history, self.lrs, self._train = [], [], _Mean()

    def before_epoch(self, learn: Learner) -> None:
        self._start = time.perf_counter()
        self._epoch_start = len(self._train.parts)
        self.valid_values = {}

    def after_step(self, learn: Learner) -> None:
        self._train.add(learn.loss.detach(), len(learn.yb))
        self.lrs.append(learn.opt.lr)

    def before_validate(self, learn: Learner) -> None:
        self._name_columns(learn)  # validate() may run outside fit
        self._valid = [_Mean() for _ in range(1 + len(learn.metrics))]

    def after_loss(self, learn: Learner) -> None:
        if learn.training or self._valid is None:
            return
        n = len(learn.yb)
        self._valid[0].add(learn.loss.detach(), n)
        for acc, metric in zip(self._valid[1:], learn.metrics, strict=True):
            acc.add(metric(learn.preds, learn.yb).detach(), n)

    def after_train(self, learn: Learner) -> None:
        if self.reduce is not None:
            # every process ran the same number of training batches: combined batch by batch
            k = self._epoch_start
            self._train.parts[k:], self._train.counts[k:] = _combined(
                self.reduce, self._train.parts[k:], self._train.counts[k:]
            )

    def after_validate(self, learn: Learner) -> None:
        if self._valid is not None and self.reduce is not None:
            self._valid = _combined_totals(self.reduce, self._valid)
        if self._valid is not None:
            columns = zip(self.valid_columns, self._valid, strict=True)
            self.valid_values = {name: acc.mean() for name, acc in columns}
        self._valid = None

    def after_epoch(self, learn: Learner) -> None:
        k = self._epoch_start
        row = {
            "epoch": learn.epoch,
            "train_loss": weighted_mean(self._train.parts[k:], self._train.counts[k:]),
        }
        row.update({name: self.valid_values.get(name, math.nan) for name in self.valid_columns})
        row["time"] = time.perf_counter() - self._start if self._start is not None else math.nan
        self.history.append(row)

    def state_dict(self) -> dict:
        return {
            "names": self.names,
            "history": self.history,
            "lrs": self.lrs,
            "losses": torch.stack(self._train.parts).detach().cpu() if self._train.parts else None,
            "counts": self._train.counts,
        }

    def load_state_dict(self, state: dict) -> None:
        self.names, self.history, self.lrs = state["names"], state["history"], state["lrs"]
        self._train = _Mean()
        self._train.parts = list(state["losses"].unbind()) if state["losses"] is not None else []
        self._train.counts = state["counts"]

    def plot_loss(self, skip_start: int = 5, with_valid: bool = True):
        """Training loss per batch (and validation loss per epoch) as a matplotlib Figure."""
        from ..plots.charts import plot_loss

        return plot_loss(self, skip_start, with_valid)


def weighted_mean(values: list[torch.Tensor], counts: list[int]) -> float:
    """The mean of per-batch values weighted by batch size (NaN when there are none)."""
    if not values:
        return math.nan
    weights = torch.tensor(counts, dtype=torch.float64)
    return float((torch.stack(values).double().cpu() * weights).sum() / weights.sum())


class _Mean:
    """Per-batch values and batch sizes, kept as tensors until read: no device sync per batch."""

    def __init__(self) -> None:
        self.parts: list[torch.Tensor] = []
        self.counts: list[int] = []

    def add(self, value: torch.Tensor, n: int) -> None:
        self.parts.append(value)
        self.counts.append(n)

    def mean(self) -> float:
        return weighted_mean(self.parts, self.counts)


def _combined(
    reduce: Callable[[torch.Tensor], torch.Tensor], parts: list[torch.Tensor], counts: list[int]
) -> tuple[list[torch.Tensor], list[int]]:
    """Per-batch means and sizes over every process: each batch's sum of value * size and of sizes."""
    if not parts:
        return [], []
    n = torch.tensor(counts, dtype=torch.float64)
    sums = reduce(torch.cat([torch.stack(parts).double().cpu() * n, n]))
    totals, sizes = sums.split(len(parts))
    return list((totals / sizes).unbind()), [int(c) for c in sizes.tolist()]


def _combined_totals(reduce: Callable[[torch.Tensor], torch.Tensor], accs: list["_Mean"]) -> list["_Mean"]:
    """The accumulators of one pass (which saw the same batches) as one mean each, over every process."""
    n = torch.tensor(accs[0].counts, dtype=torch.float64)
    totals = [
        torch.stack(a.parts).double().cpu() @ n if a.parts else torch.zeros((), dtype=torch.float64)
        for a in accs
    ]
    sums = reduce(torch.stack([*totals, n.sum()]))
    combined = [_Mean() for _ in accs]
    if sums[-1] > 0:
        for acc, total in zip(combined, sums[:-1], strict=True):
            acc.add(total / sums[-1], int(sums[-1]))
    return combined


class CSVLogger(Callback):
    """Writes the history to a CSV file after every epoch (whole file, replaced atomically)."""

    order = 65
    in_lr_find = False

    def __init__(self, path: str | Path = "history.csv") -> None:
        self.path = Path(path)

    def after_epoch(self, learn: Learner) -> None:
        write_history(learn.recorder, self.path)


def write_history(recorder: Recorder, path: str | Path) -> Path:
    """The recorder's epoch rows as CSV (`.csv`) or JSON (`.json`, with per-batch losses and lrs)."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        record = {"epochs": recorder.history, "batch_losses": recorder.losses, "batch_lrs": recorder.lrs}
        text = json.dumps(jsonable(record), indent=1, allow_nan=False)  # epochs not validated: null
    else:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=recorder.names, lineterminator="\n")
        writer.writeheader()
        writer.writerows(recorder.history)
        text = buf.getvalue()
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path
