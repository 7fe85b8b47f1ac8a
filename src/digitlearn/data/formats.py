"""Reading a dataset on disk: one reader per format, each registered where it is written.

    register_reader(Reader("idx", finds=..., read=..., order=10))

A reader says whether it recognises a folder (`finds`, which returns what it found there, or
None) and reads it into one uint8 tensor per split, its labels and class names (`read`).
`read_path` asks the registered readers in turn (`readers()`: lowest `order` first), at the given
folder and inside a single subfolder (archives usually wrap a dataset in one top folder); an
archive is extracted first. The readers that ship are `idx` (MNIST's IDX files), `folders`
(fastai-style class folders) and `archives` (.tgz, .tar, .zip of either); a new format is one
module here that registers its reader, with no edit to this dispatch: every module of this
folder is imported before the first read.
"""

import importlib
import os
import pkgutil
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import DataError
from ..files import shown

# (x uint8 (N, H, W), y int64 (N,), item names); readers return one per split: "train", "valid"
SplitArrays = tuple[torch.Tensor, torch.Tensor, list[str]]
Size = tuple[int, int]
Splits = tuple[dict[str, SplitArrays], list[str]]


@dataclass(frozen=True)
class Reader:
    """A dataset format: `finds(folder)` returns what it recognises there (or None), and
    `read(folder, found, size)` the splits and class names. `files`, for a reader of single
    files (an archive), is the suffixes it takes: `finds` and `read` then get the file."""

    name: str
    finds: Callable[[Path], Any]
    read: Callable[[Path, Any, Size | None], Splits]
    files: tuple[str, ...] = ()
    # where two readers find a dataset in one folder, the lower order reads it: IDX files (10)
    # before class folders (20), as ever; a new format comes after them unless it says otherwise
    order: int = 100


READERS: dict[str, Reader] = {}
_discovered = False


def register_reader(reader: Reader) -> Reader:
    """Make `reader` one of the formats `load_dataset` reads (replacing one of the same name)."""
    READERS[reader.name] = reader
    return reader


def unregister_reader(name: str) -> None:
    """Forget the reader called `name` (a test's own format, once the test is done)."""
    READERS.pop(name, None)


def readers() -> tuple[Reader, ...]:
    """Every registered reader, in the order `read_path` asks them."""
    _discover()
    return tuple(sorted(READERS.values(), key=lambda r: r.order))  # stable: ties keep registration


def _discover() -> None:
    """Import every module of this folder once, so that each registers the reader it defines."""
    global _discovered
    if not _discovered:
        for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
            importlib.import_module(f"{__package__}.{module.name}")
        _discovered = True


def natural_key(name: str) -> list:
    """Sort key that orders '2' before '10' (class names sort as digits sort)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def visible(entry: os.DirEntry) -> bool:
    """Not hidden, nor the __MACOSX folder macOS adds to the zips it makes."""
    return not entry.name.startswith(".") and entry.name != "__MACOSX"


_KINDS = {
    stat.S_IFDIR: "a folder",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a device",
    stat.S_IFBLK: "a device",
}


def regular_file(path: str | os.PathLike, mode: int | None = None) -> None:
    """Refuse, without opening it, a path that is not a regular file: a FIFO would block the
    reader for ever, a device would read without end. `mode` is its `st_mode`, if already known."""
    try:
        mode = os.stat(path).st_mode if mode is None else mode
    except OSError as e:  # a broken link, a folder we may not enter
        raise DataError(f"{shown(path)}: cannot read it ({e.strerror or e})") from None
    if not stat.S_ISREG(mode):
        kind = _KINDS.get(stat.S_IFMT(mode), "of an odd kind")
        raise DataError(f"{shown(path)} is {kind}, not a file: only files are read as data")


def read_path(path: Path, size: Size | None = None) -> Splits:
    """Read a dataset folder or archive in any registered format."""
    if not path.exists():
        raise DataError(f"no such file or folder: {shown(path)}")
    if not path.is_dir():
        regular_file(path)
        for reader in readers():
            takes = reader.files and path.name.lower().endswith(reader.files)
            if takes and (found := reader.finds(path)) is not None:
                return reader.read(path, found, size)
        suffixes = ", ".join(s for r in readers() for s in r.files)
        raise DataError(f"{shown(path)} is not a folder or an archive ({suffixes})")
    folder = path
    for _ in range(3):  # archives usually wrap the dataset in one top folder
        for reader in readers():
            if not reader.files and (found := reader.finds(folder)) is not None:
                return reader.read(folder, found, size)
        with os.scandir(folder) as it:
            subdirs = [e for e in it if e.is_dir() and visible(e)]
        if len(subdirs) != 1:
            break
        folder = Path(subdirs[0].path)
    raise DataError(
        f"{shown(path)}: no dataset found (expected train/ and valid/ class folders, "
        "training/ and testing/, train/ and test/, or MNIST IDX files)"
    )
