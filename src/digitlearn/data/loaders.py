"""Mini-batches from tensors: the chapter's DataLoader, without per-item collation.

Every field (inputs, targets, ...) is held as one contiguous tensor. In order, a batch is a
slice: a view that costs no copy. Shuffled, a batch is one `index_select` of a slice of a fresh
permutation: its rows land in a small new tensor that is still in cache when the model reads it
(5x cheaper on a 2-core machine than permuting the whole tensor up front and slicing that).
The chapter's form, `DataLoader(list(zip(train_x, train_y)), batch_size=256)`, is stacked into
tensors once, up front.

A loader can be narrowed to a `subset` of its items (callbacks such as `SkipLearned` do this
between epochs), and it tells which items made the batch it just gave (`indices`).
"""

import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from ..errors import DataError, DigitlearnError

Batch = torch.Tensor | tuple


def _stack_field(values: Sequence[Any], k: int) -> torch.Tensor | list:
    """Field `k` of every item as one tensor; values that are not numbers stay a list."""
    first = values[0]
    if isinstance(first, torch.Tensor):
        return torch.stack(list(values))
    if isinstance(first, np.ndarray | np.generic | int | float | bool):
        return torch.as_tensor(np.asarray(values))
    return list(values)  # strings, paths, ...: batched as lists, as fastai's collate does


def _take(field: torch.Tensor | list, idx: torch.Tensor) -> torch.Tensor | list:
    if isinstance(field, torch.Tensor):
        return field.index_select(0, idx.to(field.device))
    return [field[i] for i in idx.tolist()]


@dataclass(frozen=True)
class InputFormat:
    """How uint8 images become model inputs: float32 in [0, 1], flat rows or (1, H, W) images,
    optionally normalised as (x - mean) / std.

    Saved with a trained model, so predicting needs no training data to prepare an image.
    """

    height: int
    width: int
    flat: bool = True
    mean: float = 0.0
    std: float = 1.0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(N, H, W) uint8 (or float in [0, 1]) images as (N, H*W) or (N, 1, H, W) float32."""
        if tuple(x.shape[-2:]) != (self.height, self.width):
            raise DataError(
                f"images are {x.shape[-2]}x{x.shape[-1]}, but the model takes {self.height}x{self.width}"
            )
        # in place on one fresh float copy: the same arithmetic as `(x.float() / 255 - mean) / std`,
        # without a temporary as large as the data for each step (a third of a second on MNIST)
        x = x.float().div_(255) if x.dtype == torch.uint8 else x.float().clone()
        if (self.mean, self.std) != (0.0, 1.0):
            x.sub_(self.mean).div_(self.std)
        return (
            x.reshape(-1, self.height * self.width)
            if self.flat
            else x.reshape(-1, 1, self.height, self.width)
        )

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """Model inputs (flat rows or (N, 1, H, W)) back to (N, H, W) images in [0, 1]: what
        pictures of a batch, an interpretation or a prediction show."""
        x = x.detach().float().cpu()
        if (self.mean, self.std) != (0.0, 1.0):
            x = x * self.std + self.mean
        return x.reshape(-1, self.height, self.width).clamp(0, 1)

    @classmethod
    def of(cls, value: "InputFormat | dict | None") -> "InputFormat | None":
        """`value` as an InputFormat: one already, or the dict a config.json saves it as."""
        return cls(**value) if isinstance(value, dict) else value

    def to_dict(self) -> dict:
        return asdict(self)

    def __getitem__(self, key: str) -> object:
        # read like the dict a config.json holds, as code from before it was an object did
        return self.to_dict()[key]


class DataLoader:
    """Batches of `bs` items from tensors (`DataLoader(x, y, bs=256)`) or from a sequence of items.

    With one non-tensor argument, that argument is a dataset: a sequence of `(x, y)` tuples (or of
    single values). Batches are tuples of tensors, one per field, or a tensor when there is one field.
    `shuffle` draws a new order every epoch from `generator` (default: torch's global one, so
    `torch.manual_seed` makes it repeatable). The last partial batch is kept unless `drop_last`.
    The data lives on `device` (None: wherever it is now), moved there once, so batches come out
    on it with no copy per batch; `to(device)` moves it later (the Learner moves it to the model's).
    `subset` (indices, or None for all) limits the items each epoch draws from; after each batch,
    `indices` holds the positions of the batch's items in the data.
    """

    def __init__(
        self,
        *data: Any,
        bs: int | None = None,
        shuffle: bool = False,
        drop_last: bool = False,
        generator: torch.Generator | None = None,
        device: str | torch.device | None = None,
        batch_size: int | None = None,
    ) -> None:
        if bs is not None and batch_size is not None and bs != batch_size:
            raise DigitlearnError(f"bs={bs} and batch_size={batch_size} disagree: give one of them")
        bs = next((b for b in (bs, batch_size) if b is not None), 64)
        if not isinstance(bs, int) or bs < 1:
            raise DigitlearnError(f"batch size must be a positive integer, not {bs!r}")
        if not data:
            raise DigitlearnError("DataLoader needs data: tensors (x, y) or a sequence of (x, y) items")
        self.single = False  # batches are tensors rather than tuples
        if all(isinstance(d, torch.Tensor) for d in data):
            fields = list(data)
            self.single = len(fields) == 1
        elif len(data) == 1:
            items = data[0]
            if len(items) == 0:
                raise DigitlearnError("DataLoader got an empty dataset")
            if isinstance(items[0], tuple | list):
                fields = [_stack_field(column, k) for k, column in enumerate(zip(*items, strict=True))]
            else:
                fields, self.single = [_stack_field(items, 0)], True
        else:
            raise DigitlearnError("give DataLoader tensors (x, y), or one sequence of (x, y) items")
        sizes = {len(f) for f in fields}
        if len(sizes) != 1:
            raise DigitlearnError(f"DataLoader fields differ in length: {[len(f) for f in fields]}")
        self.fields = [f.contiguous() if isinstance(f, torch.Tensor) else f for f in fields]
        self.n = sizes.pop()
        self.bs, self.shuffle, self.drop_last, self.generator = bs, shuffle, drop_last, generator
        self.device = torch.device(device) if device is not None else None
        self.subset: torch.Tensor | None = None
        self.indices: torch.Tensor | None = None
        self.rank, self.world, self.even = 0, 1, False  # see `shard`
        if self.device is not None:
            self.to(self.device)

    @property
    def n_items(self) -> int:
        """How many items an epoch draws from: the subset's size, else all of them."""
        return self.n if self.subset is None else len(self.subset)

    def __len__(self) -> int:
        n = self.n_items
        return n // self.bs if self.drop_last else math.ceil(n / self.bs)

    def __iter__(self) -> Iterator[Batch]:
        n = self.n_items
        stop = min(len(self) * self.bs, n)
        order = self.subset
        if self.shuffle:
            # drawn where the data lives (with the generator's device if one is given), so a GPU
            # gets its batch indices without a copy from the CPU per batch
            where = self.generator.device if self.generator is not None else self.device or "cpu"
            perm = torch.randperm(n, generator=self.generator, device=where)
            order = perm if order is None else order[perm.to(order.device)]
        for i in range(0, stop, self.bs):
            lo, hi = i, min(i + self.bs, n)
            if self.world > 1:
                if self.even and hi - lo < self.world:
                    continue  # some process would have nothing: dropped by every one alike
                lo, hi = _share(lo, hi, self.rank, self.world)
                if lo == hi:  # a last batch smaller than the world: nothing for this process
                    continue
            if order is None:
                self.indices = torch.arange(lo, hi, device=self.device)
                batch = [f[lo:hi] for f in self.fields]
            else:
                self.indices = order[lo:hi]
                batch = [_take(f, self.indices) for f in self.fields]
            yield batch[0] if self.single else tuple(batch)

    def shard(self, rank: int = 0, world: int = 1, even: bool = False) -> "DataLoader":
        """Give this process (`rank` of `world`) its share of every batch, for data-parallel training.

        `bs` stays the global batch size: each batch of the epoch's order (the same order in every
        process, from the same generator state) is cut into `world` near-equal parts, and this
        process takes part `rank`, so the processes together see exactly one process's batches.
        A last batch of fewer than `world` items leaves some processes without a share; `even`
        drops it in every process instead, since processes that step together (DDP's gradient
        all-reduce) must all have a batch. `shard()` undoes it.
        """
        if not 0 <= rank < world:
            raise DigitlearnError(f"rank {rank} is not one of the {world} processes")
        self.rank, self.world, self.even = rank, world, even
        return self

    def to(self, device: str | torch.device) -> "DataLoader":
        """Keep the data on `device`, moved there once (batches then need no copy)."""
        self.device = torch.device(device)
        self.fields = [f.to(self.device) if isinstance(f, torch.Tensor) else f for f in self.fields]
        if self.subset is not None:
            self.subset = self.subset.to(self.device)
        return self

    def one_batch(self) -> Batch:
        """The first batch (fastai's `first(dl)`)."""
        return next(iter(self))

    def __repr__(self) -> str:
        shapes = ", ".join(
            f"{tuple(f.shape)} {str(f.dtype).removeprefix('torch.')}"
            if isinstance(f, torch.Tensor)
            else "list"
            for f in self.fields
        )
        items = f"{self.n} items" if self.subset is None else f"{self.n_items} of {self.n} items"
        return f"DataLoader({items} [{shapes}], bs={self.bs}, shuffle={self.shuffle}, {len(self)} batches)"


def _share(lo: int, hi: int, rank: int, world: int) -> tuple[int, int]:
    """Part `rank` of [lo, hi) cut into `world` parts as `tensor_split` cuts: the first get one more."""
    base, extra = divmod(hi - lo, world)
    start = lo + rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


class DataLoaders:
    """A training and a validation DataLoader, plus the class names the targets index."""

    def __init__(
        self,
        train: DataLoader,
        valid: DataLoader,
        classes: list[str] | None = None,
        input_format: InputFormat | dict | None = None,
    ) -> None:
        self.train, self.valid = train, valid
        self.classes = classes
        self.input_format = input_format

    @property
    def input_format(self) -> InputFormat | None:
        """How raw uint8 images become model inputs (see `dataset.InputFormat`); None for loaders
        made by hand from tensors."""
        return self._input_format

    @input_format.setter
    def input_format(self, value: InputFormat | dict | None) -> None:
        self._input_format = InputFormat.of(value)

    def __getitem__(self, i: int) -> DataLoader:
        return (self.train, self.valid)[i]

    def __iter__(self) -> Iterator[DataLoader]:
        return iter((self.train, self.valid))

    @property
    def device(self) -> torch.device | None:
        return self.train.device

    def to(self, device: str | torch.device) -> "DataLoaders":
        self.train.to(device)
        self.valid.to(device)
        return self

    def show_batch(self, n: int = 9, ncols: int | None = None):
        """The first `n` images of a training batch, titled by class; a matplotlib Figure.

        Inputs go back to images by undoing the input format (flattening, normalisation)."""
        from ..plots.charts import image_grid

        x, y = self.train.one_batch()[:2]
        x, y = x[:n].detach().float().cpu(), y[:n].reshape(-1).tolist()
        fmt = self.input_format
        if fmt:
            x = fmt.inverse(x)
        elif x.ndim == 4 and x.shape[1] == 1:  # (N, 1, H, W)
            x = x[:, 0]
        elif x.ndim == 2 and math.isqrt(x.shape[1]) ** 2 == x.shape[1]:  # flat square images
            x = x.reshape(len(x), math.isqrt(x.shape[1]), -1)
        elif x.ndim != 3:
            raise DigitlearnError(
                f"inputs of shape {tuple(x.shape[1:])} are not images: give the DataLoaders an input_format"
            )
        titles = [str(self.classes[int(c)]) if self.classes else str(c) for c in y]
        return image_grid(x, titles, ncols)

    def __repr__(self) -> str:
        classes = f"classes {', '.join(map(str, self.classes))}" if self.classes else "no class names"
        return f"DataLoaders(train: {self.train!r},\n            valid: {self.valid!r}, {classes})"
