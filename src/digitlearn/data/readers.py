"""Decode a dataset on disk into one uint8 tensor per split, its labels and class names.

Understood layouts (found at the given folder or inside its single subfolder):
  - fastai-style class folders: `train/valid/<class>/`, `training/testing/<class>/`, `train/test/<class>/`
  - a folder of IDX files (`train-images-idx3-ubyte[.gz]`, `t10k-labels-idx1-ubyte[.gz]`, ...)
  - an archive (.tgz/.tar.gz/.tar/.zip) of either, extracted once into the cache.

Image folders are decoded in parallel on every core and the result is cached as a
safetensors file next to the data (or under the cache home when that folder is read-only),
keyed by a fingerprint of every file's name, size and mtime. File and folder names that are not
UTF-8 are read all the same, and shown (class names, item names, errors) with \\xNN escapes.

IDX files are checked from their header before anything is allocated, and only the bytes the
header announces are read (streamed from gzip), so a small file never inflates to gigabytes.
"""

import contextlib
import gzip
import hashlib
import json
import math
import multiprocessing
import os
import re
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image
from safetensors import SafetensorError, safe_open
from safetensors.torch import load, save_file
from tqdm import tqdm  # not tqdm.auto: without ipywidgets it warns in notebooks, for no gain

from ..errors import DataError
from ..files import atomic_dir, atomic_path, remove_stale, shown
from ..vision import images
from .sources import ARCHIVE_SUFFIXES, cache_home, expansion_limit, extract_archive

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
SPLIT_LAYOUTS = (("train", "valid"), ("training", "testing"), ("train", "test"))
IDX_NAME = re.compile(r"^(train|t10k|test)-(images|labels)[.-]idx[13]-ubyte(\.gz)?$")
IDX_NDIM = {"images": 3, "labels": 1}  # the magic number is 0x08 (unsigned bytes) * 256 + ndim
MAX_IDX_BYTES = 2**30  # one IDX file's data: EMNIST ByClass, the largest MNIST-like set, is 0.55 GB
IDX_CHUNK = 1 << 20  # bytes inflated per read: gzip's scratch memory stays this small
CACHE_FORMAT = "digitlearn-cache-1"
IMAGES_PER_TASK = 2048  # big enough to hide the pool's overhead

# (x uint8 (N, H, W), y int64 (N,), item names); readers return one per split: "train", "valid"
SplitArrays = tuple[torch.Tensor, torch.Tensor, list[str]]
Size = tuple[int, int]


def natural_key(name: str) -> list:
    """Sort key that orders '2' before '10' (class names sort as digits sort)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def resized(gray: Image.Image, size: Size | None) -> Image.Image:
    """`gray` at `size` (height, width); unchanged when no size is asked for or it already fits."""
    if size is None or gray.size == (size[1], size[0]):
        return gray
    return gray.resize((size[1], size[0]), Image.Resampling.BILINEAR)


def read_image(path: str | os.PathLike, size: Size | None = None) -> np.ndarray:
    """One image file as a uint8 (H, W) array, resized to `size` (height, width) if given.

    Opened as every image is (`images.open_image`: known formats only, size checked before
    decoding); transparent pixels are background, MNIST's black, so ink on a transparent canvas
    stays ink.
    """
    gray = np.round(images.read_gray(path, background=0.0) * 255).astype(np.uint8)
    if size is None or gray.shape == tuple(size):
        return gray
    return np.asarray(resized(Image.fromarray(gray), size))


def _decode_chunk(task: tuple[list[str], Size | None]) -> tuple[np.ndarray | None, list, str | None]:
    """Worker: decode a list of files into (stacked images if all one size, shapes, error)."""
    paths, size = task
    arrays = []
    for p in paths:
        try:
            arrays.append(read_image(p, size))
        except images.ImageError as e:  # it names the file
            return None, [], str(e)
        except Exception as e:  # a failure images does not know yet: still say which file and why
            return None, [], f"{p}: {type(e).__name__}: {e}"
    shapes = [a.shape for a in arrays]
    return (np.stack(arrays) if len(set(shapes)) == 1 else None), shapes, None


def _workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def decode_images(paths: list[str], size: Size | None = None, desc: str = "decoding") -> torch.Tensor:
    """Decode image files into one uint8 (N, H, W) tensor, in parallel on every core.

    Without `size`, all images must share one size; otherwise the error names two files.
    """
    if not paths:
        return torch.empty(0, *(size or (0, 0)), dtype=torch.uint8)
    tasks = [(paths[i : i + IMAGES_PER_TASK], size) for i in range(0, len(paths), IMAGES_PER_TASK)]
    n_workers = min(_workers(), len(tasks))
    if n_workers > 1:
        # fork is cheap and the workers need nothing but PIL and NumPy
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
        with ProcessPoolExecutor(n_workers, mp_context=ctx) as pool:
            results = list(
                tqdm(
                    pool.map(_decode_chunk, tasks),
                    total=len(tasks),
                    desc=desc,
                    unit="chunk",
                    disable=None,
                    leave=False,
                )
            )
    else:
        results = [_decode_chunk(t) for t in tasks]
    for _, _, error in results:
        if error:
            raise DataError(f"cannot read image {shown(error)}")
    shapes = [s for _, chunk_shapes, _ in results for s in chunk_shapes]
    odd = next((i for i, s in enumerate(shapes) if s != shapes[0]), None)
    if odd is not None:
        (h0, w0), (h1, w1) = shapes[0], shapes[odd]
        raise DataError(
            f"images differ in size: {shown(paths[0])} is {h0}x{w0}, {shown(paths[odd])} is "
            f"{h1}x{w1}; ask for one size (size=(28, 28), --size 28) to resize them all"
        )
    return torch.from_numpy(np.concatenate([data for data, _, _ in results]))


# ---------------------------------------------------------------- image folders


def _visible(entry: os.DirEntry) -> bool:
    return not entry.name.startswith(".") and entry.name != "__MACOSX"


def _list_split(split_dir: Path) -> dict[str, list[os.DirEntry]]:
    """Class name (as `shown`) -> image files of one split, files in name order (as fastai's
    `ls().sorted()`)."""
    classes = {}
    with os.scandir(split_dir) as it:
        class_dirs = [e for e in it if e.is_dir() and _visible(e)]
    for d in class_dirs:
        with os.scandir(d.path) as it:
            files = [e for e in it if e.name.lower().endswith(IMAGE_SUFFIXES) and _visible(e) and e.is_file()]
        if not files:
            raise DataError(f"class folder {shown(d.path)} holds no images")
        name = shown(d.name)
        if name in classes:  # a folder named with the 4 characters \xff, beside the byte 0xff
            raise DataError(f"{shown(split_dir)}: two class folders are both shown as {name!r}")
        classes[name] = sorted(files, key=lambda e: e.name)
    if not classes:
        raise DataError(
            f"{shown(split_dir)} has no class folders (expected {shown(split_dir)}/<class>/<image>)"
        )
    return classes


def read_image_folder(
    root: Path, layout: tuple[str, str], size: Size | None = None
) -> tuple[dict[str, SplitArrays], list[str]]:
    """Read `root/<train>/<class>/*` and `root/<valid>/<class>/*`, through the decode cache."""
    listing = {
        split: _list_split(root / folder) for split, folder in zip(("train", "valid"), layout, strict=True)
    }
    classes = sorted({c for per_class in listing.values() for c in per_class}, key=natural_key)
    # every split's items in dataset order: grouped by class, in name order within a class
    items = {
        split: [(i, e) for i, c in enumerate(classes) for e in per_class.get(c, [])]
        for split, per_class in listing.items()
    }
    h = hashlib.sha256(f"{CACHE_FORMAT} {layout} {size}".encode())
    for split, entries in items.items():
        for i, e in entries:
            st = e.stat()
            line = f"{split}/{classes[i]}/{e.name} {st.st_size} {st.st_mtime_ns}\n"
            h.update(line.encode(errors="surrogateescape"))  # the name's bytes, UTF-8 or not
    fingerprint = h.hexdigest()
    tag = "native" if size is None else f"{size[0]}x{size[1]}"
    places = [
        root / f".digitlearn-cache-{tag}.safetensors",
        cache_home() / "cache" / f"{hashlib.sha256(os.fsencode(root.resolve())).hexdigest()[:16]}"
        f"-{tag}.safetensors",
    ]
    for place in places:
        if (cached := _load_cache(place, fingerprint)) is not None:
            remove_stale(place)  # what a run killed while writing it left behind
            return cached

    paths = [e.path for entries in items.values() for _, e in entries]
    x = decode_images(paths, size, desc=f"decoding {shown(root.name)}")
    xs = torch.split(x, [len(entries) for entries in items.values()])
    result = {
        split: (
            xi.contiguous(),
            torch.tensor([i for i, _ in entries], dtype=torch.int64),
            [f"{classes[i]}/{shown(e.name)}" for i, e in entries],
        )
        for (split, entries), xi in zip(items.items(), xs, strict=True)
    }
    for place in places:
        try:
            _save_cache(place, fingerprint, result, classes)
            break
        except OSError:  # a read-only data folder: fall back to the cache home
            continue
    return result, classes


def _load_cache(path: Path, fingerprint: str) -> tuple[dict[str, SplitArrays], list[str]] | None:
    if not path.is_file():
        return None
    try:
        with safe_open(path, framework="pt") as f:  # reads only the header
            meta = f.metadata() or {}
        if meta.get("format") != CACHE_FORMAT or meta.get("fingerprint") != fingerprint:
            return None
        # one read into memory: tensors mapped from the file would fault pages in on first use
        # and crash if the file were truncated under them
        tensors = load(path.read_bytes())
        splits = {
            s: (tensors[f"{s}_x"], tensors[f"{s}_y"], json.loads(meta[f"{s}_names"]))
            for s in ("train", "valid")
        }
        return splits, json.loads(meta["classes"])
    except (OSError, SafetensorError, ValueError, KeyError):
        return None  # a damaged cache is only a cache: decode again and rewrite it


def _save_cache(path: Path, fingerprint: str, splits: dict[str, SplitArrays], classes: list[str]) -> None:
    tensors, meta = {}, {"format": CACHE_FORMAT, "fingerprint": fingerprint, "classes": json.dumps(classes)}
    for s, (x, y, names) in splits.items():
        tensors[f"{s}_x"], tensors[f"{s}_y"] = x, y
        meta[f"{s}_names"] = json.dumps(names)
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=meta)


# ---------------------------------------------------------------- IDX files


def read_idx(path: Path, kind: str) -> torch.Tensor:
    """An IDX file (gzipped or not) of `kind` "images" (uint8 N,H,W) or "labels" (uint8 N).

    The header is checked before anything is allocated, then exactly the bytes it announces are
    read, and nothing may follow them.
    """
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


# ---------------------------------------------------------------- any source on disk


def _find_layout(folder: Path) -> tuple[str, str] | str | None:
    if {k for k, _ in _idx_files(folder)} == {"train", "valid"}:
        return "idx"
    for layout in SPLIT_LAYOUTS:
        if all((folder / d).is_dir() for d in layout):
            return layout
    return None


def read_path(path: Path, size: Size | None = None) -> tuple[dict[str, SplitArrays], list[str]]:
    """Read a dataset folder or archive in any understood layout."""
    if not path.exists():
        raise DataError(f"no such file or folder: {shown(path)}")
    if path.is_file():
        if not path.name.lower().endswith(ARCHIVE_SUFFIXES):
            raise DataError(f"{shown(path)} is not a folder or an archive ({', '.join(ARCHIVE_SUFFIXES)})")
        path = _extracted(path)
    folder = path
    for _ in range(3):  # archives usually wrap the dataset in one top folder
        layout = _find_layout(folder)
        if layout == "idx":
            return read_idx_folder(folder, size)
        if layout:
            return read_image_folder(folder, layout, size)
        subdirs = [e for e in os.scandir(folder) if e.is_dir() and _visible(e)]
        if len(subdirs) != 1:
            break
        folder = Path(subdirs[0].path)
    raise DataError(
        f"{shown(path)}: no dataset found (expected train/ and valid/ class folders, "
        "training/ and testing/, train/ and test/, or MNIST IDX files)"
    )


def _extracted(archive: Path) -> Path:
    """Extract a user's archive once into the cache; later loads reuse the extracted folder."""
    st = archive.stat()
    key = hashlib.sha256(
        b"%s %d %d" % (os.fsencode(archive.resolve()), st.st_size, st.st_mtime_ns)
    ).hexdigest()
    stem = re.sub(r"(\.tar\.gz|\.tgz|\.tar|\.zip)$", "", archive.name, flags=re.I)
    target = cache_home() / "extracted" / f"{stem}-{key[:12]}"
    if target.is_dir():
        remove_stale(target)  # what runs killed mid-extraction left, of this or older archives
    else:
        with atomic_dir(target) as staging:
            extract_archive(archive, staging)
    return target
