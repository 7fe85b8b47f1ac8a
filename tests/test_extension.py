# ruff: noqa: E501  (the model file below is the issue's, long line and all)
"""Extending digitlearn is one new file: a model dropped into `models/` works everywhere.

The package is copied to a temporary folder, so the repository is never touched, and the new
file is the only difference between the copy and the original. The commands then run in fresh
interpreters that import the copy, as a user's would after saving the file: one for training,
evaluating, predicting, loading and resuming, one for the server.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx2 as httpx

import digitlearn
from tests.conftest import draw_digit, encoded, make_folder

# the file the issue gives, as a user would write it
BAR_TINY = """from torch import nn
from .registry import register_model

@register_model("bar_tiny", inputs="image", size_arg="in_size", recipe={"epochs": 1, "lr": 0.01, "opt": "adam"})
def bar_tiny(n_out: int = 10, in_size: tuple[int, int] = (28, 28)) -> nn.Module:
    h, w = in_size
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * h * w, n_out))
"""

# every use of the new model but serving, in one interpreter that imports the copy: the commands
# through the command line's own `main`, as `python -m digitlearn` runs them
USES = """
import os, signal, sys
from digitlearn import Callback, load_learner, train_run
from digitlearn.cli import main

data, run, stopped, image = sys.argv[1:]
assert main(["train", "--model", "bar_tiny", "--data", data, "--out", run, "--quiet"]) == 0
assert main(["evaluate", run, "--data", data]) == 0
assert main(["predict", run, image]) == 0
label, index, probs = load_learner(run).predict(image)
print("load_learner:", label, probs.shape[0])


class CtrlC(Callback):  # a real Ctrl-C (SIGINT) after the first epoch: a run to resume
    def after_epoch(self, learn):
        if learn.epoch == 0:
            os.kill(os.getpid(), signal.SIGINT)


assert train_run(data, model="bar_tiny", out=stopped, epochs=2, progress=False, cbs=[CtrlC()]).resumable
assert main(["train", "--resume", stopped, "--quiet"]) == 0
"""


def test_a_model_is_one_new_file(tmp_path):
    site = tmp_path / "site"
    shutil.copytree(
        Path(digitlearn.__file__).parent, site / "digitlearn", ignore=shutil.ignore_patterns("__pycache__")
    )
    (site / "digitlearn" / "models" / "bar_tiny.py").write_text(BAR_TINY)
    env = {**os.environ, "PYTHONPATH": str(site)}
    data = make_folder(tmp_path / "digits", n=4, size=28)
    image = tmp_path / "seven.png"
    image.write_bytes(encoded(draw_digit("7")))

    run, stopped = tmp_path / "run", tmp_path / "stopped"
    args = [str(p) for p in (data, run, stopped, image)]
    done = subprocess.run(
        [sys.executable, "-c", USES, *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "training bar_tiny" in out and f"wrote {run}" in out  # train
    assert "accuracy" in out  # evaluate
    assert re.search(r"seven\.png: [37] ", out)  # predict
    assert "load_learner: " in out
    assert f"resuming {stopped} at epoch 1 of 2" in out and "after 2 epochs" in out  # train --resume

    server = subprocess.Popen(
        [sys.executable, "-m", "digitlearn", "serve", str(run), "--port", "0"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = re.search(r"http://\S+/", server.stdout.readline()).group(0)
        answer = httpx.post(url + "api/predict", content=image.read_bytes(), timeout=30).json()
        assert answer["label"] in ("3", "7")
    finally:
        server.terminate()
        server.wait(timeout=10)
