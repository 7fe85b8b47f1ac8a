"""Mixed precision: the forward pass in bfloat16 where the hardware has units for it."""

import torch

from .events import Callback, Learner


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

    def before_batch(self, learn: Learner) -> None:
        self._autocast = torch.autocast(learn.device.type, dtype=self.dtype)
        self._autocast.__enter__()

    def _leave(self) -> None:
        if self._autocast is not None:
            self._autocast.__exit__(None, None, None)
            self._autocast = None

    def after_pred(self, learn: Learner) -> None:
        self._leave()
        learn.preds = learn.preds.float()  # the loss and metrics see float32 outputs

    def after_batch(self, learn: Learner) -> None:
        self._leave()  # a batch cancelled before its predictions still leaves autocast

    def after_fit(self, learn: Learner) -> None:
        self._leave()  # and so does one that failed

    def __repr__(self) -> str:
        return f"MixedPrecision({str(self.dtype).removeprefix('torch.')})"
