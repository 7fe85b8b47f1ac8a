"""Callbacks: recorder, progress display, CSV log, early stopping, best model, schedules."""

import csv
import io
import json
import math

import pytest
import torch
from torch import nn

from digitlearn import (
    Callback,
    CSVLogger,
    DigitlearnError,
    EarlyStopping,
    Learner,
    ProgressCallback,
    SaveBestModel,
    accuracy,
    batch_accuracy,
    bce_loss,
    cross_entropy,
)
from digitlearn.training import (
    MixedPrecision,
    ParamScheduler,
    Recorder,
    SkipLearned,
    TerminateOnNaN,
    TrainingDiverged,
    ValidateAtEnd,
    cosine,
    format_row,
    one_cycle,
    write_history,
)
from digitlearn.training import progress as progress_module

from .conftest import toy_dls


def learner(**kwargs) -> Learner:
    torch.manual_seed(0)
    kwargs.setdefault("progress", False)
    return Learner(toy_dls(), nn.Linear(8, 1), loss_func=bce_loss, metrics=batch_accuracy, **kwargs)


def test_recorder_rows_and_batch_losses():
    learn = learner()
    learn.fit(3, 0.3)
    rec = learn.recorder
    assert rec.names == ["epoch", "train_loss", "valid_loss", "batch_accuracy", "time"]
    assert [list(r) for r in rec.history] == [rec.names] * 3
    assert len(rec.losses) == len(rec.lrs) == 3 * 6 and set(rec.lrs) == {0.3}
    assert rec.history[0]["train_loss"] == pytest.approx(sum(rec.losses[:6]) / 6, rel=1e-6)  # 6 equal batches
    assert all(r["time"] > 0 for r in rec.history)
    assert rec.plot_loss(skip_start=0).axes[0].get_xlabel() == "batch"


def test_progress_table_without_a_terminal(capsys):
    learn = learner(progress=True)  # pytest captures output: not a terminal, so no bars
    learn.fit(3, 0.3)
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].split() == ["epoch", "train_loss", "valid_loss", "batch_accuracy", "time"]
    assert [line.split()[0] for line in lines[1:]] == ["0", "1", "2"]
    assert len({len(line) for line in lines}) == 1  # aligned columns
    assert "\r" not in out + err and err == ""  # nothing redraws
    assert lines[1].split()[1] == f"{learn.recorder.history[0]['train_loss']:.6f}"


def test_progress_bars_in_a_terminal(monkeypatch, capsys):
    monkeypatch.setattr(progress_module, "interactive", lambda: True)
    learn = learner(progress=True)
    learn.fit(2, 0.3)
    out, err = capsys.readouterr()
    assert "train" in err and "batch" in err  # the bars, on stderr
    assert [line.split()[0] for line in out.splitlines()] == ["epoch", "0", "1"]


def test_progress_to_a_file():
    buf = io.StringIO()
    learn = learner(cbs=[ProgressCallback(file=buf)])
    learn.fit(2, 0.3)
    assert len(buf.getvalue().splitlines()) == 3


def test_format_row():
    names = ["epoch", "train_loss", "time"]
    assert format_row(names) == "epoch  train_loss      time"
    assert format_row(names, {"epoch": 3, "train_loss": 0.5, "time": 1.234}) == "    3    0.500000     1.23s"
    # a figure not measured that epoch (skipped validation, a cancelled stage) shows as "-"
    assert format_row(names, {"epoch": 0, "train_loss": math.nan, "time": 0.0}).split() == ["0", "-", "0.00s"]


def test_csv_logger_writes_every_epoch(tmp_path):
    path = tmp_path / "log" / "history.csv"
    seen = []

    class Peek(Callback):
        order = 66  # just after the logger

        def after_epoch(self, learn):
            seen.append(len(path.read_text().splitlines()))

    learn = learner(cbs=[CSVLogger(path), Peek()])
    learn.fit(3, 0.3)
    assert seen == [2, 3, 4]  # header plus a row per epoch, on disk as each epoch ends
    rows = list(csv.DictReader(path.open()))
    assert [float(r["valid_loss"]) for r in rows] == [r["valid_loss"] for r in learn.recorder.history]
    write_history(learn.recorder, tmp_path / "h.json")
    data = json.loads((tmp_path / "h.json").read_text())
    assert len(data["epochs"]) == 3 and len(data["batch_losses"]) == 18 and len(data["batch_lrs"]) == 18


class Script(Callback):
    """Overwrites the monitored value of each epoch with a scripted one."""

    order = 55

    def __init__(self, values):
        self.values = values

    def after_epoch(self, learn):
        learn.recorder.history[-1]["valid_loss"] = self.values[learn.epoch]


def test_early_stopping(capsys):
    learn = learner(cbs=[Script([1.0, 0.5, 0.6, 0.55, 0.7, 0.1, 0.1]), EarlyStopping(patience=3)])
    learn.fit(7, 0.1)
    assert len(learn.recorder.history) == 5  # best at epoch 1; 2, 3, 4 no better: stop after 4
    assert "early stopping after epoch 4: valid_loss has not improved for 3 epochs" in capsys.readouterr().err
    learn = learner(cbs=[Script([1.0, 0.9, 0.8]), EarlyStopping(patience=1, min_delta=0.15)])
    learn.fit(3, 0.1)
    assert len(learn.recorder.history) == 2


def test_early_stopping_on_a_metric_maximises_it():
    stopper = EarlyStopping("batch_accuracy", patience=1)
    assert stopper.mode == "max" and EarlyStopping("error_rate").mode == "min"
    with pytest.raises(DigitlearnError, match="monitors 'accuracy', which is not recorded"):
        learner(cbs=[EarlyStopping("accuracy")]).fit(1)
    with pytest.raises(DigitlearnError, match="mode must be"):
        EarlyStopping(mode="up")


def test_save_best_model_restores_the_best_weights(tmp_path, capsys):
    snapshots = []

    class Snap(Callback):
        order = 54

        def after_epoch(self, learn):
            snapshots.append([p.detach().clone() for p in learn.model.parameters()])

    best = SaveBestModel(path=tmp_path / "best")
    learn = learner(cbs=[Snap(), Script([0.9, 0.3, 0.5, 0.4]), best])
    learn.fit(4, 0.3)
    now = [p.detach() for p in learn.model.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(now, snapshots[1], strict=True))
    assert "restored the weights of epoch 1 (valid_loss 0.300000)" in capsys.readouterr().err
    other = learner()
    other.load(tmp_path / "best")
    assert all(torch.equal(a, b) for a, b in zip(other.model.parameters(), now, strict=True))


def test_the_trackers_and_the_recorder_keep_their_own_state():
    best, stop = SaveBestModel(), EarlyStopping(patience=5)
    assert best.state_dict() == {"best": math.inf, "best_epoch": None, "state": None}  # any figure improves
    learn = learner(cbs=[Script([0.9, 0.3, 0.5]), best, stop])
    learn.fit(3, 0.3)
    best_again, stop_again, recorder = SaveBestModel(), EarlyStopping(patience=5), Recorder()
    best_again.load_state_dict(best.state_dict())
    stop_again.load_state_dict(stop.state_dict())
    recorder.load_state_dict(learn.recorder.state_dict())
    assert (best_again.best, best_again.best_epoch) == (stop_again.best, stop_again.best_epoch) == (0.3, 1)
    assert all(torch.equal(v, best.state[k]) for k, v in best_again.state.items())
    assert (recorder.history, recorder.lrs, recorder.losses) == (
        learn.recorder.history,
        learn.recorder.lrs,
        learn.recorder.losses,
    )


def test_schedules():
    f = cosine(1.0, 0.0)
    assert (f(0), f(0.5), f(1)) == (1.0, pytest.approx(0.5), pytest.approx(0.0))
    sched = one_cycle(1.0, div=10, div_final=100, pct_start=0.5).scheds
    assert sched["lr"](0) == pytest.approx(0.1) and sched["lr"](0.5) == pytest.approx(1.0)
    assert sched["lr"](1.0) == pytest.approx(0.01) and sched["mom"](0.5) == pytest.approx(0.85)
    assert "mom" not in one_cycle(1.0, moms=None).scheds


def test_mixed_precision_runs_the_forward_pass_in_bf16():
    seen = []
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    model[0].register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    learn = Learner(toy_dls(n_classes=3), model, loss_func=cross_entropy, metrics=accuracy, progress=False)
    learn.to_bf16().to_bf16()  # twice is once
    assert sum(isinstance(cb, MixedPrecision) for cb in learn.cbs) == 1

    class Check(Callback):
        def after_loss(self, learn):
            assert learn.preds.dtype == torch.float32 and learn.loss.dtype == torch.float32
            assert not torch.is_autocast_enabled("cpu")  # the loss is computed outside autocast

    learn.fit(10, 0.5, cbs=[Check()])
    assert set(seen) == {torch.bfloat16} and all(p.dtype == torch.float32 for p in model.parameters())
    assert learn.recorder.history[-1]["accuracy"] > 0.9  # (fp32 gets 0.94 too)
    learn.to_fp32()
    seen.clear()
    learn.validate()
    assert set(seen) == {torch.float32}


def test_mixed_precision_leaves_autocast_when_the_forward_pass_fails():
    learn = Learner(toy_dls(), nn.Linear(7, 1), loss_func=bce_loss, progress=False).to_bf16()
    with pytest.raises(RuntimeError):
        learn.fit(1)  # 8 inputs into a 7-input layer
    assert not torch.is_autocast_enabled("cpu")


def test_terminate_on_nan_checked_in_groups_still_names_the_first_bad_batch():
    class Poison(Callback):
        def after_pred(self, learn):
            if learn.training and learn.iter >= 1:
                learn.preds = learn.preds * float("nan")

    checker = TerminateOnNaN(every=4)
    learn = learner(cbs=[Poison()])
    learn.remove_cbs([TerminateOnNaN])
    learn.add_cbs([checker])
    with pytest.raises(TrainingDiverged, match=r"at epoch 0, batch 1 "):
        learn.fit(1, 0.1)
    assert len(learn.recorder.losses) == 3  # found after the 4th loss: batches 0-2 made their step


def test_skip_learned_trains_later_epochs_on_the_examples_not_yet_sure():
    torch.manual_seed(0)
    dls = toy_dls(n=512, shuffle=True, n_classes=3)
    learn = Learner(dls, nn.Linear(8, 3), loss_func=cross_entropy, metrics=accuracy, progress=False)
    skip = SkipLearned(threshold=0.7)
    seen = []

    class Watch(Callback):
        def before_train(self, learn):
            seen.append([])

        def after_batch(self, learn):
            if learn.training:
                seen[-1] += learn.dl.indices.tolist()

    learn.fit(3, 1.0, cbs=[skip, Watch()])
    n = dls.train.n
    assert sorted(seen[0]) == list(range(n))  # the first epoch sees everything once
    assert skip.sizes[0] == n and 0 < skip.sizes[1] < n and skip.sizes[2] <= skip.sizes[1]
    assert [len(s) for s in seen] == skip.sizes and len(set(seen[1])) == len(seen[1])
    # what epoch 2 trained on is exactly what the model was unsure of when it last saw it
    with torch.no_grad():
        assert not skip.sure[torch.tensor(seen[2])].all()
    assert dls.train.subset is None and len(dls.train) == math.ceil(n / dls.train.bs)  # whole again
    with pytest.raises(DigitlearnError, match="threshold"):
        SkipLearned(threshold=1.5)


def test_skip_learned_with_the_chapters_one_output_loss():
    learn = learner()  # one output and bce: probabilities [1 - p, p]
    skip = SkipLearned(threshold=0.75)
    learn.fit(2, 1.0, cbs=[skip])
    assert skip.sizes[0] == learn.dls.train.n and skip.sizes[1] < skip.sizes[0]


def test_validate_at_end_measures_only_the_last_epoch():
    learn = learner(cbs=[ValidateAtEnd()])
    learn.fit(3, 0.3)
    rows = learn.recorder.history
    assert all(math.isnan(r["valid_loss"]) and math.isnan(r["batch_accuracy"]) for r in rows[:2])
    assert not math.isnan(rows[2]["valid_loss"]) and 0.5 < rows[2]["batch_accuracy"] <= 1
    assert learn.validate()["valid_loss"] == pytest.approx(rows[2]["valid_loss"])  # outside fit: always


def test_schedules_advance_by_epochs_of_any_size():
    seen = []

    class Shrink(Callback):  # the second epoch has a third of the batches
        def after_train(self, learn):
            learn.dls.train.subset = torch.arange(64)

        def after_fit(self, learn):
            learn.dls.train.subset = None

        def after_step(self, learn):
            seen.append((learn.epoch, learn.opt.lr))

    learner().fit(2, 1.0, cbs=[ParamScheduler({"lr": lambda pct: pct}), Shrink()])
    first = [lr for e, lr in seen if e == 0]
    second = [lr for e, lr in seen if e == 1]
    assert len(first) == 6 and len(second) == 2
    assert first == pytest.approx([k / 12 for k in range(6)]) and second == pytest.approx([0.5, 0.75])


def test_joined_schedules_switch_at_the_split_each_from_its_own_start():
    from digitlearn.training.schedules import joined

    f = joined(0.5, lambda pct: pct, lambda pct: 10 + pct)
    assert (f(0.25), f(0.5), f(0.75)) == (0.5, 10.0, 10.5)


def test_one_cycle_s_defaults_are_fastai_s():
    scheds = one_cycle(1.0).scheds
    assert scheds["lr"](0) == pytest.approx(1 / 25) and scheds["lr"](0.25) == pytest.approx(1.0)
    assert scheds["lr"](1) == pytest.approx(1e-5, rel=1e-9)
    assert scheds["mom"](0.125) == pytest.approx(0.9) and scheds["mom"](0.625) == pytest.approx(0.9)
