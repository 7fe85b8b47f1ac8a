"""Schedules: setting the optimizer's learning rate and momentum batch by batch (one-cycle)."""

import math
from collections.abc import Callable

from .events import Callback, Learner


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
    in_lr_find = False  # the finder sets the rate itself

    def __init__(self, scheds: dict[str, Callable[[float], float]]) -> None:
        self.scheds = scheds

    def before_batch(self, learn: Learner) -> None:
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
