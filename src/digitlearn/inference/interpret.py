"""Where a classifier fails: the confusion matrix, per-class precision and recall, the pairs of
classes it mixes up most, and the images it got most confidently wrong (fastai's
`ClassificationInterpretation`, for our models).
"""

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ..data.dataset import Split
from ..errors import DigitlearnError
from .predictor import Predictor

if TYPE_CHECKING:  # matplotlib is imported by what draws, so interpreting alone does not pay for it
    from matplotlib.figure import Figure


@dataclass
class Interpretation:
    """Predictions on a labelled set: `images` (N, H, W) as the dataset holds them, class
    `probs` (N, C), true `targets` (N,), and the `classes` the indices name.

    Each item's loss is -log(probability of its true class): the same measure for every model,
    whatever loss it was trained with.
    """

    images: torch.Tensor
    probs: torch.Tensor
    targets: torch.Tensor
    classes: list[str]

    def __post_init__(self) -> None:
        if not len(self.images) == len(self.probs) == len(self.targets):
            raise DigitlearnError(
                f"{len(self.images)} images, {len(self.probs)} predictions and {len(self.targets)} targets: "
                "they must be as many"
            )
        if self.probs.ndim != 2 or self.probs.shape[1] != len(self.classes):
            raise DigitlearnError(
                f"predictions are {tuple(self.probs.shape)}, for {len(self.classes)} classes"
            )

    @classmethod
    def from_predictor(cls, predictor: Predictor, split: Split, bs: int = 1000) -> "Interpretation":
        """Run `predictor` over a dataset split (its images are MNIST's shape already, so they go
        in as they are); the split's labels must index the model's classes."""
        probs = torch.cat([predictor.probabilities(split.x[i : i + bs]) for i in range(0, len(split), bs)])
        return cls(split.x, probs, split.y, predictor.classes)

    @classmethod
    def from_learner(cls, learn, dl=None) -> "Interpretation":
        """Interpret a Learner on `dl` (default: its validation set); the images are recovered
        from the loader's inputs by undoing the input format's normalisation."""
        dl = learn.dls.valid if dl is None else dl
        probs, targets = learn.get_preds(dl)
        x = dl.fields[0].detach().float().cpu()
        fmt = learn.dls.input_format
        if fmt:
            x = fmt.inverse(x)
        classes = (
            [str(c) for c in learn.dls.classes]
            if learn.dls.classes
            else list(map(str, range(probs.shape[1])))
        )
        return cls(x.clamp(0, 1), probs, targets, classes)

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike, split: Split, device: str = "cpu") -> "Interpretation":
        """Load the model saved in `run_dir` and interpret it on `split`."""
        return cls.from_predictor(Predictor.load(run_dir, device), split)

    @property
    def preds(self) -> torch.Tensor:
        return self.probs.argmax(1)

    @property
    def losses(self) -> torch.Tensor:
        p = self.probs.gather(1, self.targets[:, None])[:, 0]
        return -p.clamp_min(1e-12).log()

    @property
    def accuracy(self) -> float:
        return float((self.preds == self.targets).float().mean()) if len(self.targets) else float("nan")

    def confusion_matrix(self) -> torch.Tensor:
        """(C, C) counts: row = true class, column = predicted class."""
        n = len(self.classes)
        return torch.bincount(self.targets * n + self.preds, minlength=n * n).reshape(n, n)

    def most_confused(self, min_val: int = 1) -> list[tuple[str, str, int]]:
        """(true, predicted, count) for every pair of different classes seen at least `min_val`
        times, most frequent first."""
        cm = self.confusion_matrix().clone()
        cm.fill_diagonal_(0)
        pairs = [
            (self.classes[i], self.classes[j], int(cm[i, j]))
            for i, j in torch.nonzero(cm >= max(min_val, 1)).tolist()
        ]
        return sorted(pairs, key=lambda t: -t[2])

    def per_class(self) -> list[dict]:
        """Per class: precision (of the images predicted as it, the share that are), recall (of
        its images, the share found), F1, and support (its number of images)."""
        cm = self.confusion_matrix().double()
        hits, predicted, actual = cm.diag(), cm.sum(0), cm.sum(1)
        rows = []
        for c, tp, np_, na in zip(
            self.classes, hits.tolist(), predicted.tolist(), actual.tolist(), strict=True
        ):
            precision = tp / np_ if np_ else 0.0
            recall = tp / na if na else 0.0
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            rows.append({"class": c, "precision": precision, "recall": recall, "f1": f1, "support": int(na)})
        return rows

    def summary(self) -> dict:
        """The figures as plain data: images, accuracy, per-class scores, the confusion matrix
        (rows: actual, columns: predicted) and the most confused pairs."""
        return {
            "images": len(self.targets),
            "accuracy": self.accuracy,
            "per_class": self.per_class(),
            "confusion_matrix": self.confusion_matrix().tolist(),
            "most_confused": [{"actual": a, "predicted": p, "count": n} for a, p, n in self.most_confused()],
        }

    def top_losses(self, k: int = 9) -> tuple[torch.Tensor, torch.Tensor]:
        """The `k` largest losses and the indices of their items, largest first."""
        return self.losses.topk(min(k, len(self.targets)))

    def plot_confusion_matrix(self, normalize: bool = False, title: str | None = None) -> "Figure":
        """The confusion matrix as a figure, counts (or row shares, `normalize`) written in each cell."""
        from ..plots.charts import InlineFigure

        cm = self.confusion_matrix().double()
        if normalize:
            cm = cm / cm.sum(1, keepdim=True).clamp_min(1)
        n = len(self.classes)
        side = max(4.0, 0.55 * n + 1.5)
        fig = InlineFigure(figsize=(side, side), layout="constrained")
        ax = fig.subplots()
        ax.imshow(cm.numpy(), cmap="Blues")
        ax.set_xticks(range(n), self.classes)
        ax.set_yticks(range(n), self.classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("actual")
        # two short lines: one long line is wider than a small matrix's figure, and gets cut
        ax.set_title(
            title or f"confusion matrix\n{len(self.targets):,} images, accuracy {self.accuracy:.4f}",
            fontsize=11,
        )
        top = float(cm.max()) if cm.numel() else 1.0
        for i in range(n):
            for j in range(n):
                v = float(cm[i, j])
                ax.text(j, i, f"{v:.2f}" if normalize else f"{int(v)}", ha="center", va="center",
                        fontsize=8, color="white" if v > top / 2 else "black")  # fmt: skip
        return fig

    def plot_top_losses(self, k: int = 9, ncols: int | None = None) -> "Figure":
        """The `k` images with the largest losses, each titled predicted/actual/loss/probability of
        the prediction (fastai's layout), dark ink on light paper as in the book, in full rows
        where `k` allows (`grid_columns`)."""
        from ..plots.charts import image_grid

        losses, idx = self.top_losses(k)
        preds, names = self.preds.tolist(), self.classes
        titles = [
            f"{names[preds[i]]}/{names[self.targets[i]]} / {loss:.2f} / {self.probs[i, preds[i]]:.2f}"
            for loss, i in zip(losses.tolist(), idx.tolist(), strict=True)
        ]
        fig = image_grid(self.images[idx], titles, ncols=ncols, size=2.0)
        fig.suptitle("prediction/actual / loss / probability")
        return fig


# fastai's name for it, as chapter 4's readers know it
ClassificationInterpretation = Interpretation
