"""The learning-rate finder: train briefly with a growing rate, and suggest one from the losses."""

import io
import math
from dataclasses import dataclass

import numpy as np

from ..errors import DigitlearnError
from .events import Callback, CancelFitException, CancelValidateException, Learner


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

    def before_fit(self, learn: Learner) -> None:
        self.i, self.avg, self.best = 0, 0.0, math.inf

    def before_batch(self, learn: Learner) -> None:
        learn.opt.lr = self.start_lr * (self.end_lr / self.start_lr) ** (self.i / self.num_it)

    def after_step(self, learn: Learner) -> None:
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

    def before_validate(self, learn: Learner) -> None:
        raise CancelValidateException()


@dataclass
class LRFindResult:
    """What `lr_find` saw: learning rates and smoothed losses, and the suggested learning rate."""

    lrs: list[float]
    losses: list[float]

    @property
    def suggestion(self) -> float:
        return suggest_lr(self.lrs, self.losses)

    def plot(self):
        """Loss against learning rate (log scale), with the suggestion marked; a matplotlib Figure."""
        from ..plots.charts import plot_lr_find

        return plot_lr_find(self.lrs, self.losses, self.suggestion)

    def __repr__(self) -> str:
        try:
            told = f"suggestion {self.suggestion:.2e}"
        except DigitlearnError as e:  # too few usable losses: say so rather than fail to show
            told = str(e)
        if not self.lrs:
            return "LRFindResult(no learning rates tried)"
        tried = f"{len(self.lrs)} learning rates from {self.lrs[0]:.0e} to {self.lrs[-1]:.0e}"
        return f"LRFindResult({told}; {tried})"

    def _repr_png_(self) -> bytes:
        """The plot, as a notebook shows the result of `learn.lr_find()`."""
        buf = io.BytesIO()
        self.plot().savefig(buf, format="png")
        return buf.getvalue()


def suggest_lr(lrs: list[float], losses: list[float]) -> float:
    """The learning rate where the loss falls fastest, before it reaches its minimum.

    That is the steepest downhill point of the loss against log(lr): still well below the rates
    where training becomes unstable, but where each step makes the most progress.
    """
    losses_a = np.asarray(losses, dtype=np.float64)
    finite = np.isfinite(losses_a)
    if finite.sum() < 3:
        raise DigitlearnError(
            f"the lr finder recorded {int(finite.sum())} usable losses: too few to suggest a learning rate "
            "(use more batches, num_it, or a smaller start_lr)"
        )
    stop = int(np.nanargmin(np.where(finite, losses_a, np.nan))) + 1
    if stop < 3:  # the loss rose from the start: the smallest rate tried is the best guess
        return float(lrs[0])
    slopes = np.gradient(losses_a[:stop], np.log10(np.asarray(lrs[:stop])))
    return float(lrs[int(np.argmin(slopes))])
