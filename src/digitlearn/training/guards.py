"""Guards: stop cleanly when the loss turns NaN or infinite, or when the user presses Ctrl-C."""

import signal
import sys
import threading

import torch

from ..errors import DigitlearnError
from .events import Callback, CancelFitException, Learner


class TrainingDiverged(DigitlearnError):
    """The loss became NaN or infinite."""


class TerminateOnNaN(Callback):
    """Stops training with a clear error when a loss (training or validation) becomes NaN or infinite.

    A finite training loss can still be followed by a step that overflows the weights; the
    validation loss that comes next is then the first to show it. Losses are checked together
    every `every` batches (and at the end of each stage) in one read, since reading a GPU's
    number waits for the GPU to finish its queue. `every` defaults to 1 on the CPU, where
    reading is free, and to 32 elsewhere. The error names the first batch that went wrong.
    """

    order = 20
    in_lr_find = False  # the finder drives the rate until the loss diverges, on purpose

    def __init__(self, every: int | None = None) -> None:
        self.every = every
        self.pending: list[tuple[torch.Tensor, int]] = []

    def after_loss(self, learn: Learner) -> None:
        self.pending.append((learn.loss.detach(), learn.iter))
        every = self.every or (1 if learn.loss.device.type == "cpu" else 32)
        # processes may differ in their number of validation batches: those are checked at the end
        if len(self.pending) >= every and (learn.training or learn.consensus is None):
            self._check(learn)

    def _check(self, learn: Learner) -> None:
        losses = torch.stack([loss.float() for loss, _ in self.pending]) if self.pending else torch.zeros(0)
        pending, self.pending = self.pending, []
        bad = not bool(losses.isfinite().all())
        # every process stops together: one that stopped alone would leave the others waiting for
        # it in the gradient all-reduce
        if learn.consensus is not None and learn.any_process(bad) and not bad:
            raise TrainingDiverged(
                f"the {_stage(learn)} loss became NaN or infinite in another process at epoch "
                f"{learn.epoch}{_lr(learn)}: try a smaller learning rate"
            )
        if not bad:
            return
        first = int((~losses.isfinite()).nonzero()[0])
        loss, batch = float(losses[first]), pending[first][1]
        raise TrainingDiverged(
            f"the {_stage(learn)} loss became {loss} at epoch {learn.epoch}, batch {batch}{_lr(learn)}: "
            "try a smaller learning rate"
        )

    def after_train(self, learn: Learner) -> None:
        self._check(learn)

    after_validate = after_train

    def before_fit(self, learn: Learner) -> None:
        self.pending = []


def _stage(learn: Learner) -> str:
    return "training" if learn.training else "validation"


def _lr(learn: Learner) -> str:
    return f" (learning rate {learn.opt.lr:g})" if learn.opt is not None else ""


class StopOnInterrupt(Callback):
    """Ctrl-C stops training at the end of the current batch, keeping the weights and history.

    Sets `learn.interrupted`. A second Ctrl-C interrupts at once, as usual.
    """

    order = 90

    def __init__(self) -> None:
        self.hit, self.previous = False, None

    def before_fit(self, learn: Learner) -> None:
        learn.interrupted = False
        self.hit, self.previous = False, None
        # signal handlers can only be set from the main thread; elsewhere Ctrl-C acts as usual
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle) or signal.default_int_handler

    def _handle(self, signum, frame) -> None:
        self.hit = True
        signal.signal(signal.SIGINT, self.previous)  # so a second Ctrl-C interrupts at once

    def after_batch(self, learn: Learner) -> None:
        hit = self.hit
        if learn.consensus is not None:  # all processes stop at the same training batch
            if not learn.training:
                return  # processes may differ in their number of validation batches
            hit = learn.any_process(hit)
        if hit:
            self.hit = True
            learn.interrupted = True
            print(
                f"\ninterrupted at epoch {learn.epoch}, batch {learn.iter}: stopping, "
                "with the weights and history so far",
                file=sys.stderr,
            )
            raise CancelFitException()

    def after_fit(self, learn: Learner) -> None:
        if self.hit:  # also a Ctrl-C that came after the last batch: the caller should hear of it
            learn.interrupted = True
        elif self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        self.previous = None
