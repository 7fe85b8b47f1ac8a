"""The TensorBoard callback and `train --log tensorboard DIR`: what TensorBoard shows, once per step."""

import csv
import signal

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from digitlearn import SGD, Callback, Learner, TensorBoard, accuracy, cross_entropy, resume_run, train_run
from digitlearn.cli import main
from tests.conftest import make_folder, toy_dls


def scalars(folder) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_each_step_and_epoch_is_logged(tmp_path):
    dls = toy_dls(n=64, bs=16, n_classes=3)
    learn = Learner(dls, torch.nn.Linear(8, 3), SGD, cross_entropy, accuracy, progress=False)
    learn.fit(2, 0.1, cbs=[TensorBoard(tmp_path / "tb")])
    logged = scalars(tmp_path / "tb")
    steps = 2 * len(dls.train)
    assert [s for s, _ in logged["batch/train_loss"]] == list(range(steps))
    assert [v for _, v in logged["batch/lr"]] == [pytest.approx(0.1)] * steps
    for name in ("train_loss", "valid_loss", "accuracy", "time"):
        expected = [(r["epoch"], pytest.approx(r[name])) for r in learn.recorder.history]
        assert logged[f"epoch/{name}"] == expected


def test_train_log_goes_on_with_a_resumed_run_and_the_csv_stays_one_table(tmp_path, capsys):
    data = make_folder(tmp_path / "digits", n=20)
    run, logs = tmp_path / "run", tmp_path / "tb"
    assert main(["train", "--data", str(data), "--out", str(run), "--epochs", "3", "--quiet",
                 "--log", "tensorboard", str(logs)]) == 0  # fmt: skip
    straight = scalars(logs)["epoch/train_loss"]
    # the same run stopped after its first epoch, then resumed with the log
    stopped, logs2 = tmp_path / "stopped", tmp_path / "tb2"

    class StopAfterFirst(Callback):
        def after_epoch(self, learn):
            if learn.epoch == 0:
                signal.raise_signal(signal.SIGINT)  # Ctrl-C: the run stops, resumable

    train_run(
        data, out=stopped, epochs=3, progress=False, log=None, cbs=[StopAfterFirst(), TensorBoard(logs2)]
    )
    resume_run(stopped, progress=False, log=None, cbs=[TensorBoard(logs2)])
    resumed = scalars(logs2)["epoch/train_loss"]
    assert [s for s, _ in resumed] == [0, 1, 2]  # no epoch twice
    assert resumed == straight
    rows = list(csv.reader((stopped / "history.csv").open()))
    assert rows[0][0] == "epoch" and [r[0] for r in rows[1:]] == ["0", "1", "2"]  # one header, no repeats
    assert main(["train", "--data", str(data), "--log", "wandb", str(logs), "--quiet"]) == 1
    assert "the known kind is tensorboard" in capsys.readouterr().err
