# ruff: noqa: E501  (the table of edits reads best one edit a line)
"""Damaged and tampered checkpoints: each refused in one line naming the file and what is wrong,
before anything is restored; never a traceback, and never a resumed run that makes no sense.

Edits of the metadata are made with the checksum recomputed, as a careful tamperer would, so that
each field's own check is what refuses them; raw damage (a cut, a flipped bit) meets the checksum.
"""

import json
import signal
import tempfile

import pytest
import torch
from hypothesis import given
from safetensors import safe_open
from safetensors.torch import save

from digitlearn import SGD, Callback, DigitlearnError, Learner, mnist_loss, train_run
from digitlearn.cli import main
from digitlearn.files import checksum
from digitlearn.runs.checkpoint import CHECKPOINT
from digitlearn.training.checkpoint import CHECKPOINT_KEY, CHECKSUM_KEY
from tests.conftest import make_folder, toy_dls
from tests.test_fuzz import mutated


class CtrlCAfterFirstEpoch(Callback):
    def after_epoch(self, learn):
        if learn.epoch == 0:
            signal.raise_signal(signal.SIGINT)


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """An unfinished run (epoch 1 of 3): the checkpoint's bytes, and the run's folder."""
    root = tmp_path_factory.mktemp("damage")
    data = make_folder(root / "digits", n=20, size=28)
    run = root / "run"
    train_run(data, out=run, model="lenet", epochs=3, channels=(2, 4), hidden=(8,), progress=False, log=None,
              cbs=[CtrlCAfterFirstEpoch()])  # fmt: skip
    return (run / CHECKPOINT).read_bytes(), run


def rewritten(data: bytes, edit) -> bytes:
    """The checkpoint with `edit(state, tensors)` applied to its JSON part and tensors, and its
    checksum made to match again."""
    with tempfile.NamedTemporaryFile(suffix=".safetensors") as f:
        f.write(data)
        f.flush()
        with safe_open(f.name, "pt") as st:
            meta = st.metadata()
            tensors = {k: st.get_tensor(k) for k in st.keys()}  # noqa: SIM118
    state = json.loads(meta[CHECKPOINT_KEY])
    edit(state, tensors)
    text = json.dumps(state)
    return save(tensors, {**meta, CHECKPOINT_KEY: text, CHECKSUM_KEY: checksum(text, tensors)})


def nested(depth: int):
    value: object = 0
    for _ in range(depth):
        value = [value]
    return value


def drop(key):
    return lambda s, t: s.pop(key)


EDITS = {
    "a missing model tensor": (lambda s, t: t.pop("model.0.weight"), "model tensor '0.weight' is missing"),
    "deep JSON": (lambda s, t: s["extra"].update(deep=nested(500)), "levels deep (at most 64)"),
    "missing metadata": (drop("rng"), "rng is missing"),
    "an unknown recipe key": (lambda s, t: s["extra"]["run"]["recipe"].update(colour="red"), "extra.run.recipe"),
    "the epoch as a string": (lambda s, t: s.update(epoch="1"), "epoch must be a whole number"),
    "the epoch -1": (lambda s, t: s.update(epoch=-1), "epoch must be a whole number from 0 to 3"),
    "a huge epoch": (lambda s, t: s.update(epoch=10**9), "epoch must be a whole number from 0 to 3"),
    "a torch RNG state too short": (lambda s, t: t.update({"rng.torch": torch.zeros(10, dtype=torch.uint8)}), "rng.torch must hold"),
    "a torch RNG state of floats": (lambda s, t: t.update({"rng.torch": torch.zeros(5056)}), "rng.torch must be a tensor of torch.uint8"),
    "a Python RNG state that is text": (lambda s, t: s["rng"].update(python="abc"), "rng.python must be a list"),
    "a short optimizer state": (lambda s, t: s["opt"]["state"].pop(), "opt.state holds"),
    "missing history rows": (lambda s, t: s["callbacks"][next(k for k in s["callbacks"] if k.endswith("Recorder"))].update(history=[]), "Recorder.history holds 0"),
    "a NaN weight": (lambda s, t: t["model.0.weight"].fill_(float("nan")), "holds NaN or infinite values"),
    "a tensor reference to nothing": (lambda s, t: t.pop("rng.torch"), "tensor 'rng.torch' is missing from the file"),
    "no run settings": (lambda s, t: s["extra"].pop("run"), "extra.run (the run's settings) is missing"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(EDITS))
def test_a_tampered_checkpoint_is_refused_in_one_line(stopped, name, tmp_path, capsys):
    data, run = stopped
    edit, message = EDITS[name]
    folder = tmp_path / "run"
    folder.mkdir()
    for f in run.iterdir():
        if f.is_file():
            (folder / f.name).write_bytes(f.read_bytes())
    (folder / CHECKPOINT).write_bytes(rewritten(data, edit))
    assert main(["train", "--resume", str(folder), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{folder / CHECKPOINT}" in err and message in err, err


@pytest.mark.parametrize(
    "damage",
    [lambda d: d[: len(d) // 2], lambda d: b"", lambda d: d[:-1000] + bytes([d[-1000] ^ 4]) + d[-999:]],
    ids=["truncated", "empty", "a flipped bit"],
)
def test_a_damaged_checkpoint_is_called_damaged_not_missing(stopped, damage, tmp_path, capsys):
    data = stopped[0]
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / CHECKPOINT).write_bytes(damage(data))
    assert main(["train", "--resume", str(folder), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "the checkpoint is damaged" in err and "no checkpoint" not in err and err.count("\n") == 1, err


def a_learner() -> Learner:
    torch.manual_seed(0)
    return Learner(toy_dls(), torch.nn.Linear(8, 1), SGD, mnist_loss, progress=False)


@pytest.fixture(scope="module")
def toy_checkpoint(tmp_path_factory) -> bytes:
    learn = a_learner()
    learn.fit(1, 0.1)
    path = tmp_path_factory.mktemp("toy") / "ckpt.safetensors"
    learn.save_checkpoint(path)
    return path.read_bytes()


@pytest.fixture(scope="module")
def fuzz_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def test_mutated_checkpoints_resume_or_give_our_error(toy_checkpoint, fuzz_folder):
    @given(mutated([toy_checkpoint]))
    def check(data: bytes) -> None:
        path = fuzz_folder / "ckpt.safetensors"
        path.write_bytes(data)
        learn = a_learner()
        try:
            learn.load_checkpoint(path)
            learn.fit(2, 0.1)
        except DigitlearnError as e:
            assert "\n" not in str(e)

    check()
