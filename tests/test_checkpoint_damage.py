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

from digitlearn import SGD, Adam, Callback, DigitlearnError, Learner, mnist_loss, train_run
from digitlearn.cli import main
from digitlearn.files import checksum
from digitlearn.runs.checkpoint import CHECKPOINT
from digitlearn.training.checkpoint import CHECKPOINT_KEY, CHECKSUM_KEY
from digitlearn.training.checkpoint_check import MAX_TENSORS
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


def an_adam_learner() -> Learner:
    """Adam (whose state holds a count and tensors) over a shuffled loader with its own generator
    (whose state the checkpoint keeps): every part of a checkpoint that `checkpoint_check` reads."""
    torch.manual_seed(0)
    dls = toy_dls()
    dls.train.shuffle, dls.train.generator = True, torch.Generator().manual_seed(0)
    return Learner(dls, torch.nn.Linear(8, 1), Adam, mnist_loss, progress=False)


@pytest.fixture(scope="module")
def adam_checkpoint(tmp_path_factory) -> bytes:
    learn = an_adam_learner()
    learn.fit(1, 0.01)
    path = tmp_path_factory.mktemp("adam") / "ckpt.safetensors"
    learn.save_checkpoint(path)
    return path.read_bytes()


def recorder(s: dict) -> dict:
    return s["callbacks"]["digitlearn.training.recorder.Recorder"]


def with_tensor(place, key: str, name: str, value: torch.Tensor, listed: bool = False):
    """An edit that points `place(state)[key]` at a new tensor `name` of the file (in a list of
    one if `listed`)."""

    def edit(s, t):
        place(s)[key] = [{"tensor": name}] if listed else {"tensor": name}
        t[name] = value

    return edit


def set_in(place, key, value):
    return lambda s, t: place(s).__setitem__(key, value)


def rng(s):
    return s["rng"]


def opt_state(s):
    return s["opt"]["state"][0]


# Each edit and the exact words after "the checkpoint is damaged: " (the whole message is compared,
# so a field named wrong or a reason lost fails as surely as a check that lets the edit through).
FIELD_EDITS = {
    "unknown fields": (lambda s, t: s.update({"b" * 50: 1, "a" * 50: 1}), f"{'a' * 40} is not a field of a checkpoint"),
    "n_epoch text": (lambda s, t: s.update(n_epoch="3"), "n_epoch must be a whole number from 0 to 1,000,000, not '3'"),
    "extra a list": (lambda s, t: s.update(extra=[]), "extra must be an object, not list"),
    "callbacks a list": (lambda s, t: s.update(callbacks=[]), "callbacks must be an object, not list"),
    "rng a list": (lambda s, t: s.update(rng=[]), "rng must be an object, not list"),
    "opt a list": (lambda s, t: s.update(opt=[]), "opt must be an object, not list"),
    "a callback's state a list": (lambda s, t: s["callbacks"].update({"x.Recorder": []}), "callbacks.x.Recorder must be an object, not list"),
    "a model tensor too many": (lambda s, t: t.update({"model.extra": torch.zeros(1)}), "model tensor 'extra' is not one of this model's"),
    "a model tensor of another shape": (lambda s, t: t.update({"model.weight": torch.zeros(2, 8)}), "model tensor 'weight' is torch.float32 (2, 8), not torch.float32 (1, 8)"),
    "a model tensor of another dtype": (lambda s, t: t.update({"model.weight": torch.zeros(1, 8, dtype=torch.float64)}), "model tensor 'weight' is torch.float64 (1, 8), not torch.float32 (1, 8)"),
    "an infinite model tensor": (lambda s, t: t["model.bias"].fill_(float("inf")), "model tensor 'bias' holds NaN or infinite values"),
    "rng.cuda missing": (lambda s, t: rng(s).pop("cuda"), "rng.cuda is missing"),
    "rng.python text": (set_in(rng, "python", "abc"), "rng.python must be a list, not str"),
    "rng.python of 2": (lambda s, t: rng(s)["python"].pop(), "rng.python must be [version, 625 numbers, gauss]"),
    "rng.python internal not a list": (lambda s, t: rng(s)["python"].__setitem__(1, 5), "rng.python must be [version, 625 numbers, gauss]"),
    "rng.python internal short": (lambda s, t: rng(s)["python"][1].pop(), "rng.python must be [version, 625 numbers, gauss]"),
    "rng.python 2**32": (lambda s, t: rng(s)["python"][1].__setitem__(5, 2**32), "rng.python must hold whole numbers from 0 to 2**32 - 1"),
    "rng.python -1": (lambda s, t: rng(s)["python"][1].__setitem__(5, -1), "rng.python must hold whole numbers from 0 to 2**32 - 1"),
    "rng.python version text": (lambda s, t: rng(s)["python"].__setitem__(0, "3"), "rng.python must hold whole numbers from 0 to 2**32 - 1"),
    "rng.numpy text": (set_in(rng, "numpy", "abc"), "rng.numpy must be a list, not str"),
    "rng.numpy of 4": (lambda s, t: rng(s)["numpy"].pop(), "rng.numpy must be ['MT19937', keys, position, has_gauss, gauss]"),
    "rng.numpy another generator": (lambda s, t: rng(s)["numpy"].__setitem__(0, "PCG64"), "rng.numpy must be ['MT19937', keys, position, has_gauss, gauss]"),
    "rng.numpy position text": (lambda s, t: rng(s)["numpy"].__setitem__(2, "x"), "rng.numpy must be ['MT19937', keys, position, has_gauss, gauss]"),
    "rng.numpy keys of floats": (lambda s, t: t.update({"rng.numpy.1": torch.zeros(624)}), "rng.numpy.keys must be a tensor of torch.int64, not torch.float32"),
    "rng.numpy keys short": (lambda s, t: t.update({"rng.numpy.1": torch.zeros(10, dtype=torch.int64)}), "rng.numpy.keys must hold 624 numbers, not 10"),
    "rng.numpy position 625": (lambda s, t: rng(s)["numpy"].__setitem__(2, 625), "rng.numpy holds numbers out of range"),
    "rng.numpy position -1": (lambda s, t: rng(s)["numpy"].__setitem__(2, -1), "rng.numpy holds numbers out of range"),
    "rng.numpy key 2**32": (lambda s, t: t["rng.numpy.1"].__setitem__(3, 2**32), "rng.numpy holds numbers out of range"),
    "rng.numpy key -1": (lambda s, t: t["rng.numpy.1"].__setitem__(3, -1), "rng.numpy holds numbers out of range"),
    "rng.cuda text": (set_in(rng, "cuda", "abc"), "rng.cuda must be a list, not str"),
    "rng.cuda of a number": (set_in(rng, "cuda", [5]), "rng.cuda[0] must be a tensor of torch.uint8, not int"),
    "rng.cuda of floats": (with_tensor(rng, "cuda", "rng.cuda.0", torch.zeros(16), listed=True), "rng.cuda[0] must be a tensor of torch.uint8, not torch.float32"),
    "rng.loader of floats": (with_tensor(rng, "loader", "rng.loader", torch.zeros(16)), "rng.loader must be a tensor of torch.uint8, not torch.float32"),
    "rng.loader of 17 bytes": (with_tensor(rng, "loader", "rng.loader", torch.zeros(17, dtype=torch.uint8)), "rng.loader is a generator state of 17 bytes, of no generator"),
    "opt.lr missing": (lambda s, t: s["opt"].pop("lr"), "opt.lr is missing"),
    "opt.state missing": (lambda s, t: s["opt"].pop("state"), "opt.state is missing"),
    "opt.lr text": (lambda s, t: s["opt"].update(lr="0.1"), "opt.lr must be a number, not str"),
    "opt.mom infinite": (lambda s, t: s["opt"].update(mom=float("inf")), "opt.mom must be finite"),
    "opt.state an object": (lambda s, t: s["opt"].update(state={}), "opt.state must be a list, not dict"),
    "opt.state[0] a list": (lambda s, t: s["opt"]["state"].__setitem__(0, []), "opt.state[0] must be an object, not list"),
    "opt.state[0] step text": (set_in(opt_state, "step", "x"), "opt.state[0].step must be a number or a tensor, not str"),
    "opt.state[0] step true": (set_in(opt_state, "step", True), "opt.state[0].step must be a number or a tensor, not bool"),
    "opt.state[0] avg of 2": (with_tensor(opt_state, "avg", "opt.x", torch.zeros(2)), "opt.state[0].avg is (2,), the parameter is (1, 8)"),
    "opt.state[0] avg NaN": (with_tensor(opt_state, "avg", "opt.x", torch.full((1, 8), float("nan"))), "opt.state[0].avg holds NaN or infinite values"),
    "history text": (set_in(recorder, "history", "abc"), "Recorder.history must be a list, not str"),
    "history row a number": (set_in(recorder, "history", [5]), "Recorder.history[0] must be epoch 0's row"),
    "history row of epoch 1": (lambda s, t: recorder(s)["history"][0].update(epoch=1), "Recorder.history[0] must be epoch 0's row"),
    "history row with text": (lambda s, t: recorder(s)["history"][0].update(valid_loss="x"), "Recorder.history[0] must hold numbers"),
    "names text": (set_in(recorder, "names", "abc"), "Recorder.names must be a list of column names"),
    "names of numbers": (set_in(recorder, "names", [1]), "Recorder.names must be a list of column names"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(FIELD_EDITS))
def test_each_restorable_field_is_refused_by_name(adam_checkpoint, name, tmp_path):
    edit, words = FIELD_EDITS[name]
    path = tmp_path / "ckpt.safetensors"
    path.write_bytes(rewritten(adam_checkpoint, edit))
    with pytest.raises(DigitlearnError) as e:
        an_adam_learner().load_checkpoint(path)
    assert str(e.value) == f"{path}: the checkpoint is damaged: {words}"


# Values at the edges of each range: a checkpoint holding them is a checkpoint the fit could write.
EDGE_EDITS = {
    "python numbers 0 and 2**32 - 1": lambda s, t: rng(s)["python"][1].__setitem__(slice(3, 5), [0, 2**32 - 1]),
    "numpy position 0": lambda s, t: rng(s)["numpy"].__setitem__(2, 0),
    "numpy position 624": lambda s, t: rng(s)["numpy"].__setitem__(2, 624),
    "numpy keys 0 and 2**32 - 1": lambda s, t: t["rng.numpy.1"][3:5].copy_(torch.tensor([0, 2**32 - 1])),
    "a CUDA generator's loader state": with_tensor(rng, "loader", "rng.loader", torch.zeros(16, dtype=torch.uint8)),
    "an optimizer count held as a one-number tensor": with_tensor(opt_state, "step", "opt.x", torch.ones(1)),
}  # fmt: skip


@pytest.mark.parametrize("name", list(EDGE_EDITS))
def test_values_at_the_edges_of_each_range_load(adam_checkpoint, name, tmp_path):
    path = tmp_path / "ckpt.safetensors"
    path.write_bytes(rewritten(adam_checkpoint, EDGE_EDITS[name]))
    an_adam_learner().load_checkpoint(path)


def test_metadata_that_is_not_an_object_is_refused(tmp_path):
    text = '[{"format": "digitlearn-checkpoint-2"}]'
    tensors = {"x": torch.zeros(1)}
    path = tmp_path / "ckpt.safetensors"
    path.write_bytes(save(tensors, {CHECKPOINT_KEY: text, CHECKSUM_KEY: checksum(text, tensors)}))
    with pytest.raises(DigitlearnError) as e:
        an_adam_learner().load_checkpoint(path)
    assert str(e.value) == f"{path}: the checkpoint is damaged: metadata must be an object, not list"


def references(value) -> int:
    if isinstance(value, dict):
        return 1 if value.keys() == {"tensor"} else sum(references(v) for v in value.values())
    return sum(references(v) for v in value) if isinstance(value, list) else 0


@pytest.mark.parametrize("over", [0, 1])
def test_at_most_max_tensors_references(adam_checkpoint, over, tmp_path):
    def refer(s, t):  # to one tensor, many times: the count is of references, not of tensors
        s["extra"]["refs"] = [{"tensor": "rng.torch"}] * (MAX_TENSORS - references(s) + over)

    path = tmp_path / "ckpt.safetensors"
    path.write_bytes(rewritten(adam_checkpoint, refer))
    if not over:
        an_adam_learner().load_checkpoint(path)
        return
    with pytest.raises(DigitlearnError) as e:
        an_adam_learner().load_checkpoint(path)
    assert str(e.value) == f"{path}: the checkpoint is damaged: metadata refers to more than 100,000 tensors"
