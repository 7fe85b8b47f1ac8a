"""The Dataset: train and valid splits of uint8 images with labels and class names.

`load_dataset` takes a registered name (`mnist_sample`, `mnist_png`, `mnist`) or a path
(folder in a fastai layout, archive, folder of IDX files) and returns the same thing either way.
"""

import os
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..errors import DataError
from ..files import shown
from .formats import Size, read_path
from .loaders import DataLoader, DataLoaders, InputFormat
from .sources import REGISTRY, fetch

SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "valid": "valid",
    "validation": "valid",
    "test": "valid",
    "testing": "valid",
}


@dataclass(frozen=True, repr=False)
class Split:
    """Images `x` (uint8, N x H x W), labels `y` (int64 class indices), and each item's name."""

    x: torch.Tensor
    y: torch.Tensor
    names: list[str]

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int | slice | torch.Tensor) -> "Split":
        """A smaller Split: one item, a slice, or a tensor of indices."""
        idx = torch.arange(len(self))[index].reshape(-1)
        return Split(self.x[idx], self.y[idx], [self.names[i] for i in idx.tolist()])

    def __repr__(self) -> str:
        # not the dataclass's: that lists every name, 185,000 characters for MNIST's train split
        shape = "x".join(map(str, self.x.shape[1:]))
        return f"Split({len(self)} images of {shape} {str(self.x.dtype).removeprefix('torch.')})"

    def of_class(self, c: int) -> "Split":
        """The items labelled `c`, in their original order."""
        return self[torch.nonzero(self.y == c).flatten()]

    def floats(self) -> torch.Tensor:
        """The images as float32 in [0, 1], as the chapter prepares them (`.float()/255`)."""
        return self.x.float() / 255


def pixel_stats(x: torch.Tensor) -> tuple[float, float]:
    """Mean and (sample) standard deviation of uint8 images as floats in [0, 1].

    Counted from the 256-value histogram, in float64: one pass over the bytes, no float copy.
    """
    counts = torch.bincount(x.reshape(-1), minlength=256).double()
    values = torch.arange(256, dtype=torch.float64) / 255
    n = counts.sum()
    mean = (counts * values).sum() / n
    var = (counts * (values - mean) ** 2).sum() / (n - 1)
    return float(mean), float(var.sqrt())


# `hold_out`'s default: one fixed set of held-out images for every run that tunes on them
HOLD_OUT_SEED = 0


@dataclass(frozen=True)
class Dataset:
    """Two splits and the class names their labels index."""

    train: Split
    valid: Split
    classes: list[str]
    source: str

    def split(self, name: str) -> Split:
        """`train` or `valid` (also accepts training, validation, test, testing)."""
        if name not in SPLIT_ALIASES:
            raise DataError(f"unknown split {name!r} (use train or valid)")
        return getattr(self, SPLIT_ALIASES[name])

    def class_index(self, name: str) -> int:
        if name not in self.classes:
            raise DataError(f"class {name!r} is not in {self.source} (classes: {', '.join(self.classes)})")
        return self.classes.index(name)

    def hold_out(self, fraction: float, seed: int = HOLD_OUT_SEED) -> "Dataset":
        """This dataset with `fraction` of its training images held out as the validation split.

        For choosing settings without looking at the test set: the returned Dataset trains on the
        rest and validates on the held-out images, and its old valid split is not in it. The same
        `seed` holds out the same images, so runs that differ in their settings (or their own
        training seed) are compared on one set. Each class is held out in the same proportion.
        """
        if not 0 < fraction < 1:
            raise DataError(f"the held-out fraction is above 0 and below 1, not {fraction!r}")
        n = round(fraction * len(self.train))
        if not 0 < n < len(self.train):
            raise DataError(f"holding out {fraction:g} of {len(self.train)} images leaves a split empty")
        order = torch.randperm(len(self.train), generator=torch.Generator().manual_seed(seed))
        out, keep = order[:n].sort().values, order[n:].sort().values
        return replace(self, train=self.train[keep], valid=self.train[out])

    def dataloaders(
        self,
        bs: int = 256,
        valid_bs: int | None = None,
        flat: bool = True,
        normalize: bool = False,
        shuffle: bool = True,
        drop_last: bool = False,
        device: str | torch.device | None = None,
        generator: torch.Generator | None = None,
    ) -> DataLoaders:
        """Train and valid DataLoaders with the chapter's preprocessing, prepared once, up front.

        Inputs are float32 in [0, 1] (`.float()/255`), flattened to H*W for the linear models
        (`flat=True`) or shaped (1, H, W) for convolutions; targets are int64 class indices.
        `normalize` shifts and scales them by the training pixels' mean and standard deviation
        (0.1307 and 0.3081 for MNIST), so inputs start centred at 0 with unit spread.
        The validation loader uses `valid_bs` (default 2*bs: no gradients, so bigger batches fit).
        """
        fmt = InputFormat(*self.train.x.shape[1:], flat=flat)
        if normalize:
            mean, std = pixel_stats(self.train.x)
            fmt = replace(fmt, mean=round(mean, 4), std=round(std, 4))
        train = DataLoader(
            fmt(self.train.x),
            self.train.y,
            bs=bs,
            shuffle=shuffle,
            drop_last=drop_last,
            generator=generator,
            device=device,
        )
        valid = DataLoader(fmt(self.valid.x), self.valid.y, bs=valid_bs or 2 * bs, device=device)
        return DataLoaders(train, valid, list(self.classes), fmt)

    def __repr__(self) -> str:
        h, w = self.train.x.shape[1:]
        return (
            f"Dataset({self.source!r}: {len(self.train)} train, {len(self.valid)} valid, "
            f"{h}x{w} images, classes {self.classes})"
        )


def load_dataset(source: str | os.PathLike, size: int | Size | None = None) -> Dataset:
    """Load a registered dataset by name, or a dataset folder/archive by path.

    A registered name wins over a folder of the same name; write `./mnist` for the folder.
    `size` (an int or (height, width)) resizes every image; without it images must agree in size.
    """
    if isinstance(size, int):
        size = (size, size)
    if size is not None and (len(size) != 2 or min(size) < 1):
        raise DataError(f"size must be a positive int or (height, width), not {size!r}")
    if isinstance(source, str) and source in REGISTRY:
        path = fetch(source)
    elif isinstance(source, str) and os.sep not in source and not os.path.exists(source):
        raise DataError(
            f"{source!r} is neither a known dataset ({', '.join(sorted(REGISTRY))}) nor an existing path"
        )
    else:
        path = Path(source).expanduser()
    splits, classes = read_path(path, size)
    # shown: a path that is not UTF-8 would otherwise break printing, JSON and the run's config
    return Dataset(Split(*splits["train"]), Split(*splits["valid"]), classes, shown(source))
