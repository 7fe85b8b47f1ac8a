"""Writing files so that a crash or a bad input never leaves half of one behind."""

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _temp_name(dest: Path, suffix: str = "") -> Path:
    # beside dest, so the final rename is atomic; made by the writer with the usual umask
    # permissions (mkstemp's would make every result private to its owner)
    return dest.parent / f".{dest.name}.{secrets.token_hex(6)}{suffix}.part"


@contextmanager
def atomic_path(dest: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `dest`; rename it onto `dest` only if the block succeeds.

    `suffix` keeps an extension on the temporary name for writers that pick a format from it.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(dest, suffix)
    try:
        yield tmp
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_dir(dest: str | os.PathLike, replace: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside `dest`; rename it to `dest` only if the block succeeds.

    If `dest` exists by then (say, another process finished the same folder first), theirs is
    kept and ours discarded, unless `replace`: then the old folder is swapped out and deleted.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(dest)
    tmp.mkdir()
    try:
        yield tmp
        if replace and dest.is_dir():
            old = _temp_name(dest, ".old")
            os.replace(
                dest, old
            )  # dest is never half-written: the old folder, then (briefly) none, then ours
            try:
                os.replace(tmp, dest)
            except OSError:
                os.replace(old, dest)
                raise
            shutil.rmtree(old, ignore_errors=True)
            return
        try:
            os.replace(tmp, dest)
        except OSError:
            if not dest.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
