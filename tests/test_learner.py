"""The Learner: the loop itself, its events and stops, and using the model.

Its figure on real data, the chapter's simple_net at 0.98, is the README example's (tests/test_docs.py)
and the full `reproduce` run's (tests/test_reproduce.py), which train it the same way.
"""

import itertools
import os
import re
import signal

import pytest
import torch
from torch import nn

from digitlearn import (
    SGD,
    Adam,
    Callback,
    CancelBatchException,
    CancelEpochException,
    CancelFitException,
    CancelStepException,
    CancelTrainException,
    CancelValidateException,
    DataLoader,
    DataLoaders,
    DigitlearnError,
    EarlyStopping,
    Learner,
    TrainingDiverged,
    accuracy,
    batch_accuracy,
    bce_loss,
    cross_entropy,
    linear1,
    load_dataset,
    mnist_loss,
    set_seed,
    simple_net,
)
from digitlearn.device import pick_device
from digitlearn.training import LRFindResult, suggest_lr

from .conftest import toy_dls


class Events(Callback):
    """Records every event it sees (as 'event' or 'event:iter')."""

    def __init__(self):
        self.seen = []

    def __getattr__(self, name):
        if name.startswith(("before_", "after_")):
            return lambda learn: self.seen.append(name)
        raise AttributeError(name)


def learner(dls=None, model=None, **kwargs) -> Learner:
    dls = dls or toy_dls()
    torch.manual_seed(0)
    model = model or nn.Linear(8, 1)
    kwargs.setdefault("progress", False)
    return Learner(dls, model, **kwargs)


def test_the_loop_is_the_chapters_hand_written_one():
    dls = toy_dls(shuffle=False)
    learn = learner(dls, opt_func=SGD, loss_func=mnist_loss, lr=0.5)
    torch.manual_seed(0)
    twin = nn.Linear(8, 1)
    learn.fit(2)
    for _ in range(2):  # the chapter's train_epoch: predict, loss, backward, step, zero
        for xb, yb in dls.train:
            mnist_loss(twin(xb), yb).backward()
            for p in twin.parameters():
                p.data -= p.grad * 0.5
                p.grad = None
    for a, b in zip(learn.model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a, b)


def test_training_learns_a_separable_problem():
    learn = learner(loss_func=bce_loss, metrics=batch_accuracy, lr=0.5)
    learn.fit(5)
    rows = learn.recorder.history
    assert [r["epoch"] for r in rows] == [0, 1, 2, 3, 4]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"] and rows[-1]["batch_accuracy"] > 0.9


def test_ten_classes_with_cross_entropy():
    dls = toy_dls(n=512, n_classes=10)
    learn = learner(dls, nn.Linear(8, 10), opt_func=Adam, loss_func=cross_entropy, metrics=accuracy, lr=0.05)
    learn.fit(8)
    assert learn.recorder.history[-1]["accuracy"] > 0.7
    probs, targets = learn.get_preds()
    assert probs.shape == (128, 10) and torch.allclose(probs.sum(1), torch.ones(128))
    assert targets.shape == (128,)


def test_events_come_in_order():
    events = Events()
    learn = learner(toy_dls(n=80, bs=30), cbs=[events])  # 60 train items: 2 batches; 20 valid: 1
    learn.fit(1)
    batch = ["before_batch", "after_pred", "after_loss"]
    train_batch = [*batch, "before_backward", "after_backward", "before_step", "after_step", "after_batch"]
    assert events.seen == [
        "before_fit",
        "before_epoch",
        "before_train",
        *train_batch,
        *train_batch,
        "after_train",
        "before_validate",
        *batch,
        "after_batch",
        "after_validate",
        "after_epoch",
        "after_fit",
    ]


class Raise(Callback):
    def __init__(self, event, exc, when=lambda learn: True):
        setattr(self, event, self._raise)
        self.exc, self.when = exc, when

    def _raise(self, learn):
        if self.when(learn):
            raise self.exc()


def weights(learn):
    return [p.detach().clone() for p in learn.model.parameters()]


def test_cancel_batch_skips_the_step_but_not_after_batch():
    events = Events()
    learn = learner(cbs=[Raise("before_batch", CancelBatchException, lambda learn: learn.training), events])
    before = weights(learn)
    learn.fit(2, lr=1.0)
    assert all(torch.equal(a, b) for a, b in zip(before, weights(learn), strict=True))
    assert events.seen.count("after_batch") == 2 * (6 + 2) and "after_pred" in events.seen  # valid ran
    assert len(learn.recorder.history) == 2


def test_cancel_step_and_cancel_fit():
    learn = learner(cbs=[Raise("before_step", CancelStepException)])
    before = weights(learn)
    learn.fit(1, lr=1.0)
    assert all(torch.equal(a, b) for a, b in zip(before, weights(learn), strict=True))
    events = Events()
    learn = learner(cbs=[Raise("after_batch", CancelFitException, lambda learn: learn.iter == 2), events])
    learn.fit(3)
    assert events.seen.count("before_batch") == 3 and events.seen[-1] == "after_fit"
    assert learn.recorder.history == []


def test_cancel_train_validate_epoch():
    def run(event, exc):
        events = Events()
        learner(
            cbs=[Raise(event, exc, lambda learn: learn.training or event == "before_validate"), events]
        ).fit(1)
        return events.seen

    seen = run("after_batch", CancelTrainException)  # after the first training batch
    assert seen.count("after_step") == 1 and "after_train" in seen
    assert seen.count("after_pred") == 1 + 2 and "after_validate" in seen  # validation still ran
    seen = run("before_validate", CancelValidateException)
    assert seen.count("after_step") == 6 and seen.count("after_pred") == 6 and "after_validate" in seen
    seen = run("after_batch", CancelEpochException)
    assert seen.count("after_step") == 1 and "after_train" not in seen and "before_validate" not in seen
    assert seen[-2:] == ["after_epoch", "after_fit"]


def test_a_cancelled_stage_records_nan():
    learn = learner(cbs=[Raise("before_validate", CancelValidateException)], metrics=batch_accuracy)
    learn.fit(1)
    row = learn.recorder.history[0]
    assert row["train_loss"] > 0 and row["valid_loss"] != row["valid_loss"]  # NaN
    assert row["batch_accuracy"] != row["batch_accuracy"]


def test_nan_loss_stops_with_a_clear_error():
    class Poison(Callback):
        def after_pred(self, learn):
            if learn.epoch == 1 and learn.iter == 2:
                learn.preds = learn.preds * float("nan")

    events = Events()
    learn = learner(loss_func=bce_loss, cbs=[Poison(), events])
    with pytest.raises(
        TrainingDiverged, match=r"^the training loss became nan at epoch 1, batch 2 \(learning rate 0.1\)"
    ):
        learn.fit(3, lr=0.1)
    assert events.seen[-1] == "after_fit"  # cleanup still ran
    assert len(learn.recorder.history) == 1


def test_ctrl_c_stops_at_the_end_of_the_batch_and_keeps_the_history(capsys):
    class CtrlC(Callback):
        def before_batch(self, learn):
            if learn.epoch == 1 and learn.training and learn.iter == 3:
                os.kill(os.getpid(), signal.SIGINT)

    handler = signal.getsignal(signal.SIGINT)
    learn = learner(cbs=[CtrlC()])
    learn.fit(5, lr=0.1)
    assert learn.interrupted
    assert [r["epoch"] for r in learn.recorder.history] == [0]
    assert len(learn.recorder.losses) == 6 + 4  # epoch 0, then batches 0-3 of epoch 1
    assert "interrupted at epoch 1, batch 3" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is handler
    learn.fit(1)  # a later fit runs as usual
    assert not learn.interrupted and len(learn.recorder.history) == 1


def test_ctrl_c_after_the_last_batch_is_not_lost():
    class LateCtrlC(Callback):
        def after_epoch(self, learn):
            if learn.epoch == learn.n_epoch - 1:
                os.kill(os.getpid(), signal.SIGINT)

    handler = signal.getsignal(signal.SIGINT)
    learn = learner(cbs=[LateCtrlC()])
    learn.fit(2, lr=0.1)
    assert learn.interrupted and len(learn.recorder.history) == 2  # finished, but the user asked to stop
    assert signal.getsignal(signal.SIGINT) is handler


def test_same_seed_same_history():
    def run():
        set_seed(7)
        learn = learner(
            toy_dls(shuffle=True), simple_net(8, 16), loss_func=mnist_loss, metrics=batch_accuracy
        )
        learn.model = simple_net(8, 16)  # built after the seed, as the CLI does
        learn.fit(3, 0.3)
        return [
            {k: v for k, v in r.items() if k != "time"} for r in learn.recorder.history
        ], learn.recorder.losses

    assert run() == run()


def test_validate_predict_and_get_preds():
    learn = learner(loss_func=mnist_loss, metrics=batch_accuracy, lr=0.5)
    learn.fit(3)
    values = learn.validate()
    assert set(values) == {"valid_loss", "batch_accuracy"}
    probs, targets = learn.get_preds()
    assert probs.shape == (64, 2) and torch.allclose(probs.sum(1), torch.ones(64))
    assert values["batch_accuracy"] == pytest.approx(float((probs.argmax(1) == targets).float().mean()))
    x = learn.dls.valid.fields[0][0]
    label, index, p = learn.predict(x)
    assert label == f"c{index}" and p.shape == (2,) and index == int(probs[0].argmax())
    raw, _ = learn.get_preds(raw=True)
    assert raw.shape == (64, 1)


def test_predict_prepares_images_like_the_dataloaders(tmp_path):
    from .conftest import make_folder

    ds = load_dataset(make_folder(tmp_path / "ds", n=4))  # 8x8 images
    learn = learner(ds.dataloaders(bs=4), nn.Linear(64, 1), loss_func=mnist_loss)
    image = ds.valid.x[0]
    _, _, from_image = learn.predict(image)
    _, _, from_input = learn.predict(image.reshape(64).float() / 255)  # an input as the model takes it
    assert torch.equal(from_image, from_input)
    with pytest.raises(DigitlearnError, match="images are 9x8, but the model takes 8x8"):
        learn.predict(torch.zeros(9, 8, dtype=torch.uint8))


def test_metrics_are_exact_over_a_ragged_last_batch():
    learn = learner(toy_dls(n=100, bs=16), metrics=[batch_accuracy], loss_func=bce_loss)  # valid: 16 + 9
    learn.fit(1, lr=0.05)
    x, y = learn.dls.valid.fields
    with torch.no_grad():
        out = learn.model(x)
    assert learn.recorder.history[-1]["batch_accuracy"] == pytest.approx(
        float(batch_accuracy(out, y)), rel=1e-6
    )
    assert learn.recorder.history[-1]["valid_loss"] == pytest.approx(float(bce_loss(out, y)), rel=1e-6)


def test_fit_one_cycle_schedules_lr_and_momentum():
    learn = learner(toy_dls(n=400, bs=25), opt_func=Adam)  # 12 batches per epoch
    moms = []

    class Mom(Callback):
        def after_step(self, learn):
            moms.append(learn.opt.mom)

    learn.fit_one_cycle(4, 0.01, cbs=[Mom()])
    lrs = learn.recorder.lrs
    assert lrs[0] == pytest.approx(0.01 / 25) and max(lrs) == pytest.approx(0.01, rel=0.01)
    assert lrs.index(max(lrs)) == 12 and lrs[-1] < 1e-4
    assert moms[0] == pytest.approx(0.95) and min(moms) == pytest.approx(0.85, abs=0.001)
    sgd = learner(opt_func=SGD)
    sgd.fit_one_cycle(1, 0.1)
    assert sgd.opt.mom == 0  # the chapter's SGD has no momentum to schedule


def test_lr_find_puts_the_model_back():
    learn = learner(toy_dls(n=800, bs=16), loss_func=bce_loss)
    before = weights(learn)
    result = learn.lr_find(num_it=60)
    assert all(torch.equal(a, b) for a, b in zip(before, weights(learn), strict=True))
    assert learn.opt is None and learn.recorder.history == []
    lrs = result.lrs
    assert lrs[0] == pytest.approx(1e-7) and all(b > a for a, b in itertools.pairwise(lrs))
    assert 1e-4 < result.suggestion < 10
    assert result.plot().axes[0].get_xscale() == "log"
    # one line in a notebook, and its plot as a picture
    assert re.fullmatch(
        r"LRFindResult\(suggestion \d\.\d\de[+-]\d\d; \d+ learning rates from 1e-07 to .*\)", repr(result)
    )
    assert result._repr_png_().startswith(b"\x89PNG")
    assert repr(LRFindResult([1e-7, 1e-6], [1.0, float("nan")])).startswith(
        "LRFindResult(the lr finder recorded 1"
    )


def test_lr_find_keeps_the_callbacks_that_change_training():
    seen = []
    model = nn.Linear(8, 1)
    model.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    learn = learner(toy_dls(n=400, bs=16), model, loss_func=bce_loss, cbs=[EarlyStopping()]).to_bf16()
    kept = list(learn.cbs)
    learn.lr_find(num_it=10)
    assert seen == [torch.bfloat16] * 10 and learn.cbs == kept


def test_suggest_lr():
    lrs = [10 ** (k / 10) for k in range(-50, 11)]  # 1e-5 .. 10
    losses = [1 / (1 + (lr / 0.01) ** 2) + (lr > 1) * lr for lr in lrs]  # falls fastest near 0.01
    assert 0.003 < suggest_lr(lrs, losses) < 0.03
    with pytest.raises(DigitlearnError, match="too few"):
        suggest_lr([1e-3, 1e-2], [1.0, float("nan")])


def test_save_and_load(tmp_path):
    learn = learner(toy_dls(), linear1(8), loss_func=mnist_loss, metrics=batch_accuracy)
    learn.fit(2, 0.3)
    learn.save(tmp_path / "m", extra={"note": "hi"})
    other = learner(toy_dls(), linear1(8), loss_func=mnist_loss)
    other.load(tmp_path / "m")
    assert all(torch.equal(a, b) for a, b in zip(weights(learn), weights(other), strict=True))
    wrong = learner(toy_dls(), simple_net(8))
    with pytest.raises(DigitlearnError, match="does not fit this model"):
        wrong.load(tmp_path / "m")


def test_model_argument():
    learn = Learner(toy_dls(), simple_net, progress=False)  # the chapter passes the model itself
    assert isinstance(learn.model, nn.Sequential)
    with pytest.raises(DigitlearnError, match=r"must be an nn\.Module"):
        Learner(toy_dls(), lambda xb: xb, progress=False)


def test_pick_device():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(DigitlearnError, match="unknown device 'gpu0' \\(use auto, cpu or cuda\\)"):
        pick_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(
            DigitlearnError, match=r"device 'cuda' asked for, but PyTorch .* sees no CUDA GPU"
        ):
            pick_device("cuda")


@pytest.mark.parametrize("fast", [True, False])
def test_to_bf16_warns_in_one_line_where_bf16_is_emulated(fast, monkeypatch, capsys):
    # a CPU with AMX tiles, whatever this one has; without them, oneDNN capped at AVX2
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "ALL" if fast else "AVX2")
    learn = learner(loss_func=bce_loss).to_bf16()
    err = capsys.readouterr().err
    if fast:
        assert err == ""
    else:
        assert err.count("\n") == 1 and err.startswith("digitlearn: warning: this CPU (")
        assert "bf16 is emulated and training will be slower than in fp32" in err
    assert any(type(cb).__name__ == "MixedPrecision" for cb in learn.cbs)  # it still does as asked


# ---------------------------------------------------------------- what a notebook shows


def test_fit_returns_the_epochs_history_keras_style():
    set_seed(0)
    learn = Learner(toy_dls(), nn.Linear(8, 1), opt_func=SGD, loss_func=mnist_loss, metrics=batch_accuracy,
                    progress=False)  # fmt: skip
    history = learn.fit(3, 0.5)
    assert history.epoch == [0, 1, 2] and len(history) == 3
    assert list(history.history) == ["train_loss", "valid_loss", "batch_accuracy", "time"]
    assert history.history["valid_loss"] == [r["valid_loss"] for r in learn.recorder.history]
    assert history.history["valid_loss"][-1] < history.history["valid_loss"][0]  # it trained
    lines = repr(history).splitlines()
    assert lines[0].split() == ["epoch", "train_loss", "valid_loss", "batch_accuracy", "time"]
    assert len(lines) == 4 and lines[3].split()[0] == "2"
    html = history._repr_html_()
    assert html.count("<tr>") == 4 and f"{history.history['valid_loss'][-1]:.4f}" in html
    again = learn.fit_one_cycle(2, 0.5)  # a History of its own epochs only
    assert again.epoch == [0, 1] and again.history["train_loss"] == [
        r["train_loss"] for r in learn.recorder.history
    ]


def test_summary_lists_each_layer_its_output_and_parameters():
    learn = Learner(
        toy_dls(bs=16), nn.Sequential(nn.Linear(8, 5), nn.ReLU(), nn.Linear(5, 1)), progress=False
    )
    summary = learn.summary()
    assert [(layer, shape, n) for layer, shape, n, _ in summary.rows] == [
        ("0: Linear", "16 x 5", 45), ("1: ReLU", "16 x 5", 0), ("2: Linear", "16 x 1", 6)
    ]  # fmt: skip
    assert summary.total == 51 == sum(p.numel() for p in learn.model.parameters())
    text = repr(summary)
    assert text.startswith("Sequential\nlayer") and text.endswith(
        "51 parameters (51 trainable); input 16 x 8"
    )
    assert summary._repr_html_().count("<tr>") == 4
    learn.model[0].requires_grad_(False)
    assert learn.summary().trainable == 6


def test_summary_counts_parameters_a_module_holds_itself():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(1))
            self.body = nn.Linear(8, 1)

        def forward(self, x):
            return self.body(x) * self.scale

    summary = Learner(toy_dls(), Scaled(), progress=False).summary()
    assert summary.total == 10 and summary.rows[-1][0] == "(parameters outside the layers above)"


def test_repr_is_one_line():
    learn = Learner(toy_dls(), nn.Linear(8, 1), metrics=batch_accuracy, progress=False)
    assert repr(learn) == (
        "Learner(Linear, 9 parameters, 192 train, 64 valid, loss mnist_loss, metrics batch_accuracy, cpu)"
    )


@pytest.mark.parametrize("model", ["simple_net", "lenet"])
def test_load_learner_predicts_as_the_learner_did(tmp_path, model):
    """A saved run back as a Learner for inference: the same predictions from the same weights,
    for a flat model and an image model, on three classes."""
    from digitlearn import load_learner
    from digitlearn.training.recipes import default_recipe

    from .conftest import make_folder

    ds = load_dataset(make_folder(tmp_path / "ds", classes=("a", "b", "c"), n=4, size=12))
    recipe = default_recipe(model).updated(epochs=1, bs=4)
    learn = recipe.learner(ds, device="cpu", progress=False)
    recipe.fit(learn)
    learn.save(tmp_path / "run")
    loaded = load_learner(tmp_path / "run")
    assert "no data" in repr(loaded) and loaded.dls.classes == ["a", "b", "c"]
    for image in ds.valid.x:
        label, index, probs = loaded.predict(image)
        expected = learn.predict(image)
        assert (label, index) == expected[:2] and torch.allclose(probs, expected[2], atol=1e-6)
    assert loaded.summary().total == learn.summary().total
    assert loaded.summary().input_shape[0] == 1  # no data: one blank input of the model's format


# ---------------------------------------------------------------- the holes mutation testing found


def test_validation_and_predictions_run_the_model_in_eval_mode():
    """A model with dropout gives one validation loss, however often it is asked, and the
    predictions of the model as evaluated; training mode would drop a random half each time."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 1))
    learn = learner(model=model, loss_func=mnist_loss)
    learn.fit(1, 0.1)
    first, second = learn.validate(), learn.validate()
    assert first["valid_loss"] == second["valid_loss"]
    x, _ = learn.dls.valid.fields
    model.eval()
    with torch.no_grad():
        expected = model(x)
    model.train()
    torch.testing.assert_close(learn.get_preds(raw=True)[0], expected)
    assert learn.predict(x[0])[2][1] == pytest.approx(float(expected[0].sigmoid()), abs=1e-6)


class CancelFirstStep(Callback):
    """Cancels the optimizer's step on the first batch of each epoch."""

    def before_step(self, learn):
        if learn.iter == 0:
            raise CancelStepException()


def test_a_cancelled_step_leaves_no_gradient_behind():
    """The gradient of a batch whose step was cancelled is cleared, not added to the next one's."""
    dls = toy_dls(n=64, bs=32, shuffle=False)  # two batches an epoch
    learn = learner(dls, opt_func=SGD, loss_func=mnist_loss, cbs=[CancelFirstStep()])
    torch.manual_seed(0)
    twin = nn.Linear(8, 1)
    learn.fit(1, 0.5)
    (_, _), (xb, yb) = list(dls.train)  # only the second batch's step is taken
    mnist_loss(twin(xb), yb).backward()
    with torch.no_grad():
        for p in twin.parameters():
            p -= 0.5 * p.grad
    for a, b in zip(learn.model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a, b)


def test_callbacks_run_by_their_order_not_the_order_given():
    calls = []

    def recorder(name: str, order: int) -> Callback:
        cb = type(name, (Callback,), {"order": order, "before_fit": lambda self, learn: calls.append(name)})
        return cb()

    given = [recorder("late", 70), recorder("early", -5), recorder("middle", 20)]
    learner(cbs=given, loss_func=mnist_loss).fit(0)
    assert calls == ["early", "middle", "late"]
    calls.clear()
    learn = learner(loss_func=mnist_loss)
    learn.add_cbs(given[::-1])
    learn.fit(0, cbs=[recorder("first", -10)])
    assert calls == ["first", "early", "middle", "late"]


# ---------------------------------------------------------------- found by mutation testing


def test_a_fresh_learner_reads_as_one_that_has_not_trained():
    learn = Learner(toy_dls(), nn.Linear(8, 1))  # the defaults: SGD at lr 1e-3, with a progress bar
    assert (learn.training, learn.epoch, learn.iter, learn.n_epoch, learn.interrupted) == (
        False,
        0,
        0,
        0,
        False,
    )
    assert learn.lr == 1e-3 and any(type(cb).__name__ == "ProgressCallback" for cb in learn.cbs)
    assert not any(type(cb).__name__ == "ProgressCallback" for cb in learner().cbs)
    with pytest.raises(DigitlearnError) as e:
        Learner(toy_dls(), "linear1")
    assert str(e.value) == "the model must be an nn.Module or a digitlearn.models builder, not str"


@pytest.mark.parametrize("n_epoch", [-1, 1.5, True, "2"])
def test_fit_takes_a_whole_number_of_epochs(n_epoch):
    with pytest.raises(DigitlearnError) as e:
        learner().fit(n_epoch)
    assert str(e.value) == f"fit takes a whole number of epochs, 0 or more, not {n_epoch!r}"


class CountingLoader(DataLoader):
    """A DataLoader that counts how often it is moved."""

    moves = 0

    def to(self, device):
        self.moves += 1
        return super().to(device)


class Batches(list):
    """Batches in a list that can be moved but says nowhere where it is (no `device`)."""

    moved_to = None

    def to(self, device):
        self.moved_to = device
        return self


def test_data_goes_to_the_models_device_once():
    x, y = torch.randn(40, 8), torch.randint(0, 2, (40,))
    train, valid, other = CountingLoader(x, y, bs=8), CountingLoader(x, y, bs=8), CountingLoader(x, y, bs=8)
    learn = learner(DataLoaders(train, valid))
    learn.validate()  # before any fit: the validation set alone
    assert (train.device, valid.device) == (None, learn.device)
    fits = learner(DataLoaders(CountingLoader(x, y, bs=8), CountingLoader(x, y, bs=8)))
    fits.fit(1, 0.1)  # a fit: both
    assert [dl.device for dl in fits.dls] == [fits.device] * 2
    learn.fit(2, 0.1)
    learn.fit(1, 0.1)
    learn.validate()
    learn.validate(other)
    learn.validate(other)
    assert [dl.device for dl in (train, valid, other)] == [learn.device] * 3
    assert (train.moves, valid.moves, other.moves) == (1, 1, 1)
    batches = Batches([(x[:8], y[:8])])
    learn.validate(batches)
    assert batches.moved_to == learn.device


def test_validate_and_get_preds_use_the_loader_they_are_given():
    learn = learner(loss_func=bce_loss, lr=0.5)
    learn.fit(1)
    train = learn.dls.train
    x, y = train.fields
    with torch.no_grad():
        by_hand = float(bce_loss(learn.model(x), y))
    assert learn.validate(train)["valid_loss"] == pytest.approx(by_hand, rel=1e-5)
    assert learn.validate()["valid_loss"] != pytest.approx(by_hand, rel=1e-5)
    probs, targets = learn.get_preds(train)
    assert len(probs) == len(targets) == 192 and torch.equal(targets, y)
    empty = DataLoader(torch.empty(0, 8), torch.empty(0, dtype=torch.long))
    outputs, targets = learn.get_preds(empty, raw=True)
    assert outputs.shape == (0,) and targets.shape == (0,) and targets.dtype == torch.long


def test_predict_without_class_names_labels_by_index():
    dls = toy_dls()
    dls.classes = None
    learn = learner(dls)
    x = dls.valid.fields[0][0]
    label, index, probs = learn.predict(x)
    assert label == index
    assert torch.equal(learn.predict(x.tolist())[2], probs)  # without an input format: a list as it is


def test_predict_reads_image_files_the_mnist_way(tmp_path):
    from PIL import Image, ImageDraw

    from digitlearn.vision.prepare import to_mnist

    from .conftest import make_folder

    ds = load_dataset(make_folder(tmp_path / "ds", n=4))  # 8x8 images
    learn = learner(ds.dataloaders(bs=4), nn.Linear(64, 2), loss_func=cross_entropy)
    page = Image.new("L", (64, 64), 255)
    ImageDraw.Draw(page).line([(32, 10), (32, 54)], fill=0, width=5)  # a "1"
    page.save(tmp_path / "one.png")
    prepared = to_mnist(tmp_path / "one.png", (8, 8))
    expected = learn.predict(prepared)[2]
    for source in (
        tmp_path / "one.png",
        str(tmp_path / "one.png"),
        page,
        (tmp_path / "one.png").read_bytes(),
    ):
        assert torch.equal(learn.predict(source)[2], expected)
    with pytest.raises(DigitlearnError) as e:
        learner().predict(tmp_path / "one.png")
    assert str(e.value) == "this Learner's data has no image format: it cannot read image files"


def test_show_results_titles_each_image_target_then_prediction(tmp_path):
    from .conftest import make_folder

    ds = load_dataset(make_folder(tmp_path / "ds", n=5))  # 8x8 images, 10 in the validation set
    dls = ds.dataloaders(bs=4)
    learn = learner(dls, nn.Linear(64, 2), loss_func=cross_entropy, lr=0.1)
    learn.fit(2)
    probs, targets = learn.get_preds()
    fig = learn.show_results(n=5, ncols=2)
    panels = [ax for ax in fig.axes if ax.images]
    assert len(fig.axes) == 6 and len(panels) == 5  # 3 rows of 2
    names = ["3", "7"]
    assert [ax.get_title() for ax in panels] == [
        f"{names[t]} / {names[p]}"
        for t, p in zip(targets[:5].tolist(), probs[:5].argmax(1).tolist(), strict=True)
    ]
    images = dls.input_format.inverse(dls.valid.fields[0][:5])
    assert all(
        torch.equal(torch.as_tensor(ax.images[0].get_array().data), images[k].float())
        for k, ax in enumerate(panels)
    )
    assert len([ax for ax in learn.show_results(n=100).axes if ax.images]) == 10  # no more than there are
    dls.classes = None
    shown = [ax.get_title().split(" / ")[0] for ax in learn.show_results().axes if ax.images]
    assert len(shown) == 9 and set(shown) == {"0", "1"}  # nine by default
    with pytest.raises(DigitlearnError) as e:
        learner().show_results()
    assert str(e.value) == "this Learner's data has no image format: it has no images to show"


def test_repr_says_when_there_is_no_data_and_no_metrics():
    x = torch.randn(10, 8)
    empty = DataLoaders(DataLoader(x[:0], x[:0]), DataLoader(x[:0], x[:0]))
    assert (
        repr(learner(empty)) == "Learner(Linear, 9 parameters, no data, loss mnist_loss, metrics none, cpu)"
    )
    no_valid = DataLoaders(DataLoader(x, x), DataLoader(x[:0], x[:0]))
    two = learner(no_valid, metrics=[batch_accuracy, accuracy])
    assert repr(two) == (
        "Learner(Linear, 9 parameters, 10 train, 0 valid, loss mnist_loss, "
        "metrics batch_accuracy, accuracy, cpu)"
    )
    plain = DataLoaders([(x, x)], [(x, x)])  # batches in lists: no item counts to show
    assert "no data" in repr(learner(plain))


def test_config_names_the_loss_and_the_metrics():
    config = learner(loss_func=bce_loss, metrics=[batch_accuracy, accuracy]).config()
    assert config["loss"] == {"name": "bce_loss"} and config["metrics"] == ["batch_accuracy", "accuracy"]


def test_the_documented_defaults_of_fit_one_cycle_and_lr_find():
    default, explicit = learner(lr=0.05), learner(lr=0.05)
    default.fit_one_cycle(1)
    explicit.fit_one_cycle(1, 0.05, div=25.0, div_final=1e5, pct_start=0.25)
    assert default.recorder.lrs == explicit.recorder.lrs
    assert learner().lr_find().lrs == learner().lr_find(1e-7, 10.0, 100).lrs


def test_lr_find_runs_num_it_batches_even_with_one_batch_an_epoch():
    learn = learner(toy_dls(n=16, bs=16), loss_func=bce_loss)  # 12 training items: one batch
    assert len(learn.lr_find(1e-5, 1e-3, num_it=7).lrs) == 7


def test_lr_find_puts_the_optimizer_back_with_its_state():
    learn = learner(opt_func=Adam, loss_func=bce_loss)
    learn.fit(1, 0.01)
    opt, before = learn.opt, learn.opt.state_dict()
    learn.lr_find(num_it=20)
    after = learn.opt.state_dict()
    assert learn.opt is opt and after["lr"] == before["lr"] and after["mom"] == before["mom"]
    assert all(
        torch.equal(a[k], b[k])
        for a, b in zip(after["state"], before["state"], strict=True)
        for k in ("avg", "sqr_avg")
    )


def test_lr_find_after_load_checkpoint_leaves_the_resume_to_the_real_fit(tmp_path):
    first = learner(loss_func=bce_loss)
    first.fit(1, 0.1)
    first.save_checkpoint(tmp_path / "ckpt.safetensors")

    def resumed(find: bool) -> list:
        learn = learner(loss_func=bce_loss)
        learn.load_checkpoint(tmp_path / "ckpt.safetensors")
        assert learn.epochs_done == 1
        if find:
            assert len(learn.lr_find(num_it=10).lrs) == 10
        learn.fit(3, 0.1)
        return [row["valid_loss"] for row in learn.recorder.history]

    assert resumed(find=True) == resumed(find=False) and len(resumed(find=False)) == 3


def test_summary_of_a_loader_of_one_field():
    x = torch.randn(40, 8)
    learn = Learner(DataLoaders(DataLoader(x, bs=16), DataLoader(x, bs=16)), nn.Linear(8, 5), progress=False)
    assert [shape for _, shape, _, _ in learn.summary().rows] == ["16 x 5"]


def test_any_process_asks_the_other_processes_when_there_are_some():
    learn = learner()
    assert learn.any_process(True) is True and learn.any_process(False) is False
    asked = []
    learn.consensus = lambda flag: asked.append(flag) or True
    assert learn.any_process(False) is True and asked == [False]


def test_lr_find_then_fit_trains_as_fit_alone():
    def valid_losses(find: bool) -> list:
        learn = learner(loss_func=bce_loss)
        if find:
            learn.lr_find(num_it=10)  # the finder stops its fit after a step, before zero_grad
        learn.fit(2, 0.1)
        return [row["valid_loss"] for row in learn.recorder.history]

    assert valid_losses(find=True) == valid_losses(find=False)


@pytest.mark.skipif(torch.distributed.is_nccl_available(), reason="NCCL would start")
@pytest.mark.filterwarnings("ignore:Attempted to get default timeout for nccl")
def test_distributed_trains_on_the_backend_asked_for(monkeypatch):
    for name, value in {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29531",
        "RANK": "0",
        "WORLD_SIZE": "1",
    }.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(RuntimeError, match="NCCL"), learner().distributed("nccl"):
        pass  # not the CPU's default, gloo: this build has no NCCL
    assert not torch.distributed.is_initialized()


def test_one_cycle_schedules_no_momentum_for_adadelta():
    from digitlearn.training.optim import Adadelta

    learn = learner(opt_func=Adadelta, loss_func=bce_loss)
    learn.fit_one_cycle(1, 1.0)
    assert learn.opt.mom == 0  # Adadelta has no momentum to schedule
