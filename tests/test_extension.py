# ruff: noqa: E501  (the model file below is the issue's, long line and all)
"""Extending digitlearn is one new file: a model dropped into `models/` works everywhere.

The package is copied to a temporary folder, so the repository is never touched, and the new
file is the only difference between the copy and the original. Each command then runs in a fresh
interpreter that imports the copy, as a user's would after saving the file.
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

# stopped by a real Ctrl-C (SIGINT) after its first epoch, so that --resume has a run to go on with
STOP_AFTER_ONE_EPOCH = """
import os, signal, sys
from digitlearn import Callback, train_run

class CtrlC(Callback):
    def after_epoch(self, learn):
        if learn.epoch == 0:
            os.kill(os.getpid(), signal.SIGINT)

run = train_run(sys.argv[1], model="bar_tiny", out=sys.argv[2], epochs=2, progress=False, cbs=[CtrlC()])
assert run.resumable, run.record
"""

LOAD_AND_PREDICT = """
import sys
from digitlearn import load_learner
label, index, probs = load_learner(sys.argv[1]).predict(sys.argv[2])
print("load_learner:", label, probs.shape[0])
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

    def python(*args: str) -> str:
        done = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def digitlearn_(*args: str) -> str:
        return python("-m", "digitlearn", *args)

    run = tmp_path / "run"
    trained = digitlearn_("train", "--model", "bar_tiny", "--data", str(data), "--out", str(run), "--quiet")
    assert "training bar_tiny" in trained and f"wrote {run}" in trained
    assert "accuracy" in digitlearn_("evaluate", str(run), "--data", str(data))
    assert re.search(r"seven\.png: [37] ", digitlearn_("predict", str(run), str(image)))
    assert "load_learner: " in python("-c", LOAD_AND_PREDICT, str(run), str(image))

    stopped = tmp_path / "stopped"
    python("-c", STOP_AFTER_ONE_EPOCH, str(data), str(stopped))
    resumed = digitlearn_("train", "--resume", str(stopped), "--quiet")
    assert f"resuming {stopped} at epoch 1 of 2" in resumed and "after 2 epochs" in resumed

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
