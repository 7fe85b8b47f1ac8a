"""Loss functions: what SGD minimises. Smooth in the weights, unlike accuracy.

Binary losses take one output per item (`(N, 1)` or `(N,)`) and 0/1 targets; the sigmoid of the
output is the probability of class 1 (for mnist_sample, "7"; the chapter labels 3s as 1 instead,
which only flips the sign of the weights). Softmax cross-entropy takes one output per class.
"""

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..errors import DigitlearnError

LossFunc = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def binary_targets(preds: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Targets shaped like one-output predictions: (N,) labels against (N, 1) outputs, or the reverse.

    Comparing (N, 1) with (N,) would silently broadcast to (N, N), so shapes are matched here.
    """
    if targets.shape == preds.shape:
        return targets
    if targets.numel() != preds.numel():
        raise DigitlearnError(
            f"a binary loss needs one output per item: predictions {tuple(preds.shape)} "
            f"do not match targets {tuple(targets.shape)}"
        )
    return targets.view_as(preds)


def mnist_loss(preds: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The chapter's loss: how far the sigmoid of each output is from its 0/1 target, averaged."""
    preds = preds.sigmoid()
    return torch.where(binary_targets(preds, targets) == 1, 1 - preds, preds).mean()


def bce_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy on raw outputs: -mean(t*log(sigmoid(x)) + (1-t)*log(1-sigmoid(x))).

    Written as softplus(x) - t*x, which never takes the log of a sigmoid that rounded to 0 or 1.
    """
    t = binary_targets(logits, targets).to(logits.dtype)
    return (torch.nn.functional.softplus(logits) - t * logits).mean()


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Softmax cross-entropy: the mean of -log(softmax(x)[target]) over the batch.

    With `label_smoothing` e, the target distribution puts 1-e on the right class and spreads e
    over all classes, which stops the model from chasing infinitely confident outputs.
    """
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise DigitlearnError(
            f"cross_entropy needs one output per class, (N, C) with C >= 2, not {tuple(logits.shape)}; "
            "a one-output model goes with mnist_loss or bce_loss"
        )
    # log_softmax through logsumexp, which subtracts the max first so exp() cannot overflow
    log_probs = logits - logits.logsumexp(1, keepdim=True)
    targets = targets.reshape(-1, 1)
    if targets.numel() != len(logits):
        raise DigitlearnError(f"{len(logits)} predictions but {targets.numel()} targets")
    try:
        nll = -log_probs.gather(1, targets).mean()
    except RuntimeError:
        raise DigitlearnError(
            f"targets hold class indices from {int(targets.min())} to {int(targets.max())}, "
            f"but the model gives {logits.shape[1]} outputs per item"
        ) from None
    if not label_smoothing:
        return nll
    return (1 - label_smoothing) * nll - label_smoothing * log_probs.mean()


@dataclass(frozen=True)
class Loss:
    """What the rest of digitlearn needs to know of a loss, in one place: the recipes (how many
    outputs a model needs), the run schema (what a saved run may pair it with) and the Predictor
    (how outputs become probabilities, and those a class)."""

    func: LossFunc
    binary: bool  # one output per item, the probability of the second class; else one per class
    options: tuple[str, ...] = ()  # settings bound with functools.partial, saved with a run

    @property
    def name(self) -> str:
        return self.func.__name__

    def n_out(self, n_classes: int) -> int:
        """The model outputs this loss trains for `n_classes` classes."""
        return 1 if self.binary else n_classes

    def activation(self, outputs: torch.Tensor) -> torch.Tensor:
        """Outputs as probabilities: the sigmoid of one output, or the softmax of one per class."""
        return outputs.sigmoid() if self.binary else outputs.softmax(-1)


KINDS: dict[str, Loss] = {
    "mnist_loss": Loss(mnist_loss, binary=True),
    "bce_loss": Loss(bce_loss, binary=True),
    "cross_entropy": Loss(cross_entropy, binary=False, options=("label_smoothing",)),
}
LOSSES: dict[str, LossFunc] = {name: kind.func for name, kind in KINDS.items()}


def kind_of(loss_func: Callable | None) -> Loss | None:
    """The Loss of a loss function (or a functools.partial of one); None for one digitlearn does
    not know (PyTorch's own cross-entropy counts as ours)."""
    base = loss_func.func if isinstance(loss_func, functools.partial) else loss_func
    if base is torch.nn.functional.cross_entropy:
        return KINDS["cross_entropy"]
    return next((kind for kind in KINDS.values() if kind.func is base), None)


def probabilities(outputs: torch.Tensor, loss_func: Callable | None) -> torch.Tensor:
    """Model outputs (N, k) as class probabilities (N, n_classes), by the loss's activation.

    One output is the probability of the second class, so it becomes [1 - p, p]. For a loss
    digitlearn does not know, one output means sigmoid and more mean softmax.
    """
    kind = kind_of(loss_func) or Loss(loss_func, binary=outputs.shape[-1] == 1)
    probs = kind.activation(outputs.float())
    return torch.cat([1 - probs, probs], -1) if probs.shape[-1] == 1 else probs


def describe(loss_func: Callable) -> dict:
    """A loss as JSON-friendly data: its name and any options bound with functools.partial."""
    if isinstance(loss_func, functools.partial):
        return {"name": getattr(loss_func.func, "__name__", repr(loss_func.func)), **loss_func.keywords}
    return {"name": getattr(loss_func, "__name__", type(loss_func).__name__)}
