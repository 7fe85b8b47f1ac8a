"""Tracking a figure across epochs: keeping the best weights, and stopping when it stops improving."""

import math
import sys
from pathlib import Path

from ..errors import DigitlearnError
from .events import Callback, CancelFitException, Learner


class TrackerCallback(Callback):
    """Watches one history column (`monitor`) and knows whether the last epoch improved it.

    `mode` "min" or "max"; "auto" minimises losses and error rates and maximises the rest.
    """

    order = 70
    in_lr_find = False

    def __init__(self, monitor: str = "valid_loss", mode: str = "auto", min_delta: float = 0.0) -> None:
        if mode == "auto":
            mode = "min" if "loss" in monitor or "error" in monitor else "max"
        if mode not in ("min", "max"):
            raise DigitlearnError(f"mode must be 'min', 'max' or 'auto', not {mode!r}")
        self.monitor, self.mode, self.min_delta = monitor, mode, abs(min_delta)
        self._forget()

    def before_fit(self, learn: Learner) -> None:
        if self.monitor not in learn.recorder.names:
            raise DigitlearnError(
                f"{type(self).__name__} monitors {self.monitor!r}, which is not recorded "
                f"(recorded: {', '.join(n for n in learn.recorder.names if n not in ('epoch', 'time'))})"
            )
        self._forget()

    def _forget(self) -> None:
        # from construction on, not only from before_fit: a checkpoint saved before the first fit
        # holds a state from which any figure improves
        self.best, self.best_epoch = math.inf if self.mode == "min" else -math.inf, None

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]

    def improved(self, learn: Learner) -> bool:
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

    def before_fit(self, learn: Learner) -> None:
        super().before_fit(learn)
        self.state = None

    def after_epoch(self, learn: Learner) -> None:
        if self.improved(learn):
            self.state = {k: v.detach().clone() for k, v in learn.raw_model.state_dict().items()}
            if self.path is not None:
                learn.save(self.path)

    def state_dict(self) -> dict:
        state = {k: v.cpu() for k, v in self.state.items()} if self.state is not None else None
        return {**super().state_dict(), "state": state}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.state = state["state"]

    def after_fit(self, learn: Learner) -> None:
        last = learn.recorder.history[-1]["epoch"] if learn.recorder.history else None
        if self.state is not None and self.best_epoch != last:
            learn.raw_model.load_state_dict(self.state)
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

    def after_epoch(self, learn: Learner) -> None:
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
