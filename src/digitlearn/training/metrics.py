"""Metrics: numbers for people, computed on the validation set, never differentiated.

Each is a mean over the items of a batch; the Learner weights batches by their size, so the
value it reports is exact over the whole validation set (the last batch may be smaller).
"""

import torch

from .losses import binary_targets


def batch_accuracy(preds: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary accuracy of one-output predictions: sigmoid(output) > 0.5 means class 1."""
    return ((preds.sigmoid() > 0.5) == binary_targets(preds, targets).bool()).float().mean()


def accuracy(preds: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Multi-class accuracy: the highest output is the predicted class."""
    return (preds.argmax(-1) == targets.reshape(-1)).float().mean()


def error_rate(preds: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1 - accuracy: the share of items classified wrongly."""
    return 1 - accuracy(preds, targets)
