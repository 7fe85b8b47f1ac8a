"""No moment loses a run: a kill or a Ctrl-C right after any rename, replace or unlink that
training a run does leaves a folder that `--resume` finishes, or a finished one, with the
weights of the run that was never stopped. And one process at a time writes a run folder.

The faults are injected around the operating system's own calls: each of `os.replace`,
`os.rename` and `os.unlink` under the run folder is counted, and right after the k-th one the
process is killed (SIGKILL, in a forked child) or sent SIGINT, as Ctrl-C would.
"""

import os
import signal
from collections.abc import Callable
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
import torch

from digitlearn import DigitlearnError, load_model, resume_run, train_run
from digitlearn.cli import main
from digitlearn.runs.checkpoint import unfinished
from digitlearn.runs.lock import run_lock
from tests.conftest import make_folder

OPS = ("replace", "rename", "unlink")
SETTINGS = {"model": "simple_net", "epochs": 2, "progress": False, "log": None}


@contextmanager
def fault_after(k: int, folder: Path, fault: Callable[[], None]):
    """Run `fault()` right after the k-th successful os.replace/rename/unlink of a path in
    `folder`; yields a list whose length is the number of such calls so far."""
    calls: list[str] = []
    real = {name: getattr(os, name) for name in OPS}

    def counted(name: str):
        def call(path, *args, **kwargs):
            result = real[name](path, *args, **kwargs)
            if str(folder) in os.fsdecode(path):
                calls.append(f"{name} {os.fsdecode(path)}")
                if len(calls) == k:
                    fault()
            return result

        return call

    for name in OPS:
        setattr(os, name, counted(name))
    try:
        yield calls
    finally:
        for name in OPS:
            setattr(os, name, real[name])


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_model(run)[0].state_dict()


@pytest.fixture(scope="module")
def one_thread():
    # the same arithmetic in the forked children, the resumed runs and the reference
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, one_thread) -> tuple[Path, dict, int]:
    """The data, the weights of a run never stopped, and how many calls training it makes."""
    root = tmp_path_factory.mktemp("faults")
    data = make_folder(root / "digits", n=40)
    with fault_after(0, root / "reference", lambda: None) as calls:
        train_run(data, out=root / "reference", **SETTINGS)
    return data, weights(root / "reference"), len(calls)


def finished_or_resumed(run: Path) -> dict[str, torch.Tensor]:
    """The weights the folder ends with: as it is when finished, else after `resume_run`."""
    if unfinished(run) is not None:
        resume_run(run, progress=False, log=None)
    assert unfinished(run) is None
    return weights(run)


def test_every_step_of_writing_a_run_is_counted(reference):
    assert reference[2] >= 10  # start, two epochs' checkpoints and histories, the finished files


def test_a_kill_after_any_rename_or_unlink_loses_nothing(reference, tmp_path):
    data, expected, n = reference
    for k in range(1, n + 1):
        run = tmp_path / f"killed-{k}"
        pid = os.fork()
        if pid == 0:  # the child trains until the k-th call, then dies at once
            try:
                with fault_after(k, run, lambda: os.kill(os.getpid(), signal.SIGKILL)):
                    train_run(data, out=run, **SETTINGS)
            finally:
                os._exit(3)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"call {k}: {status}"
        got = finished_or_resumed(run)  # the dead child's lock does not block the resume
        assert all(torch.equal(got[name], t) for name, t in expected.items()), f"after call {k}"


def test_a_ctrl_c_after_any_rename_or_unlink_loses_nothing(reference, tmp_path):
    data, expected, n = reference
    for k in range(1, n + 1):
        run = tmp_path / f"interrupted-{k}"
        # as Ctrl-C does: during the fit, training stops after the batch; elsewhere, at once
        with fault_after(k, run, lambda: signal.raise_signal(signal.SIGINT)), suppress(KeyboardInterrupt):
            train_run(data, out=run, **SETTINGS)
        got = finished_or_resumed(run)
        assert all(torch.equal(got[name], t) for name, t in expected.items()), f"after call {k}"


def test_a_second_writer_is_refused_while_the_first_runs(reference, tmp_path, capsys):
    data = reference[0]
    run = tmp_path / "busy"
    # Ctrl-C after the first epoch's checkpoint (the third call): a stopped, unfinished run
    with fault_after(3, run, lambda: signal.raise_signal(signal.SIGINT)):
        train_run(data, out=run, **SETTINGS)
    assert unfinished(run) is not None
    capsys.readouterr()  # what the stop said
    with run_lock(run):  # another process's training, as far as the lock can tell
        for argv in (
            ["train", "--data", str(data), "--out", str(run), "--quiet"],
            ["train", "--data", str(data), "--out", str(run), "--force", "--quiet"],
            ["train", "--resume", str(run), "--quiet"],
        ):
            assert main(argv) == 1
            err = capsys.readouterr().err.strip()
            assert err.startswith(
                f"digitlearn: error: {run} is being written by another digitlearn process (pid {os.getpid()})"
            ), err
            assert "\n" not in err
        with pytest.raises(DigitlearnError, match="being written by another"):
            train_run(data, out=tmp_path / "busy", force=True, **SETTINGS)
    train_run(data, out=run, force=True, **SETTINGS)  # released: the next writer goes ahead
