"""Checkpoints and exact resume: a run killed at any moment goes on to the very weights and
history figures of the same run never interrupted."""

import csv
import functools
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from torch import nn

from digitlearn import DigitlearnError, Learner
from digitlearn.cli import main
from digitlearn.data.loaders import DataLoader, DataLoaders
from digitlearn.runs.checkpoint import CHECKPOINT
from digitlearn.runs.folder import check_run_dir, is_run_folder
from digitlearn.runs.model import read_config
from digitlearn.training import (
    Augment,
    Callback,
    CancelFitException,
    EarlyStopping,
    SaveBestModel,
    SkipLearned,
    whiten_first_conv,
)
from digitlearn.training.losses import cross_entropy, mnist_loss
from digitlearn.training.metrics import accuracy
from digitlearn.training.optim import Adam

from .conftest import make_folder

# a run whose every epoch draws on random state: the shuffle, one-cycle's position, the optimizer's
# moments, and SkipLearned's choice of examples
ARGS = ["--data", "mnist_sample", "--epochs", "12", "--opt", "adam", "--one-cycle", "--skip-learned", "0.9"]
ARGS += ["--bs", "128", "--quiet", "--threads", "1"]


def train(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "digitlearn", "train", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def figures(run) -> list[list[str]]:
    """history.csv without the time column: what must repeat exactly."""
    with (run / "history.csv").open() as f:
        return [row[:-1] for row in csv.reader(f)]


# mutation testing (tools/mutation.py) skips it: its training runs in child processes, which import
# the package itself rather than the mutant under test, and it would add 14 s to each mutant's run
@pytest.mark.skipif("MUTANT_UNDER_TEST" in os.environ, reason="its training is in child processes")
def test_a_run_killed_mid_training_resumes_to_identical_weights(mirror, tmp_path, capsys):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    reference = train(*ARGS, "--out", str(whole))
    victim = train(*ARGS, "--out", str(killed))
    history = killed / "history.csv"
    deadline = time.monotonic() + 120
    while not (history.is_file() and len(history.read_text().splitlines()) >= 3):  # 2 epochs done
        assert victim.poll() is None and time.monotonic() < deadline, victim.stderr.read()
        time.sleep(0.01)
    victim.kill()  # SIGKILL: no handler runs, wherever in the epoch (or the checkpoint write) it is
    victim.communicate()
    assert (killed / CHECKPOINT).is_file() and not (killed / "config.json").exists()

    # an unfinished run is not a model: one clear line from predict (and evaluate, serve...)
    assert main(["predict", str(killed), str(tmp_path / "digit.png")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"digitlearn: error: {killed} is an unfinished run (epoch ")
    assert err.endswith(f" of 12): resume it with digitlearn train --resume {killed}\n")

    resumed = train("--resume", str(killed), "--quiet", "--threads", "1")
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert out.startswith(f"resuming {killed} at epoch ")
    assert reference.wait(timeout=120) == 0
    assert (killed / "weights.safetensors").read_bytes() == (whole / "weights.safetensors").read_bytes()
    assert figures(killed) == figures(whole) and len(figures(whole)) == 13
    assert sorted(p.name for p in killed.iterdir()) == sorted(p.name for p in whole.iterdir())
    assert read_config(killed)["results"] == read_config(whole)["results"]


def make_learner() -> Learner:
    """A small CNN with dropout, augmentation and SkipLearned, shuffled by its own generator."""
    torch.manual_seed(0)
    x = torch.randn(96, 1, 8, 8)
    y = (x.mean((1, 2, 3)) > 0).long()
    train_dl = DataLoader(x[:64], y[:64], bs=16, shuffle=True, generator=torch.Generator().manual_seed(1))
    dls = DataLoaders(train_dl, DataLoader(x[64:], y[64:], bs=32))
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Dropout(0.3), nn.Flatten(), nn.Linear(144, 2))
    cbs = [Augment(fill=0.0), SkipLearned(0.8)]
    opt = functools.partial(Adam, wd=0.01)
    return Learner(dls, model, opt, cross_entropy, accuracy, cbs=cbs, progress=False)


class SaveAt(Callback):
    order = 70

    def __init__(self, path, epoch: int) -> None:
        self.path, self.epoch = path, epoch

    def after_epoch(self, learn: Learner) -> None:
        if learn.epoch == self.epoch:
            learn.save_checkpoint(self.path, {"note": "mid-fit"})


def test_save_and_load_checkpoint_in_python_repeat_the_fit_exactly(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    whole = make_learner()
    whole.fit_one_cycle(4, 0.02, cbs=[SaveAt(path, 1)])

    resumed = make_learner()
    torch.manual_seed(123)  # whatever happened to the generators since, the checkpoint's come back
    assert resumed.load_checkpoint(path) == {"note": "mid-fit"}
    resumed.fit_one_cycle(4, 0.02)  # goes on from epoch 2: the schedule where it was
    for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    drop_time = [{k: v for k, v in row.items() if k != "time"} for row in whole.recorder.history]
    assert [{k: v for k, v in r.items() if k != "time"} for r in resumed.recorder.history] == drop_time
    assert resumed.recorder.lrs == whole.recorder.lrs and resumed.recorder.losses == whole.recorder.losses


def test_a_model_with_a_frozen_whitened_first_layer_resumes_exactly(tmp_path):
    def whitened() -> Learner:
        learn = make_learner()
        images = torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(5))
        whiten_first_conv(learn.model, images)  # 4 filters from 3x3 patches, frozen
        return learn

    path = tmp_path / "ckpt.safetensors"
    whole = whitened()
    whole.fit_one_cycle(3, 0.02, cbs=[SaveAt(path, 0)])
    resumed = whitened()
    resumed.load_checkpoint(path)
    resumed.fit_one_cycle(3, 0.02)
    for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert not resumed.model[0].weight.requires_grad


def test_start_epoch_continues_the_schedule():
    whole = make_learner()
    whole.fit_one_cycle(4, 0.02)
    later = make_learner()
    later.fit_one_cycle(4, 0.02, start_epoch=2)
    half = len(whole.recorder.lrs) // 2
    assert later.recorder.lrs == pytest.approx(whole.recorder.lrs[half:])
    assert [row["epoch"] for row in later.recorder.history] == [2, 3]


def test_an_unfinished_run_folder_is_a_run_but_not_a_model(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    learn = make_learner()
    learn.n_epoch = 10
    learn.save_checkpoint(run / CHECKPOINT)
    # what a writer killed mid-write leaves (its process is gone) does not make it someone else's
    (run / f".{CHECKPOINT}.999999999-0123456789ab.part").write_bytes(b"half")
    assert is_run_folder(run) and check_run_dir(run, replace=True) == run
    with pytest.raises(DigitlearnError, match=r"unfinished run \(epoch 0 of 10\): resume it with"):
        read_config(run)
    with pytest.raises(DigitlearnError, match="not a digitlearn checkpoint"):
        (tmp_path / "other.safetensors").write_bytes(b"\x08" + b"\0" * 7 + b"{}      ")
        learn.load_checkpoint(tmp_path / "other.safetensors")


def test_resume_takes_no_other_settings_and_only_unfinished_runs(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path), "--epochs", "3"]) == 1
    assert "--resume takes every setting from" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path)]) == 1
    assert f"{tmp_path} is not an unfinished run" in capsys.readouterr().err
    assert not os.listdir(tmp_path)


def test_ctrl_c_keeps_the_checkpoint_and_resume_finishes_the_run(tmp_path, monkeypatch, capsys):
    root = make_folder(tmp_path / "ds", n=6)
    out = tmp_path / "run"
    fit = Learner.fit

    class CtrlC(Callback):  # the user presses Ctrl-C during the second epoch
        def after_pred(self, learn):
            if learn.training and learn.epoch == 1:
                os.kill(os.getpid(), signal.SIGINT)

    with monkeypatch.context() as m:
        m.setattr(
            Learner, "fit", lambda self, n, lr=None, cbs=(), **kw: fit(self, n, lr, [*cbs, CtrlC()], **kw)
        )
        assert (
            main(["train", "--data", str(root), "--epochs", "3", "--bs", "4", "--out", str(out), "--quiet"])
            == 130
        )
    assert f"go on with digitlearn train --resume {out}" in capsys.readouterr().err
    assert {CHECKPOINT, "config.json", "weights.safetensors"} <= {p.name for p in out.iterdir()}
    with pytest.raises(DigitlearnError, match=r"unfinished run \(epoch 1 of 3\)"):
        read_config(out)
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert capsys.readouterr().out.startswith(f"resuming {out} at epoch 1 of 3: ")
    assert CHECKPOINT not in {p.name for p in out.iterdir()}
    config = read_config(out)
    assert config["epochs_done"] == 3 and not config["interrupted"]


class ScaleByCounter(Callback):
    """A user's callback whose state shapes training: gradients scaled by 0.99 ** steps so far."""

    def __init__(self) -> None:
        self.steps = 0

    def after_backward(self, learn) -> None:
        for p in learn.model.parameters():
            p.grad *= 0.99**self.steps
        self.steps += 1

    def state_dict(self) -> dict:
        return {"steps": self.steps, "trace": torch.tensor([float(self.steps)])}  # data and a tensor

    def load_state_dict(self, state: dict) -> None:
        self.steps = state["steps"]
        assert float(state["trace"]) == self.steps


def counted_learner(counter: ScaleByCounter) -> Learner:
    from .conftest import toy_dls

    torch.manual_seed(0)
    dls = toy_dls(n=256, bs=32, shuffle=True, seed=0)
    dls.train.generator = torch.Generator().manual_seed(1)
    learn = Learner(dls, nn.Linear(8, 1), opt_func=Adam, loss_func=mnist_loss, progress=False)
    learn.add_cbs([counter])
    return learn


def stop_after_two(learn: Learner, how: str) -> None:
    """Two epochs of a four-epoch run: a plain fit(2), or one-cycle's first half (its schedule is
    the four epochs')."""
    if how == "fit":
        learn.fit(2, 0.05)
    else:
        learn.fit_one_cycle(4, 0.05, cbs=[StopAfter(2)])


def go_on(learn: Learner, how: str) -> None:
    """The four epochs; after load_checkpoint, the two after the checkpoint's."""
    if how == "fit":
        learn.fit(4, 0.05)
    else:
        learn.fit_one_cycle(4, 0.05)


@pytest.mark.parametrize("how", ["fit", "fit_one_cycle"])
def test_a_users_own_callback_state_is_saved_and_resumed(tmp_path, how):
    straight_counter = ScaleByCounter()
    straight = counted_learner(straight_counter)
    go_on(straight, how)
    first = counted_learner(ScaleByCounter())
    stop_after_two(first, how)
    first.save_checkpoint(tmp_path / "ckpt.safetensors")
    counter = ScaleByCounter()
    resumed = counted_learner(counter)
    resumed.load_checkpoint(tmp_path / "ckpt.safetensors")
    go_on(resumed, how)
    # 4 epochs' steps, not 2: the count went on where it stopped
    assert counter.steps == straight_counter.steps == 4 * len(straight.dls.train)
    for (name, a), b in zip(
        straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name


class StopAfter(Callback):
    """Ends the fit after `n` epochs, as a stop between epochs would (after the epoch's row)."""

    order = 90

    def __init__(self, n: int) -> None:
        self.n = n

    def after_epoch(self, learn) -> None:
        if learn.epoch + 1 == self.n:
            raise CancelFitException()


def test_a_checkpoint_of_other_callbacks_is_refused_in_one_line(tmp_path):
    learn = counted_learner(ScaleByCounter())
    learn.fit(1, 0.05)
    learn.save_checkpoint(tmp_path / "ckpt.safetensors")
    plain = counted_learner(ScaleByCounter())
    plain.remove_cbs([ScaleByCounter])
    plain.load_checkpoint(tmp_path / "ckpt.safetensors")
    refused = r"ckpt.safetensors: the checkpoint holds the state of a callback this Learner does not have"
    with pytest.raises(DigitlearnError, match=refused + r" \(tests.test_checkpoint.ScaleByCounter\)"):
        plain.fit(2, 0.05)


def test_a_checkpoint_without_a_callback_the_learner_has_is_refused_in_one_line(tmp_path):
    plain = counted_learner(ScaleByCounter())
    plain.remove_cbs([ScaleByCounter])
    plain.fit(1, 0.05)
    plain.save_checkpoint(tmp_path / "ckpt.safetensors")
    counted = counted_learner(ScaleByCounter())  # its count would start again at 0
    counted.load_checkpoint(tmp_path / "ckpt.safetensors")
    refused = r"ckpt.safetensors: the checkpoint holds no state of a callback this Learner has"
    with pytest.raises(DigitlearnError, match=refused + r" \(tests.test_checkpoint.ScaleByCounter\): resume"):
        counted.fit(2, 0.05)


class Versioned(Callback):
    """A callback whose state's layout changed between the checkpoint and the resume."""

    def __init__(self, field: str) -> None:
        self.field = field

    def state_dict(self) -> dict:
        return {self.field: 1}

    def load_state_dict(self, state: dict) -> None:
        self.value = state[self.field]


def test_a_callbacks_state_of_another_layout_is_refused_in_one_line(tmp_path):
    old = counted_learner(ScaleByCounter())
    old.add_cbs([Versioned("count")])
    old.save_checkpoint(tmp_path / "ckpt.safetensors")
    new = counted_learner(ScaleByCounter())
    new.add_cbs([Versioned("steps")])
    new.load_checkpoint(tmp_path / "ckpt.safetensors")
    with pytest.raises(DigitlearnError) as refused:
        new.fit(1, 0.05)
    assert str(refused.value) == (
        f"{tmp_path / 'ckpt.safetensors'}: the checkpoint's state of tests.test_checkpoint.Versioned "
        "does not fit that callback (KeyError: 'steps')"
    )


def test_two_callbacks_of_one_class_keep_one_state_each(tmp_path):
    first, second = ScaleByCounter(), ScaleByCounter()
    learn = counted_learner(first)
    learn.add_cbs([second])
    learn.fit(1, 0.05)
    second.steps = 100  # told apart from the first's, whose count is the epoch's steps
    learn.save_checkpoint(tmp_path / "ckpt.safetensors")
    again = [ScaleByCounter(), ScaleByCounter()]
    resumed = counted_learner(again[0])
    resumed.add_cbs([again[1]])
    resumed.load_checkpoint(tmp_path / "ckpt.safetensors")
    resumed.fit(1, 0.05)  # the checkpoint's epoch: nothing left to train, only the state restored
    assert [cb.steps for cb in again] == [first.steps, 100]


def test_a_checkpoint_from_before_the_first_epoch_resumes_exactly(tmp_path):
    """What a run writes before its first epoch: every callback's state as made, not yet fitted."""
    straight = make_learner()
    straight.add_cbs([SaveBestModel(), EarlyStopping(patience=2)])
    straight.fit_one_cycle(3, 0.02)
    early = make_learner()
    early.add_cbs([SaveBestModel(), EarlyStopping(patience=2)])
    early.save_checkpoint(tmp_path / "ckpt.safetensors")
    resumed = make_learner()
    best, stop = SaveBestModel(), EarlyStopping(patience=2)
    resumed.add_cbs([best, stop])
    resumed.load_checkpoint(tmp_path / "ckpt.safetensors")
    resumed.fit_one_cycle(3, 0.02)
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert best.best_epoch is not None and (best.best, best.best_epoch) == (stop.best, stop.best_epoch)
    assert resumed.recorder.losses == straight.recorder.losses


class Strict(Callback):
    """A callback whose loading fails with a message of several lines, as torch's often do."""

    def state_dict(self) -> dict:
        return {"v": 1}

    def load_state_dict(self, state: dict) -> None:
        raise ValueError("the state is of version one\nexpected version two\nsee the notes")


def test_a_callbacks_refusal_is_quoted_by_its_first_line(tmp_path):
    old = counted_learner(ScaleByCounter())
    old.add_cbs([Strict()])
    old.save_checkpoint(tmp_path / "ckpt.safetensors")
    new = counted_learner(ScaleByCounter())
    new.add_cbs([Strict()])
    new.load_checkpoint(tmp_path / "ckpt.safetensors")
    with pytest.raises(DigitlearnError) as refused:
        new.fit(1, 0.05)
    assert str(refused.value).endswith(
        "the checkpoint's state of tests.test_checkpoint.Strict does not fit that callback "
        "(ValueError: the state is of version one)"
    )


def test_a_checkpoints_tensors_are_named_by_the_part_they_belong_to(tmp_path):
    from digitlearn.training.checkpoint import read_checkpoint

    learn = counted_learner(ScaleByCounter())
    learn.fit(1, 0.05)
    learn.save_checkpoint(tmp_path / "ckpt.safetensors")
    _, tensors = read_checkpoint(tmp_path / "ckpt.safetensors")
    assert {name.split(".")[0] for name in tensors} == {"model", "opt", "rng", "cb"}
    assert {"model.weight", "opt.state.0.avg", "rng.torch", "rng.loader"} <= tensors.keys()
    assert "cb.tests.test_checkpoint.ScaleByCounter.trace" in tensors


def test_a_data_parallel_runs_checkpoint_resumes_in_one_process(tmp_path):
    """A data-parallel run's shuffle has a generator of its own (see `distributed`); resumed in
    one process whose loader has none, it gets one, in the checkpoint's state."""
    straight = counted_learner(ScaleByCounter())
    straight.fit(2, 0.05)
    first = counted_learner(ScaleByCounter())
    first.fit(1, 0.05)
    first.save_checkpoint(tmp_path / "ckpt.safetensors")
    alone = counted_learner(ScaleByCounter())
    alone.dls.train.generator = None
    alone.load_checkpoint(tmp_path / "ckpt.safetensors")
    alone.fit(2, 0.05)
    assert torch.equal(alone.dls.train.generator.get_state(), straight.dls.train.generator.get_state())
    assert [r["valid_loss"] for r in alone.recorder.history] == [
        r["valid_loss"] for r in straight.recorder.history
    ]


def test_a_file_that_is_no_checkpoint_is_called_so(tmp_path):
    from digitlearn.training.checkpoint import FORMAT
    from tests.test_checkpoint_damage import rewritten

    learn = counted_learner(ScaleByCounter())
    path = tmp_path / "ckpt.safetensors"
    path.write_bytes(b"not a safetensors file")
    with pytest.raises(DigitlearnError) as e:
        learn.load_checkpoint(path)
    assert str(e.value).startswith(f"{path}: the checkpoint is damaged: it cannot be read (")
    learn.save_checkpoint(path)

    def another_format(state, tensors):  # with this version's format named inside, as text
        state.update(format="digitlearn-checkpoint-1", extra={"format": FORMAT})

    path.write_bytes(rewritten(path.read_bytes(), another_format))
    with pytest.raises(DigitlearnError) as e:
        learn.load_checkpoint(path)
    assert str(e.value) == f"{path}: not a digitlearn checkpoint (expected format 'digitlearn-checkpoint-2')"


def test_a_data_parallel_model_is_saved_as_the_model_itself(tmp_path):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from digitlearn.training.checkpoint import unwrapped

    model = nn.Linear(8, 1)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        assert unwrapped(DistributedDataParallel(model)) is model
    finally:
        dist.destroy_process_group()
    assert unwrapped(model) is model
