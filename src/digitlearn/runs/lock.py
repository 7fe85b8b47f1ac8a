"""One writer per run folder: an OS file lock, held while a run is trained or resumed.

The lock is `flock` on the folder's `.lock` file. The kernel releases it when the process ends,
however it ends, so a lock left by a dead process never blocks; the file stays, and holds the
last writer's pid for the message a second writer gets.
"""

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import DigitlearnError

LOCK = ".lock"


@contextmanager
def run_lock(out: str | os.PathLike, create: bool = False) -> Iterator[bool]:
    """Hold the run folder `out` for this process, or refuse in one line if another holds it.

    With `create`, a folder that is not there is made (atomically: of two processes, one makes
    it). Yields whether this call made it."""
    out = Path(out)
    made = False
    if create:
        try:
            out.mkdir(parents=True)
            made = True
        except FileExistsError:
            pass
    if not out.is_dir():
        raise DigitlearnError(f"{out} is not a folder: a run is a folder")
    fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise DigitlearnError(
                f"{out} is being written by another digitlearn process (pid {holder}): "
                "wait for it to finish, or stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield made
    finally:
        os.close(fd)  # and with it the lock
