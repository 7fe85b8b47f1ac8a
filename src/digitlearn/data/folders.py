"""Datasets as fastai-style class folders: `train/<class>/<image>` and `valid/<class>/<image>`
(or training/testing, train/test), decoded in parallel on every core and cached.

The decoded images are cached as a safetensors file next to the data (or under the cache home
when that folder is read-only), keyed by a fingerprint of every file's name, size and mtime.
File and folder names that are not UTF-8 are read all the same, and shown (class names, item
names, errors) with \\xNN escapes. Only regular files are read: a FIFO, socket or device named
like an image is refused without being opened.
"""

import hashlib
import json
import multiprocessing
import os
import stat
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors import SafetensorError, safe_open
from safetensors.torch import load, save_file
from tqdm import tqdm  # not tqdm.auto: without ipywidgets it warns in notebooks, for no gain

from ..errors import DataError
from ..files import atomic_path, remove_stale, shown
from ..hardware import usable_cores
from ..vision import images
from .formats import Reader, Size, SplitArrays, natural_key, register_reader, regular_file, visible
from .sources import cache_home

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
SPLIT_LAYOUTS = (("train", "valid"), ("training", "testing"), ("train", "test"))
CACHE_FORMAT = "digitlearn-cache-1"
IMAGES_PER_TASK = 2048  # big enough to hide the pool's overhead


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


def decode_images(
    paths: list[str],
    size: Size | None = None,
    desc: str = "decoding",
    workers: int | None = None,
    per_task: int = IMAGES_PER_TASK,
) -> torch.Tensor:
    """Decode image files into one uint8 (N, H, W) tensor, in parallel on `workers` processes
    (default: every core), `per_task` files at a time.

    Without `size`, all images must share one size; otherwise the error names two files.
    """
    if not paths:
        return torch.empty(0, *(size or (0, 0)), dtype=torch.uint8)
    tasks = [(paths[i : i + per_task], size) for i in range(0, len(paths), per_task)]
    n_workers = min(workers or usable_cores(), len(tasks))
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


def _image_files(class_dir: str) -> list[os.DirEntry]:
    """The files of a class folder named like images. A FIFO, socket or device so named is
    refused unopened (it would block the decoder for ever, or never end); a folder so named, or a
    broken link, holds no image and is skipped."""
    found = []
    with os.scandir(class_dir) as it:
        named = [e for e in it if e.name.lower().endswith(IMAGE_SUFFIXES) and visible(e)]
    for e in named:
        try:
            mode = e.stat().st_mode  # kept by the entry: the cache's fingerprint reads it again
        except FileNotFoundError:
            continue
        if not stat.S_ISDIR(mode):
            regular_file(e.path, mode)
            found.append(e)
    return found


def _list_split(split_dir: Path) -> dict[str, list[os.DirEntry]]:
    """Class name (as `shown`) -> image files of one split, files in name order (as fastai's
    `ls().sorted()`)."""
    classes = {}
    with os.scandir(split_dir) as it:
        class_dirs = [e for e in it if e.is_dir() and visible(e)]
    for d in class_dirs:
        files = _image_files(d.path)
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


def find_layout(folder: Path) -> tuple[str, str] | None:
    """The pair of split folders `folder` holds, in the first layout it matches."""
    return next((layout for layout in SPLIT_LAYOUTS if all((folder / d).is_dir() for d in layout)), None)


register_reader(Reader("folders", find_layout, read_image_folder, order=20))
