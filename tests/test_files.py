"""Atomic writes: a file or folder appears whole or not at all."""

import os
import subprocess
from pathlib import Path

import pytest

from digitlearn.files import atomic_dir, atomic_path


def current_umask() -> int:
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def test_atomic_path_renames_only_on_success(tmp_path):
    dest = tmp_path / "out.bin"
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    with atomic_path(dest, suffix=".png") as tmp:
        assert tmp.name.endswith(".png.part")
        tmp.write_bytes(b"whole")
    assert dest.read_bytes() == b"whole" and list(tmp_path.iterdir()) == [dest]
    assert dest.stat().st_mode & 0o777 == 0o666 & ~current_umask()  # not private like mkstemp's


def test_atomic_dir_keeps_a_folder_another_process_finished_first(tmp_path):
    dest = tmp_path / "data"
    with atomic_dir(dest) as staging:
        (staging / "ours").write_text("x")
        dest.mkdir()  # someone else got there first
        (dest / "theirs").write_text("y")
    assert [p.name for p in dest.iterdir()] == ["theirs"]
    assert [p.name for p in tmp_path.iterdir()] == ["data"]
    with pytest.raises(ValueError), atomic_dir(tmp_path / "never") as staging:
        (staging / "f").write_text("x")
        raise ValueError
    assert not (tmp_path / "never").exists()
    with atomic_dir(tmp_path / "shared") as staging:
        pass
    assert (tmp_path / "shared").stat().st_mode & 0o777 == 0o777 & ~current_umask()


def test_atomic_dir_replace_swaps_a_whole_folder(tmp_path):
    dest = tmp_path / "run"
    dest.mkdir()
    (dest / "old").write_text("x")
    with pytest.raises(ValueError), atomic_dir(dest, replace=True) as staging:
        (staging / "new").write_text("y")
        raise ValueError
    assert [p.name for p in dest.iterdir()] == ["old"]  # a failed write keeps the old folder
    with atomic_dir(dest, replace=True) as staging:
        (staging / "new").write_text("y")
    assert [p.name for p in dest.iterdir()] == ["new"]
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no leftovers beside it


def dead_pid() -> int:
    """The process id of a process that has exited (and been reaped)."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def leftover(dest: Path, pid: int, folder: bool = False) -> Path:
    """What a writer of `dest` with process id `pid` leaves if killed mid-write."""
    part = dest.parent / f".{dest.name}.{pid}-0123456789ab.part"
    if folder:
        (part / "half").mkdir(parents=True)
    else:
        part.write_bytes(b"half")
    return part


def test_leftovers_of_killed_writers_are_removed_by_the_next_write(tmp_path):
    dead = dead_pid()
    gone = [
        leftover(tmp_path / "data", dead, folder=True),
        leftover(tmp_path / "old-name", dead),  # a name nobody writes again: swept all the same
        leftover(tmp_path / "x", 10**30),  # no process can have that id
    ]
    live = leftover(tmp_path / "data", os.getpid())  # a writer at work: left alone
    unrelated = tmp_path / ".data.notes.part"
    unrelated.write_text("x")
    with atomic_dir(tmp_path / "data"):
        pass
    assert not any(p.exists() for p in gone)
    assert live.exists() and unrelated.exists()
