"""Callbacks: everything the Learner does beyond predict, loss, backward, step and zero_grad.

A callback is an object with methods named after events; each gets the Learner and may read or
change anything on it (`learn.loss`, `learn.opt.lr`, `learn.model`...). Events, in order:

    before_fit
      before_epoch
        before_train
          before_batch, after_pred, after_loss, before_backward, after_backward,
          before_step, after_step, after_batch          (for each training batch)
        after_train
        before_validate
          before_batch, after_pred, after_loss, after_batch   (for each validation batch)
        after_validate
      after_epoch
    after_fit   (always, however fit ends: finished, stopped, interrupted or failed)

Raising a Cancel*Exception skips the rest of that stage and goes on with its after_ event:
CancelBatchException skips a batch, CancelFitException ends training. Callbacks run in
increasing `order`, so the ones that stop training (order 80 and up) see every record made.
"""

import csv
import io
import json
import math
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm

from .errors import DigitlearnError
from .files import atomic_path

if TYPE_CHECKING:
    from .learner import Learner

EVENTS = (
    "before_fit",
    "before_epoch",
    "before_train",
    "before_batch",
    "after_pred",
    "after_loss",
    "before_backward",
    "after_backward",
    "before_step",
    "after_step",
    "after_batch",
    "after_train",
    "before_validate",
    "after_validate",
    "after_epoch",
    "after_fit",
)


class CancelFitException(Exception):
    """Stop training now; after_fit still runs."""


class CancelEpochException(Exception):
    """Skip the rest of this epoch (training and validation); go on with the next."""


class CancelTrainException(Exception):
    """Skip the rest of this epoch's training; go on to validation."""


class CancelValidateException(Exception):
    """Skip the rest of this validation pass."""


class CancelBatchException(Exception):
    """Skip the rest of this batch (no step if raised before it)."""


class CancelStepException(Exception):
    """Skip this optimizer step (the gradients are still zeroed)."""


class TrainingDiverged(DigitlearnError):
    """The loss became NaN or infinite."""


class Callback:
    """Base class: override the events you need; `order` sets who runs first."""

    order = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def metric_name(metric: Callable) -> str:
    return getattr(metric, "__name__", type(metric).__name__)


# ---------------------------------------------------------------- recording


class Recorder(Callback):
    """Records per-batch training loss and learning rate, and one row per epoch in `history`.

    A row holds epoch, train_loss (the mean over the epoch's batches, weighted by their size),
    valid_loss, each metric over the whole validation set, and the epoch's wall time in seconds.
    Values of a stage that was cancelled are NaN.
    """

    order = 50

    def __init__(self) -> None:
        self.history: list[dict] = []
        self.lrs: list[float] = []
        self.valid_values: dict[str, float] = {}
        self.names = ["epoch", "train_loss", "valid_loss", "time"]  # the columns of a history row
        self._train = _Mean()  # every training batch of this fit
        self._valid: list[_Mean] | None = None
        self._epoch_start, self._start = 0, None

    @property
    def losses(self) -> list[float]:
        """The training loss of every batch so far in this fit."""
        return torch.stack(self._train.parts).float().tolist() if self._train.parts else []

    def _name_columns(self, learn: "Learner") -> None:
        self.names = ["epoch", "train_loss", "valid_loss", *map(metric_name, learn.metrics), "time"]

    def before_fit(self, learn: "Learner") -> None:
        self._name_columns(learn)
        self.history, self.lrs, self._train = [], [], _Mean()

    def before_epoch(self, learn: "Learner") -> None:
        self._start = time.perf_counter()
        self._epoch_start = len(self._train.parts)
        self.valid_values = {}

    def after_step(self, learn: "Learner") -> None:
        self._train.add(learn.loss.detach(), len(learn.yb))
        self.lrs.append(learn.opt.lr)

    def before_validate(self, learn: "Learner") -> None:
        self._name_columns(learn)  # validate() may run outside fit
        self._valid = [_Mean() for _ in range(1 + len(learn.metrics))]

    def after_loss(self, learn: "Learner") -> None:
        if learn.training or self._valid is None:
            return
        n = len(learn.yb)
        self._valid[0].add(learn.loss.detach(), n)
        for acc, metric in zip(self._valid[1:], learn.metrics, strict=True):
            acc.add(metric(learn.preds, learn.yb).detach(), n)

    def after_validate(self, learn: "Learner") -> None:
        if self._valid is not None:
            self.valid_values = {k: acc.mean() for k, acc in zip(self.names[2:-1], self._valid, strict=True)}
        self._valid = None

    def after_epoch(self, learn: "Learner") -> None:
        k = self._epoch_start
        row = {
            "epoch": learn.epoch,
            "train_loss": weighted_mean(self._train.parts[k:], self._train.counts[k:]),
        }
        row.update({name: self.valid_values.get(name, math.nan) for name in self.names[2:-1]})
        row["time"] = time.perf_counter() - self._start if self._start is not None else math.nan
        self.history.append(row)

    def plot_loss(self, skip_start: int = 5, with_valid: bool = True):
        """Training loss per batch (and validation loss per epoch) as a matplotlib Figure."""
        from .plots import plot_loss

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


def format_row(names: list[str], row: dict | None = None) -> str:
    """One aligned line of the epoch table: the header when `row` is None."""
    widths = [max(len(n), 5 if n == "epoch" else 8) for n in names]
    if row is None:
        return "  ".join(f"{n:>{w}}" for n, w in zip(names, widths, strict=True))
    cells = []
    for n, w in zip(names, widths, strict=True):
        v = row.get(n, math.nan)
        if n == "epoch":
            text = str(v)
        elif math.isnan(v):
            text = "-"  # not measured this epoch (validation skipped, or the stage cancelled)
        else:
            text = f"{v:.2f}s" if n == "time" else f"{v:.6f}"
        cells.append(f"{text:>{w}}")
    return "  ".join(cells)


def interactive() -> bool:
    """True in a terminal or a Jupyter kernel: places where a progress bar can redraw."""
    return sys.stderr.isatty() or "ipykernel" in sys.modules


class ProgressCallback(Callback):
    """Progress bars while training (terminal or Jupyter) and an aligned table, a row per epoch.

    Where nothing can redraw (a pipe, a log file, CI), there are no bars: just the table,
    printed one plain line per epoch as each epoch ends.
    """

    order = 60

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

    def before_fit(self, learn: "Learner") -> None:
        self.bars = interactive() and self.file is None
        self.epochs = (
            tqdm(total=learn.n_epoch, desc="epochs", unit="epoch", leave=False) if self.bars else None
        )
        self._print(format_row(learn.recorder.names))

    def _start(self, learn: "Learner", desc: str) -> None:
        if self.bars:
            self.batches = tqdm(total=len(learn.dl), desc=desc, unit="batch", leave=False)

    def before_train(self, learn: "Learner") -> None:
        self._start(learn, "train")

    def before_validate(self, learn: "Learner") -> None:
        self._start(learn, "valid")

    def after_batch(self, learn: "Learner") -> None:
        if self.batches is not None:
            self.batches.update(1)

    def _stop(self, learn: "Learner") -> None:
        if self.batches is not None:
            self.batches.close()
            self.batches = None

    after_train = after_validate = _stop

    def after_epoch(self, learn: "Learner") -> None:
        self._print(format_row(learn.recorder.names, learn.recorder.history[-1]))
        if self.epochs is not None:
            self.epochs.update(1)

    def after_fit(self, learn: "Learner") -> None:
        self._stop(learn)
        if self.epochs is not None:
            self.epochs.close()
            self.epochs = None


class CSVLogger(Callback):
    """Writes the history to a CSV file after every epoch (whole file, replaced atomically)."""

    order = 65

    def __init__(self, path: str | Path = "history.csv") -> None:
        self.path = Path(path)

    def after_epoch(self, learn: "Learner") -> None:
        write_history(learn.recorder, self.path)


def write_history(recorder: Recorder, path: str | Path) -> Path:
    """The recorder's epoch rows as CSV (`.csv`) or JSON (`.json`, with per-batch losses and lrs)."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        text = json.dumps(
            {"epochs": recorder.history, "batch_losses": recorder.losses, "batch_lrs": recorder.lrs},
            indent=1,
        )
    else:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=recorder.names, lineterminator="\n")
        writer.writeheader()
        writer.writerows(recorder.history)
        text = buf.getvalue()
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


# ---------------------------------------------------------------- stopping and saving


class TrackerCallback(Callback):
    """Watches one history column (`monitor`) and knows whether the last epoch improved it.

    `mode` "min" or "max"; "auto" minimises losses and error rates and maximises the rest.
    """

    order = 70

    def __init__(self, monitor: str = "valid_loss", mode: str = "auto", min_delta: float = 0.0) -> None:
        if mode == "auto":
            mode = "min" if "loss" in monitor or "error" in monitor else "max"
        if mode not in ("min", "max"):
            raise DigitlearnError(f"mode must be 'min', 'max' or 'auto', not {mode!r}")
        self.monitor, self.mode, self.min_delta = monitor, mode, abs(min_delta)
        self.best, self.best_epoch = math.nan, None

    def before_fit(self, learn: "Learner") -> None:
        if self.monitor not in learn.recorder.names:
            raise DigitlearnError(
                f"{type(self).__name__} monitors {self.monitor!r}, which is not recorded "
                f"(recorded: {', '.join(learn.recorder.names[1:-1])})"
            )
        self.best, self.best_epoch = math.inf if self.mode == "min" else -math.inf, None

    def improved(self, learn: "Learner") -> bool:
        value = learn.recorder.history[-1][self.monitor]
        better = (
            value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta
        )
        if better:
            self.best, self.best_epoch = value, learn.epoch
        return better


class SaveBestModel(TrackerCallback):
    """Keeps the weights of the best epoch and puts them back in the model when training ends.

    With `path`, also saves them there (weights.safetensors + config.json) at each improvement.
    """

    order = 75

    def __init__(
        self, monitor: str = "valid_loss", mode: str = "auto", path: str | Path | None = None
    ) -> None:
        super().__init__(monitor, mode)
        self.path = path
        self.state = None

    def before_fit(self, learn: "Learner") -> None:
        super().before_fit(learn)
        self.state = None

    def after_epoch(self, learn: "Learner") -> None:
        if self.improved(learn):
            self.state = {k: v.detach().clone() for k, v in learn.model.state_dict().items()}
            if self.path is not None:
                learn.save(self.path)

    def after_fit(self, learn: "Learner") -> None:
        last = learn.recorder.history[-1]["epoch"] if learn.recorder.history else None
        if self.state is not None and self.best_epoch != last:
            learn.model.load_state_dict(self.state)
            print(
                f"restored the weights of epoch {self.best_epoch} ({self.monitor} {self.best:.6f})",
                file=sys.stderr,
            )


class EarlyStopping(TrackerCallback):
    """Stops training when `monitor` has not improved for `patience` epochs."""

    order = 80

    def __init__(
        self, monitor: str = "valid_loss", mode: str = "auto", min_delta: float = 0.0, patience: int = 3
    ) -> None:
        super().__init__(monitor, mode, min_delta)
        self.patience = patience

    def after_epoch(self, learn: "Learner") -> None:
        if self.improved(learn):
            return
        since = learn.epoch - (-1 if self.best_epoch is None else self.best_epoch)
        if since >= self.patience:
            print(
                f"early stopping after epoch {learn.epoch}: {self.monitor} has not improved for "
                f"{self.patience} epochs (best {self.best:.6f} at epoch {self.best_epoch})",
                file=sys.stderr,
            )
            raise CancelFitException()


class TerminateOnNaN(Callback):
    """Stops training with a clear error when a loss (training or validation) becomes NaN or infinite.

    A finite training loss can still be followed by a step that overflows the weights; the
    validation loss that comes next is then the first to show it. Losses are checked together
    every `every` batches (and at the end of each stage) in one read, since reading a GPU's
    number waits for the GPU to finish its queue. `every` defaults to 1 on the CPU, where
    reading is free, and to 32 elsewhere. The error names the first batch that went wrong.
    """

    order = 20

    def __init__(self, every: int | None = None) -> None:
        self.every = every
        self.pending: list[tuple[torch.Tensor, int]] = []

    def after_loss(self, learn: "Learner") -> None:
        self.pending.append((learn.loss.detach(), learn.iter))
        every = self.every or (1 if learn.loss.device.type == "cpu" else 32)
        if len(self.pending) >= every:
            self._check(learn)

    def _check(self, learn: "Learner") -> None:
        if not self.pending:
            return
        losses = torch.stack([loss.float() for loss, _ in self.pending])
        pending, self.pending = self.pending, []
        if bool(losses.isfinite().all()):
            return
        first = int((~losses.isfinite()).nonzero()[0])
        loss, batch = float(losses[first]), pending[first][1]
        which = "training" if learn.training else "validation"
        lr = f" (learning rate {learn.opt.lr:g})" if learn.opt is not None else ""
        raise TrainingDiverged(
            f"the {which} loss became {loss} at epoch {learn.epoch}, batch {batch}{lr}: "
            "try a smaller learning rate"
        )

    def after_train(self, learn: "Learner") -> None:
        self._check(learn)

    after_validate = after_train

    def before_fit(self, learn: "Learner") -> None:
        self.pending = []


class StopOnInterrupt(Callback):
    """Ctrl-C stops training at the end of the current batch, keeping the weights and history.

    Sets `learn.interrupted`. A second Ctrl-C interrupts at once, as usual.
    """

    order = 90

    def __init__(self) -> None:
        self.hit, self.previous = False, None

    def before_fit(self, learn: "Learner") -> None:
        learn.interrupted = False
        self.hit, self.previous = False, None
        # signal handlers can only be set from the main thread; elsewhere Ctrl-C acts as usual
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle) or signal.default_int_handler

    def _handle(self, signum, frame) -> None:
        self.hit = True
        signal.signal(signal.SIGINT, self.previous)  # so a second Ctrl-C interrupts at once

    def after_batch(self, learn: "Learner") -> None:
        if self.hit:
            learn.interrupted = True
            print(
                f"\ninterrupted at epoch {learn.epoch}, batch {learn.iter}: stopping, "
                "with the weights and history so far",
                file=sys.stderr,
            )
            raise CancelFitException()

    def after_fit(self, learn: "Learner") -> None:
        if self.hit:  # also a Ctrl-C that came after the last batch: the caller should hear of it
            learn.interrupted = True
        elif self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        self.previous = None


# ---------------------------------------------------------------- precision


class MixedPrecision(Callback):
    """Runs the model's forward pass under autocast to `dtype` (bfloat16 by default).

    Matrix products and convolutions then run in 16 bits, which is faster on GPUs and on CPUs
    with bf16 units (AMX), while weights, gradients, the loss and the optimizer stay float32.
    bfloat16 keeps float32's exponent range, so, unlike float16, it needs no loss scaling.
    """

    order = 15  # before anything reads the predictions

    def __init__(self, dtype: torch.dtype = torch.bfloat16) -> None:
        self.dtype = dtype
        self._autocast = None

    def before_batch(self, learn: "Learner") -> None:
        self._autocast = torch.autocast(learn.device.type, dtype=self.dtype)
        self._autocast.__enter__()

    def _leave(self) -> None:
        if self._autocast is not None:
            self._autocast.__exit__(None, None, None)
            self._autocast = None

    def after_pred(self, learn: "Learner") -> None:
        self._leave()
        learn.preds = learn.preds.float()  # the loss and metrics see float32 outputs

    def after_batch(self, learn: "Learner") -> None:
        self._leave()  # a batch cancelled before its predictions still leaves autocast

    def after_fit(self, learn: "Learner") -> None:
        self._leave()  # and so does one that failed

    def __repr__(self) -> str:
        return f"MixedPrecision({str(self.dtype).removeprefix('torch.')})"


# ---------------------------------------------------------------- spending less time


class SkipLearned(Callback):
    """From epoch `start` on, trains only on the examples the model was not yet sure of.

    While training, it notes each example's probability of its true class as the model saw it
    (from the predictions the loss is computed on anyway: no extra pass). After each epoch from
    `start - 1` on, the next epoch draws only from the examples noted below `threshold`, so
    later epochs revisit the mistakes and near-misses instead of the digits already mastered:
    after one epoch of MNIST that is about a quarter of the data. Needs a DataLoader that takes
    a `subset`, as digitlearn's does.
    """

    order = 56  # after the loss, before anything that ends the epoch

    def __init__(self, threshold: float = 0.9, start: int = 1) -> None:
        if not 0 < threshold <= 1:
            raise DigitlearnError(f"SkipLearned's threshold is a probability in (0, 1], not {threshold!r}")
        self.threshold, self.start = threshold, start
        self.sure: torch.Tensor | None = None
        self.sizes: list[int] = []  # examples each epoch trained on

    def before_fit(self, learn: "Learner") -> None:
        dl = learn.dls.train
        dl.subset = None
        self.sure = torch.zeros(dl.n, dtype=torch.bool, device=dl.device)  # none seen yet
        self.sizes = []

    def after_loss(self, learn: "Learner") -> None:
        if learn.training:
            with torch.no_grad():
                probs = learn.probabilities(learn.preds.detach())
                p_true = probs.gather(1, learn.yb.reshape(-1, 1).long()).squeeze(1)
            self.sure[learn.dl.indices] = p_true >= self.threshold

    def after_train(self, learn: "Learner") -> None:
        dl = learn.dls.train
        self.sizes.append(dl.n_items)
        if learn.epoch + 1 >= self.start:
            dl.subset = torch.nonzero(~self.sure).flatten()

    def after_fit(self, learn: "Learner") -> None:
        learn.dls.train.subset = None  # the loader is whole again for whatever comes next

    def __repr__(self) -> str:
        return f"SkipLearned(threshold={self.threshold}, start={self.start})"


class ValidateAtEnd(Callback):
    """Validates after the last epoch only.

    A fixed schedule never looks at the validation figures to decide anything, so validating
    every epoch only costs time (a tenth of an epoch's on MNIST). Skipped epochs record NaN.
    """

    order = 0

    def __init__(self) -> None:
        self.fitting = False  # learn.validate() outside fit always validates

    def before_fit(self, learn: "Learner") -> None:
        self.fitting = True

    def before_validate(self, learn: "Learner") -> None:
        if self.fitting and learn.epoch < learn.n_epoch - 1:
            raise CancelValidateException()

    def after_fit(self, learn: "Learner") -> None:
        self.fitting = False


# ---------------------------------------------------------------- schedules


def cosine(start: float, end: float) -> Callable[[float], float]:
    """A half cosine from `start` (pct 0) to `end` (pct 1)."""
    return lambda pct: end + (start - end) / 2 * (1 + math.cos(math.pi * pct))


def joined(pct_split: float, first: Callable[[float], float], second: Callable[[float], float]):
    """`first` over [0, pct_split], then `second` over [pct_split, 1], each seeing its own 0 to 1."""

    def f(pct: float) -> float:
        if pct < pct_split:
            return first(pct / pct_split)
        return second((pct - pct_split) / (1 - pct_split))

    return f


class ParamScheduler(Callback):
    """Sets optimizer attributes (`lr`, `mom`, ...) before each training batch from f(pct of training)."""

    order = 10

    def __init__(self, scheds: dict[str, Callable[[float], float]]) -> None:
        self.scheds = scheds

    def before_batch(self, learn: "Learner") -> None:
        if not learn.training:
            return
        # each epoch moves the schedule on by 1 / n_epoch, spread over its own batches: epochs
        # may differ in size (SkipLearned shrinks them), and equal ones make this batches done / all
        pct = (learn.epoch + learn.iter / len(learn.dl)) / learn.n_epoch
        for name, f in self.scheds.items():
            setattr(learn.opt, name, f(pct))


def one_cycle(
    lr_max: float,
    div: float = 25.0,
    div_final: float = 1e5,
    pct_start: float = 0.25,
    moms: tuple[float, float, float] | None = (0.95, 0.85, 0.95),
) -> ParamScheduler:
    """Leslie Smith's one-cycle policy: lr warms up from lr_max/div to lr_max over `pct_start` of
    training, then anneals to lr_max/div_final, both on cosines; momentum moves the opposite way."""
    scheds = {"lr": joined(pct_start, cosine(lr_max / div, lr_max), cosine(lr_max, lr_max / div_final))}
    if moms is not None:
        scheds["mom"] = joined(pct_start, cosine(moms[0], moms[1]), cosine(moms[1], moms[2]))
    return ParamScheduler(scheds)


class LRFinder(Callback):
    """Raises the learning rate exponentially each batch and records the smoothed loss.

    Stops after `num_it` batches or when the loss exceeds 4x its best (it has diverged).
    """

    order = 10

    def __init__(self, start_lr: float = 1e-7, end_lr: float = 10.0, num_it: int = 100, beta: float = 0.98):
        if not 0 < start_lr < end_lr:
            raise DigitlearnError(
                f"the lr finder needs 0 < start_lr < end_lr, not {start_lr:g} and {end_lr:g}"
            )
        self.start_lr, self.end_lr, self.num_it, self.beta = start_lr, end_lr, num_it, beta
        self.lrs: list[float] = []
        self.losses: list[float] = []

    def before_fit(self, learn: "Learner") -> None:
        self.i, self.avg, self.best = 0, 0.0, math.inf

    def before_batch(self, learn: "Learner") -> None:
        learn.opt.lr = self.start_lr * (self.end_lr / self.start_lr) ** (self.i / self.num_it)

    def after_step(self, learn: "Learner") -> None:
        loss = learn.loss.item()
        self.i += 1
        # exponential moving average, debiased for its start at 0 (as in the Adam paper)
        self.avg = self.beta * self.avg + (1 - self.beta) * loss
        smooth = self.avg / (1 - self.beta**self.i)
        self.lrs.append(learn.opt.lr)
        self.losses.append(smooth)
        self.best = min(self.best, smooth)
        if self.i >= self.num_it or not math.isfinite(smooth) or smooth > 4 * self.best:
            raise CancelFitException()

    def before_validate(self, learn: "Learner") -> None:
        raise CancelValidateException()
