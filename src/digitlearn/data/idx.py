"""Datasets as IDX files, MNIST's own format: `train-images-idx3-ubyte[.gz]`, `t10k-labels-...`.

Each file's header is checked before anything is allocated, and only the bytes the header
announces are read (streamed from gzip), so a small file never inflates to gigabytes. Only
regular files are read: a FIFO named like an IDX file is refused without being opened.
"""

import contextlib
import gzip
import math
import os
import re
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image

from ..errors import DataError
from ..files import shown
from ..vision import images
from .folders import resized
from .formats import Reader, Size, SplitArrays, register_reader, regular_file
from .sources import expansion_limit

IDX_NAME = re.compile(r"^(train|t10k|test)-(images|labels)[.-]idx[13]-ubyte(\.gz)?$")
IDX_NDIM = {"images": 3, "labels": 1}  # the magic number is 0x08 (unsigned bytes) * 256 + ndim
MAX_IDX_BYTES = 2**30  # one IDX file's data: EMNIST ByClass, the largest MNIST-like set, is 0.55 GB
IDX_CHUNK = 1 << 20  # bytes inflated per read: gzip's scratch memory stays this small


def read_idx(path: Path, kind: str) -> torch.Tensor:
    """An IDX file (gzipped or not) of `kind` "images" (uint8 N,H,W) or "labels" (uint8 N).

    The header is checked before anything is allocated, then exactly the bytes it announces are
    read, and nothing may follow them.
    """
    regular_file(path)  # a FIFO named like an IDX file would block the read for ever
    try:
        with path.open("rb") as raw:
            gz = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            stored = os.fstat(raw.fileno()).st_size
            # streamed, never gzip.decompress: inflating stops at the size the header allows
            with gzip.GzipFile(fileobj=raw) if gz else contextlib.nullcontext(raw) as f:
                dims = _idx_dims(path, f, kind)
                _check_idx_size(path, dims, stored, gz)
                return _idx_data(path, f, dims)
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise DataError(f"{shown(path)}: corrupt or truncated gzip data ({e})") from None
    except OSError as e:
        raise DataError(f"{shown(path)}: cannot read it ({e.strerror or e})") from None


def _idx_dims(path: Path, f: BinaryIO, kind: str) -> list[int]:
    """The dimensions an IDX header announces: its magic number must say unsigned bytes in as
    many dimensions as `kind` has, and no dimension may be 0."""
    ndim = IDX_NDIM[kind]
    head = f.read(4 + 4 * ndim)
    magic = 0x800 + ndim
    if len(head) >= 4 and (got := int.from_bytes(head[:4], "big")) != magic:
        raise DataError(
            f"{shown(path)}: magic number {got}, expected {magic} for IDX {kind} "
            f"(unsigned bytes in {ndim} dimension{'s' * (ndim > 1)})"
        )
    if len(head) < 4 + 4 * ndim:
        raise DataError(f"{shown(path)}: {len(head)} bytes, too short for an IDX {kind} header")
    dims = [int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    if 0 in dims:
        raise DataError(f"{_announced(path, dims)}: no data (an empty split, or images of no pixels)")
    return dims


def _announced(path: Path, dims: list[int]) -> str:
    return f"{shown(path)}: header says {'x'.join(map(str, dims))} = {math.prod(dims):,} bytes of data"


def _check_idx_size(path: Path, dims: list[int], stored: int, gz: bool) -> None:
    """Refuse what the header announces if it is too large, or (uncompressed) not the file's length."""
    n, header = math.prod(dims), 4 + 4 * len(dims)
    if len(dims) == 3 and dims[1] * dims[2] > images.MAX_PIXELS:
        raise DataError(f"{_announced(path, dims)}: images of {dims[1]}x{dims[2]} are too large for digits")
    if n > MAX_IDX_BYTES:
        raise DataError(f"{_announced(path, dims)}, over the {MAX_IDX_BYTES:,} read from one IDX file")
    if gz and n > expansion_limit(stored, MAX_IDX_BYTES):
        raise DataError(
            f"{_announced(path, dims)}, too much for {stored:,} bytes of gzip (a decompression bomb?)"
        )
    if not gz and stored - header != n:
        raise DataError(f"{_announced(path, dims)}, but the file holds {max(stored - header, 0):,}")


def _idx_data(path: Path, f: BinaryIO, dims: list[int]) -> torch.Tensor:
    """Exactly the bytes the header announced, read in chunks; more after them is an error."""
    n = math.prod(dims)
    data = np.empty(n, np.uint8)  # its pages are committed as they fill: a short file costs no more
    view, got = memoryview(data), 0
    while got < n and (k := f.readinto(view[got : got + IDX_CHUNK])):
        got += k
    if got < n or f.read(1):
        raise DataError(f"{_announced(path, dims)}, but the file holds {f'{got:,}' if got < n else 'more'}")
    return torch.from_numpy(data).reshape(dims)


def _idx_files(root: Path) -> dict[tuple[str, str], Path]:
    found = {}
    for p in sorted(root.iterdir()):
        if m := IDX_NAME.match(p.name):
            split = "train" if m[1] == "train" else "valid"
            found.setdefault((split, m[2]), p)  # sorted: the plain file wins over .gz
    return found


def read_idx_folder(root: Path, size: Size | None = None) -> tuple[dict[str, SplitArrays], list[str]]:
    """Read train-* and t10k-* (or test-*) IDX image and label files from `root`."""
    files = _idx_files(root)
    splits = {}
    for split in ("train", "valid"):
        missing = [k for k in ("images", "labels") if (split, k) not in files]
        if missing:
            prefix = "train" if split == "train" else "t10k"
            raise DataError(f"{shown(root)}: no {prefix}-{missing[0]} IDX file")
        x = read_idx(files[split, "images"], "images")
        y = read_idx(files[split, "labels"], "labels")
        if len(x) != len(y):
            raise DataError(
                f"{shown(files[split, 'images'])} holds {tuple(x.shape)} images but "
                f"{shown(files[split, 'labels'])} holds {tuple(y.shape)} labels"
            )
        if size is not None and tuple(x.shape[1:]) != size:
            x = torch.from_numpy(np.stack([np.asarray(resized(Image.fromarray(a), size)) for a in x.numpy()]))
        y = y.long()
        # item names mirror the PNG layout's "<class>/<index>.png": "<class>/<index>"
        splits[split] = (x, y, [f"{c}/{i}" for i, c in enumerate(y.tolist())])
    _check_same_shape(files, splits)
    n_classes = int(max(y.max() for _, y, _ in splits.values())) + 1
    return splits, [str(i) for i in range(n_classes)]


def _check_same_shape(files: dict[tuple[str, str], Path], splits: dict[str, SplitArrays]) -> None:
    """Train and test images must share one size, as a folder's images must (or be resized to one)."""
    (h0, w0), (h1, w1) = (splits[s][0].shape[1:] for s in ("train", "valid"))
    if (h0, w0) != (h1, w1):
        raise DataError(
            f"images differ in size: {shown(files['train', 'images'])} holds {h0}x{w0}, "
            f"{shown(files['valid', 'images'])} holds {h1}x{w1}; ask for one size "
            "(size=(28, 28), --size 28) to resize them all"
        )


def find_idx(folder: Path) -> dict[tuple[str, str], Path] | None:
    """The IDX files of `folder`, if it holds some of both splits."""
    files = _idx_files(folder)
    return files if {k for k, _ in files} == {"train", "valid"} else None


register_reader(Reader("idx", find_idx, lambda folder, found, size: read_idx_folder(folder, size), order=10))
