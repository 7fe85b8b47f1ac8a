"""Writing files so that a crash or a bad input never leaves half of one behind."""

import glob
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _temp_name(dest: Path, suffix: str = "") -> Path:
    # beside dest, so the final rename is atomic; made by the writer with the usual umask
    # permissions (mkstemp's would make every result private to its owner). The writer's process
    # id is in the name, so a later writer can tell a dead one's leftovers from a live one's work.
    return dest.parent / f".{dest.name}.{os.getpid()}-{secrets.token_hex(6)}{suffix}.part"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_stale(dest: Path) -> None:
    """Delete the temporary files and folders that writers of `dest` killed mid-write left behind
    (kill -9, a power cut): those whose process is gone. A live writer's are left alone."""
    prefix = f".{dest.name}."
    for leftover in dest.parent.glob(f"{glob.escape(prefix)}*.part"):
        pid = leftover.name[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)


@contextmanager
def atomic_path(dest: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `dest`; rename it onto `dest` only if the block succeeds.

    `suffix` keeps an extension on the temporary name for writers that pick a format from it.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(dest)
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
    remove_stale(dest)
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
