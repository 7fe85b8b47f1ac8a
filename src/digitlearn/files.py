"""Writing files so that a crash or a bad input never leaves half of one behind, and showing
file names, whatever bytes they hold, in one printable line."""

import hashlib
import os
import re
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


# what _temp_name makes, for any dest and suffix: the writer's process id is group 1
_TEMP_NAME = re.compile(r"\..+\.(\d+)-[0-9a-f]{12}.*\.part", re.DOTALL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # gone, or a number no process can have
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_stale(dest: Path) -> None:
    """Delete the temporary files and folders that writers killed mid-write (kill -9, a power cut)
    left beside `dest`: those whose process is gone. A live writer's are left alone.

    Every writer's in the folder, not only those of `dest`: a leftover for a name nobody writes
    again (an archive extracted under a key that has since changed) would otherwise stay forever.
    """
    try:
        entries = list(os.scandir(dest.parent))
    except OSError:  # no folder yet, or one we may not list: nothing of ours to remove
        return
    for entry in entries:
        match = _TEMP_NAME.fullmatch(entry.name)
        if match is None or _alive(int(match[1])):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:  # a read-only folder, or another process removed it first: not ours to fix
            continue


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


def checksum(text: str, tensors: dict) -> str:
    """sha256 of a safetensors file's JSON text and every tensor's name, dtype, shape and bytes:
    what a checkpoint and a weights file carry, so that flipped bytes anywhere show on reading."""
    import torch  # the caller, holding tensors, has loaded it already

    h = hashlib.sha256(text.encode())
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def shown(name: str | os.PathLike) -> str:
    """A file name as an error or a label shows it: one printable line of valid UTF-8.

    Linux names are bytes: those that are not UTF-8 reach Python as lone surrogates
    (surrogateescape), which printing, JSON or safetensors metadata would choke on. They are shown
    as \\xNN escapes, and control characters (a newline in a name) as escapes too.
    """
    return "".join(map(_shown_char, os.fsdecode(name)))


def _shown_char(c: str) -> str:
    if "\udc80" <= c <= "\udcff":  # a byte that is not UTF-8, as surrogateescape decoded it
        return f"\\x{ord(c) - 0xDC00:02x}"
    return c if c.isprintable() else repr(c)[1:-1]
