"""Validating once, after the last epoch, for schedules that never look at the figures."""

from .events import Callback, CancelValidateException, Learner


class ValidateAtEnd(Callback):
    """Validates after the last epoch only.

    A fixed schedule never looks at the validation figures to decide anything, so validating
    every epoch only costs time (a tenth of an epoch's on MNIST). Skipped epochs record NaN.
    """

    order = 0

    def __init__(self) -> None:
        self.fitting = False  # learn.validate() outside fit always validates

    def before_fit(self, learn: Learner) -> None:
        self.fitting = True

    def before_validate(self, learn: Learner) -> None:
        if self.fitting and learn.epoch < learn.n_epoch - 1:
            raise CancelValidateException()

    def after_fit(self, learn: Learner) -> None:
        self.fitting = False
