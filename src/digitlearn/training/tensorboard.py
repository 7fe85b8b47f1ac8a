"""Logging training to TensorBoard, where PyTorch and Keras users look: PyTorch's SummaryWriter.

Each training step's loss and learning rate (tags `batch/train_loss`, `batch/lr`, by step), and
each epoch's row of the history (`epoch/train_loss`, `epoch/valid_loss`, the metrics,
`epoch/time`, by epoch). A resumed fit goes on at its own step: the writer drops the events an
interrupted run logged past it, so no step appears twice. Needs the `tensorboard` extra.
"""

import math
from pathlib import Path

from ..errors import DigitlearnError
from .events import Callback, Learner


class TensorBoard(Callback):
    """Writes TensorBoard event files into the folder `log_dir` (`tensorboard --logdir` shows them)."""

    order = 66  # after the Recorder has its epoch's row
    in_lr_find = False

    def __init__(self, log_dir: str | Path) -> None:
        self.log_dir = Path(log_dir)
        self.writer = None

    def before_fit(self, learn: Learner) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise DigitlearnError(
                "logging to TensorBoard needs it: pip install 'digitlearn[tensorboard]'"
            ) from None
        self.per_epoch = len(learn.dls.train)
        self.writer = SummaryWriter(self.log_dir, purge_step=learn.epochs_done * self.per_epoch)

    def after_step(self, learn: Learner) -> None:
        step = learn.epoch * self.per_epoch + learn.iter
        self.writer.add_scalar("batch/train_loss", learn.loss.item(), step)
        self.writer.add_scalar("batch/lr", learn.opt.lr, step)

    def after_epoch(self, learn: Learner) -> None:
        row = learn.recorder.history[-1]
        for name, value in row.items():
            if name != "epoch" and isinstance(value, float) and math.isfinite(value):
                self.writer.add_scalar(f"epoch/{name}", value, row["epoch"])
        self.writer.flush()

    def after_fit(self, learn: Learner) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
