"""The Learner: the chapter's training loop, with events for callbacks to hook into.

The loop is the seven steps of SGD (the model's weights are already initialised):
predict, loss, gradient (`backward`), step, repeat for every batch and epoch, stop.
Everything else (recording, progress, schedules, early stopping, saving) is a callback.
"""

import math
import os
import sys
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..data.loaders import DataLoaders
from ..errors import DigitlearnError
from ..hardware import fast_bf16, isa, keep_freed_memory
from ..models import ARCHS
from ..models.saved import load_weights, save_model
from ..vision.images import read_gray
from ..vision.prepare import ImageSource, to_mnist
from .checkpoint import load_checkpoint, restore, save_checkpoint, unwrapped
from .distributed import distributed
from .events import (
    EVENTS,
    Callback,
    CancelBatchException,
    CancelEpochException,
    CancelFitException,
    CancelStepException,
    CancelTrainException,
    CancelValidateException,
)
from .guards import StopOnInterrupt, TerminateOnNaN
from .history import History
from .losses import describe, mnist_loss, probabilities
from .lr_finder import LRFinder, LRFindResult
from .optim import SGD, Optimizer
from .precision import MixedPrecision
from .progress import ProgressCallback
from .recorder import Recorder, metric_name
from .schedules import one_cycle
from .summary import Summary, summarize


class Learner:
    """Trains `model` on `dls` with `opt_func(params, lr)` and `loss_func(preds, targets)`.

    `model` is an nn.Module, or a builder from `digitlearn.models` (called with its defaults,
    so the chapter's `Learner(dls, simple_net, ...)` works). `metrics` are reported per epoch on
    the validation set. Every Learner has a Recorder (`learn.recorder`), stops cleanly on NaN
    losses and Ctrl-C, and shows progress unless `progress=False`; `cbs` adds more callbacks.
    """

    def __init__(
        self,
        dls: DataLoaders,
        model: nn.Module | Callable[[], nn.Module],
        opt_func: Callable[..., Optimizer] = SGD,
        loss_func: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = mnist_loss,
        metrics: Callable | Iterable[Callable] | None = None,
        cbs: Iterable[Callback] | None = None,
        lr: float = 1e-3,
        progress: bool = True,
    ) -> None:
        if any(model is builder for builder in ARCHS.values()):
            model = model()
        if not isinstance(model, nn.Module):
            raise DigitlearnError(
                f"the model must be an nn.Module or a digitlearn.models builder, not {type(model).__name__}"
            )
        self.dls, self.model, self.opt_func, self.loss_func, self.lr = dls, model, opt_func, loss_func, lr
        self.metrics = list(metrics) if isinstance(metrics, list | tuple) else [metrics] if metrics else []
        self.opt: Optimizer | None = None
        self.recorder = Recorder()
        defaults = [TerminateOnNaN(), self.recorder, StopOnInterrupt()]
        self.cbs = defaults + ([ProgressCallback()] if progress else []) + list(cbs or [])
        self.interrupted = False
        self.training, self.epoch, self.iter, self.n_epoch = False, 0, 0, 0
        self.epochs_done = 0  # of this fit's schedule, including those before a resume
        self._resume: dict | None = None  # what load_checkpoint left for the next fit to restore
        # set by data-parallel training (see `any_process`): whether a flag is up in any process
        self.consensus: Callable[[bool], bool] | None = None
        keep_freed_memory()  # once per process: a third of each CPU epoch went to page faults

    # ------------------------------------------------------------ callbacks

    @property
    def cbs(self) -> list[Callback]:
        return list(self._cbs)

    @cbs.setter
    def cbs(self, cbs: Iterable[Callback]) -> None:
        self._cbs = sorted(cbs, key=lambda cb: cb.order)
        # bound methods looked up once, so each event in the hot loop is one dict lookup
        self._handlers = {e: [getattr(cb, e) for cb in self._cbs if hasattr(cb, e)] for e in EVENTS}

    def add_cbs(self, cbs: Iterable[Callback]) -> None:
        self.cbs = [*self._cbs, *cbs]

    def remove_cbs(self, cbs: Iterable[Callback | type]) -> None:
        """Remove these callbacks (instances, or every callback of a class)."""
        cbs = list(cbs)
        self.cbs = [
            c for c in self._cbs if not any(c is x or (isinstance(x, type) and isinstance(c, x)) for x in cbs)
        ]

    def any_process(self, flag: bool) -> bool:
        """Whether `flag` is up in any process of this run: `flag` itself when training alone.
        A callback that stops training asks this first, so that under data-parallel training
        every process stops at the same batch (one that stopped alone would leave the others
        waiting for it)."""
        return self.consensus(flag) if self.consensus is not None else flag

    def callback(self, event: str) -> None:
        for handler in self._handlers[event]:
            handler(self)

    def _stage(self, name: str, cancel: type[Exception], body: Callable[[], None]) -> None:
        """before_<name>, body, after_<name>; `cancel` raised in the first two skips to the last."""
        try:
            self.callback(f"before_{name}")
            body()
        except cancel:
            pass
        self.callback(f"after_{name}")

    # ------------------------------------------------------------ the loop

    def _one_batch(self) -> None:
        self.preds = self.model(self.xb)
        self.callback("after_pred")
        self.loss = self.loss_func(self.preds, self.yb)
        self.callback("after_loss")
        if not self.training:
            return
        self.callback("before_backward")
        self.loss.backward()
        self.callback("after_backward")
        self._stage("step", CancelStepException, self.opt.step)
        self.opt.zero_grad()

    def _all_batches(self) -> None:
        with torch.set_grad_enabled(self.training):
            for i, (xb, yb) in enumerate(self.dl):
                self.iter, self.xb, self.yb = i, xb, yb
                self._stage("batch", CancelBatchException, self._one_batch)

    def _one_epoch(self, training: bool, dl: Iterable | None = None) -> None:
        self.training = training
        self.model.train(training)
        self.dl = dl if dl is not None else self.dls.train if training else self.dls.valid
        name, cancel = ("train", CancelTrainException) if training else ("validate", CancelValidateException)
        self._stage(name, cancel, self._all_batches)

    def _one_full_epoch(self) -> None:
        """_stage("epoch"), counting the epoch done before after_epoch, whose checkpoint records it."""
        try:
            self.callback("before_epoch")
            self._one_epoch(True)
            self._one_epoch(False)
        except CancelEpochException:
            pass
        self.epochs_done = self.epoch + 1
        self.callback("after_epoch")

    def fit(
        self,
        n_epoch: int,
        lr: float | None = None,
        cbs: Iterable[Callback] = (),
        start_epoch: int | None = None,
    ) -> History:
        """Train for `n_epoch` epochs at learning rate `lr` (default: the Learner's `lr`); return
        the epochs' History (losses, metrics and time per epoch, as `learn.recorder.history`).

        The optimizer is made on the first fit and kept (with its state) for later ones.
        `cbs` are added for this fit only. `start_epoch` skips the epochs before it, so schedules
        go on where they stopped; after `load_checkpoint` it defaults to the checkpoint's epoch,
        and the fit goes on exactly as the checkpointed one would have.
        """
        if isinstance(n_epoch, bool) or not isinstance(n_epoch, int) or n_epoch < 0:
            raise DigitlearnError(f"fit takes a whole number of epochs, 0 or more, not {n_epoch!r}")
        resume, self._resume = self._resume, None
        if start_epoch is None:
            start_epoch = resume["epoch"] if resume else 0
        lr = self.lr if lr is None else lr
        self._optimizer(lr).lr = lr
        self.n_epoch, self.epochs_done = n_epoch, start_epoch
        self._place(self.dls.train, self.dls.valid)
        extra = list(cbs)
        self.add_cbs(extra)
        try:
            self.callback("before_fit")
            if resume:
                restore(self, resume)
            for self.epoch in range(start_epoch, n_epoch):
                self._one_full_epoch()
        except CancelFitException:
            pass
        finally:
            try:
                self.callback("after_fit")
            finally:
                self.remove_cbs(extra)
        return History(self.recorder.history)

    def fit_one_cycle(
        self,
        n_epoch: int,
        lr_max: float | None = None,
        div: float = 25.0,
        div_final: float = 1e5,
        pct_start: float = 0.25,
        moms: tuple[float, float, float] = (0.95, 0.85, 0.95),
        cbs: Iterable[Callback] = (),
        start_epoch: int | None = None,
    ) -> History:
        """Train with the one-cycle schedule (see `schedules.one_cycle`); return the History.

        Momentum is scheduled only for an optimizer that has some (SGD with mom > 0, Adam).
        `start_epoch` is `fit`'s.
        """
        lr_max = self.lr if lr_max is None else lr_max
        sched = one_cycle(lr_max, div, div_final, pct_start, moms if self._optimizer(lr_max).mom else None)
        return self.fit(n_epoch, lr_max, cbs=[sched, *cbs], start_epoch=start_epoch)

    def to_bf16(self) -> "Learner":
        """Train and validate with bfloat16 mixed precision (see `callbacks.MixedPrecision`).

        It pays only where the hardware has bf16 matrix units (`hardware.fast_bf16`); elsewhere
        this says so on stderr, in one line, and goes ahead as asked.
        """
        if not fast_bf16(self.device):
            where = "GPU" if self.device.type == "cuda" else f"CPU ({isa()}, no AMX)"
            print(
                f"digitlearn: warning: this {where} has no bf16 matrix units, so bf16 is emulated and "
                "training will be slower than in fp32, not faster",
                file=sys.stderr,
            )
        self.to_fp32()
        self.add_cbs([MixedPrecision(torch.bfloat16)])
        return self

    def to_fp32(self) -> "Learner":
        """Back to plain float32 everywhere."""
        self.remove_cbs([MixedPrecision])
        return self

    def _optimizer(self, lr: float) -> Optimizer:
        if self.opt is None:
            self.opt = self.opt_func(self.model.parameters(), lr)
        return self.opt

    def _place(self, *dls: Iterable) -> None:
        # data goes to the model's device once, not batch by batch
        device = self.device
        for dl in dls:
            if hasattr(dl, "to") and getattr(dl, "device", None) != device:
                dl.to(device)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters(), torch.empty(0)).device

    # ------------------------------------------------------------ using the model

    def validate(self, dl: Iterable | None = None) -> dict[str, float]:
        """Loss and metrics over `dl` (default: the validation set), as {name: value}."""
        dl = self.dls.valid if dl is None else dl
        self._place(dl)
        self._one_epoch(False, dl)
        return dict(self.recorder.valid_values)

    def get_preds(self, dl: Iterable | None = None, raw: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(probabilities, targets) over `dl` (default: the validation set), on the CPU.

        Probabilities are (N, n_classes): one-output models give [1 - p, p]. `raw=True` returns
        the model's outputs untouched instead.
        """
        gather = _Gather()
        self.add_cbs([gather])
        try:
            self.validate(dl)
        finally:
            self.remove_cbs([gather])
        outputs = torch.cat(gather.preds) if gather.preds else torch.empty(0)
        targets = torch.cat(gather.targets) if gather.targets else torch.empty(0, dtype=torch.long)
        return (outputs if raw else self.probabilities(outputs)), targets

    def probabilities(self, outputs: torch.Tensor) -> torch.Tensor:
        """Model outputs (N, k) as class probabilities (N, n_classes), by the loss's activation."""
        return probabilities(outputs, self.loss_func)

    def predict(self, item: "torch.Tensor | np.ndarray | ImageSource") -> tuple[str | int, int, torch.Tensor]:
        """Classify one item: (label, class index, probabilities).

        `item` is an image as the dataset holds it (H x W or 1 x H x W; uint8, integers 0-255
        or floats in [0, 1]; or RGB/RGBA), prepared the way the DataLoaders prepared their
        inputs; or a person's image (a file path, its bytes, or a Pillow image), first prepared
        the MNIST way, as a saved run's Predictor does. A flat row, or anything given to a
        Learner without an input format (DataLoaders made by hand), goes to the model as it is.
        """
        return self.predict_many([item])[0]

    def predict_many(self, items: Iterable) -> list[tuple[str | int, int, torch.Tensor]]:
        """`predict` for many items, in one batch through the model."""
        x = torch.cat([self._input(item) for item in items])
        self.model.eval()
        with torch.no_grad():
            probs = self.probabilities(self.model(x.to(self.device))).cpu()
        indices = probs.argmax(1).tolist()
        return [
            (self.dls.classes[i] if self.dls.classes else i, i, p)
            for i, p in zip(indices, probs, strict=True)
        ]

    def _input(self, item: object) -> torch.Tensor:
        """One item as a batch of one model input."""
        fmt = self.dls.input_format
        readable = isinstance(item, str | os.PathLike | bytes | Image.Image)
        if fmt is None and readable:
            raise DigitlearnError("this Learner's data has no image format: it cannot read image files")
        if readable:
            return fmt(to_mnist(item, (fmt.height, fmt.width))[None])
        flat_input = getattr(item, "ndim", None) == 1  # a row of pixels as a flat model takes it
        if fmt is not None and not flat_input:  # pixels as the dataset holds them, checked and scaled
            return fmt(torch.from_numpy(read_gray(item))[None])
        return torch.as_tensor(item)[None].float()

    def lr_find(self, start_lr: float = 1e-7, end_lr: float = 10.0, num_it: int = 100) -> LRFindResult:
        """Train briefly with the learning rate growing exponentially; suggest one from the losses.

        Only the callbacks that change how the model trains stay on (`Callback.in_lr_find`). The
        model and optimizer are put back as they were afterwards.
        """
        finder = LRFinder(start_lr, end_lr, num_it)
        model_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        opt_state = self.opt.state_dict() if self.opt is not None else None
        saved, resume, self._resume = self._cbs, self._resume, None  # a loaded checkpoint: for the real fit
        self.cbs = [finder, *(cb for cb in saved if cb.in_lr_find)]
        try:
            self.fit(math.ceil(num_it / max(len(self.dls.train), 1)), start_lr, start_epoch=0)
        finally:
            self.cbs, self._resume = saved, resume
            self.model.load_state_dict(model_state)
            self.model.zero_grad()  # the finder stops the fit after a step, before its zero_grad
            if opt_state is None:
                self.opt = None
            else:
                self.opt.load_state_dict(opt_state)
        return LRFindResult(finder.lrs, finder.losses)

    def summary(self) -> Summary:
        """Each layer with its output shape and parameter count, for a batch of the training size
        (taken from the validation set, so the training shuffle's random state is left alone)."""
        if self.dls.valid.n:
            batch = self.dls.valid.one_batch()
            x = (batch if isinstance(batch, torch.Tensor) else batch[0])[: self.dls.train.bs]
        else:  # a Learner for inference has no data: one blank input of the model's format
            x = torch.zeros(1, *self.dls.valid.fields[0].shape[1:])
        return summarize(self.model, x.to(self.device))

    def show_results(self, n: int = 9, ncols: int | None = None):
        """The first `n` validation images, each titled "target / prediction"; a matplotlib Figure."""
        from ..plots.charts import image_grid

        fmt = self.dls.input_format
        if fmt is None:
            raise DigitlearnError("this Learner's data has no image format: it has no images to show")
        probs, targets = self.get_preds()
        n = min(n, len(targets))
        classes = (
            [str(c) for c in self.dls.classes]
            if self.dls.classes
            else [str(i) for i in range(probs.shape[1])]
        )
        pairs = zip(targets[:n].tolist(), probs[:n].argmax(1).tolist(), strict=True)
        titles = [f"{classes[t]} / {classes[p]}" for t, p in pairs]
        return image_grid(fmt.inverse(self.dls.valid.fields[0][:n]), titles, ncols)

    def __repr__(self) -> str:
        params = sum(p.numel() for p in self.model.parameters())
        sizes = [getattr(dl, "n_items", None) for dl in (self.dls.train, self.dls.valid)]
        data = "no data" if not sizes[0] else f"{sizes[0]} train, {sizes[1]} valid"
        loss = describe(self.loss_func)["name"]
        metrics = ", ".join(metric_name(m) for m in self.metrics) or "none"
        return (
            f"Learner({type(self.model).__name__}, {params:,} parameters, {data}, "
            f"loss {loss}, metrics {metrics}, {self.device})"
        )

    # ------------------------------------------------------------ saving

    @property
    def raw_model(self) -> nn.Module:
        """The model itself, out of the wrapper a data-parallel fit puts on it: what is saved,
        loaded and described, so its weights' names never depend on how it was trained."""
        return unwrapped(self.model)

    def config(self, extra: dict | None = None) -> dict:
        """What a saved run says of this model: architecture, classes, input format, loss, metrics."""
        return {
            "model": getattr(self.raw_model, "config", None),
            "classes": self.dls.classes,
            "input": self.dls.input_format.to_dict() if self.dls.input_format else None,
            "loss": describe(self.loss_func),
            "metrics": [metric_name(m) for m in self.metrics],
            **(extra or {}),
        }

    def save(self, path: str | Path, extra: dict | None = None) -> Path:
        """Save the weights (safetensors) and `config(extra)` as config.json into the folder `path`."""
        return save_model(path, self.raw_model, self.config(extra))

    def load(self, path: str | Path) -> "Learner":
        """Load weights saved by `save` into this Learner's model."""
        load_weights(self.raw_model, path)
        return self

    def distributed(self, backend: str | None = None) -> AbstractContextManager["Learner"]:
        """`with learn.distributed(): learn.fit(...)` trains data-parallel across the processes that
        torchrun started (see `training.distributed`): the same model and result as one process
        training on the whole of each batch, each process computing on its share."""
        return distributed(self, backend)

    def save_checkpoint(self, path: str | Path, extra: dict | None = None) -> Path:
        """Write everything needed to go on with this fit (see `training.checkpoint`) to the file
        `path`, atomically; `extra` (JSON data) is kept with it. Called between epochs."""
        return save_checkpoint(self, path, extra)

    def load_checkpoint(self, path: str | Path) -> dict:
        """Load a checkpoint written by `save_checkpoint`: the model and optimizer now, the rest
        (history, callbacks' state, random generators) at the start of the next `fit`, which goes
        on from the checkpoint's epoch. Returns the checkpoint's `extra`."""
        self._resume = load_checkpoint(self, path)
        self.epochs_done = self._resume["epoch"]
        return self._resume["extra"]


class _Gather(Callback):
    """Collects validation outputs and targets (for get_preds)."""

    order = 55

    def before_validate(self, learn: Learner) -> None:
        self.preds, self.targets = [], []

    def after_loss(self, learn: Learner) -> None:
        if not learn.training:
            self.preds.append(learn.preds.detach().cpu())
            self.targets.append(learn.yb.detach().cpu())
