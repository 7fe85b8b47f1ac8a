"""Events and the Callback: how everything beyond the loop's five steps hooks into the Learner.

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

A callback whose state shapes training (a counter, a generator, the best weights so far) returns
it from `state_dict` and takes it back in `load_state_dict`: checkpoints save and restore every
callback's, so a resumed fit ends as the uninterrupted one would. A callback that stops training
asks `learn.any_process(flag)` first, so that every process of a data-parallel run stops together.

Raising a Cancel*Exception skips the rest of that stage and goes on with its after_ event:
CancelBatchException skips a batch, CancelFitException ends training. Callbacks run in
increasing `order`: schedules (10) and mixed precision (15) before the NaN guard (20), the
Recorder (50) before what reads its rows (progress 60, trackers 70-80), Ctrl-C (90) last.
"""

from typing import Any

# What callbacks receive: the training.learner.Learner. Named here rather than imported, so that
# no callback module depends on the loop, which imports them.
Learner = Any

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


class Callback:
    """Base class: override the events you need; `order` sets who runs first.

    `in_lr_find` says whether the callback stays on while `Learner.lr_find` trains: those that
    change how the model trains (mixed precision, augmentation) do; those that record, report,
    schedule or stop it set it False.
    """

    order = 0
    in_lr_find = True

    def state_dict(self) -> dict:
        """What this callback keeps across epochs that shapes the rest of a fit (JSON data and
        tensors, nested in dicts and lists), as an optimizer's `state_dict`. Checkpoints save it
        for every callback, whatever its class; {} (the default) for one that keeps nothing.
        One that keeps state returns it at any time, before its first fit too: a checkpoint
        without it then means the callback was not there, and resuming refuses."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Take back what `state_dict` returned. A resumed fit calls it after `before_fit`, so
        what `before_fit` resets is restored."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
