"""The chapter's first model: pixel similarity.

Average the training images of each class into one "ideal" image, then call an image
whatever class mean it is closest to. Distances broadcast over a whole batch at once:
(N, 1, H, W) against (1, C, H, W) gives (N, C) without a Python loop.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..data.dataset import Split
from ..errors import DigitlearnError


def mnist_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference (L1) over the last two axes, broadcasting the rest."""
    return (a - b).abs().mean((-1, -2))


def rmse_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Root mean squared difference over the last two axes, broadcasting the rest."""
    return ((a - b) ** 2).mean((-1, -2)).sqrt()


DISTANCES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "l1": mnist_distance,
    "rmse": rmse_distance,
}


def as_floats(x: torch.Tensor) -> torch.Tensor:
    """uint8 pixels become float32 in [0, 1]; float input is taken as already scaled."""
    return x.float() / 255 if x.dtype == torch.uint8 else x.float()


@dataclass(frozen=True)
class BaselineReport:
    """How the nearest-mean classifier did on one split."""

    classes: list[str]
    counts: list[int]  # images of each class
    correct: list[int]  # of those, predicted right

    @property
    def class_accuracy(self) -> list[float]:
        return [c / n if n else float("nan") for c, n in zip(self.correct, self.counts, strict=True)]

    @property
    def mean_class_accuracy(self) -> float:
        """The chapter's "average" accuracy: the mean of the per-class accuracies."""
        present = [a for a, n in zip(self.class_accuracy, self.counts, strict=True) if n]
        return sum(present) / len(present)

    @property
    def accuracy(self) -> float:
        return sum(self.correct) / sum(self.counts)


class PixelSimilarity:
    """Nearest class mean under the L1 (`"l1"`) or RMSE (`"rmse"`) distance."""

    def __init__(self, distance: str = "l1", chunk: int = 2048) -> None:
        if distance not in DISTANCES:
            raise DigitlearnError(f"unknown distance {distance!r} (use {' or '.join(DISTANCES)})")
        self.distance = distance
        self.chunk = chunk  # images per broadcast, so (chunk, C, H, W) stays small
        self.means: torch.Tensor | None = None

    def fit(self, x: torch.Tensor, y: torch.Tensor, n_classes: int | None = None) -> "PixelSimilarity":
        """Compute one mean image per class from images `x` (N, H, W) and labels `y`."""
        x = as_floats(x)
        n_classes = n_classes or int(y.max()) + 1
        missing = [c for c in range(n_classes) if not (y == c).any()]
        if missing:
            raise DigitlearnError(f"no training images of class index {missing[0]}")
        self.means = torch.stack([x[y == c].mean(0) for c in range(n_classes)])
        return self

    def distances(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C) distance of each image to each class mean."""
        if self.means is None:
            raise DigitlearnError("PixelSimilarity is not fitted yet: call fit() first")
        dist = DISTANCES[self.distance]
        x = as_floats(x)
        return (
            torch.cat(
                [dist(x[i : i + self.chunk, None], self.means[None]) for i in range(0, len(x), self.chunk)]
            )
            if len(x)
            else x.new_empty(0, len(self.means))
        )

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Index of the nearest class mean for each image."""
        return self.distances(x).argmin(1)

    def evaluate(self, split: Split, classes: list[str]) -> BaselineReport:
        pred = self.predict(split.x)
        counts = torch.bincount(split.y, minlength=len(classes))
        correct = torch.bincount(split.y[pred == split.y], minlength=len(classes))
        return BaselineReport(classes, counts.tolist(), correct.tolist())
