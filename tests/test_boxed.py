"""The model in the box: digitlearn ships the fast recipe's model, so predicting and serving
work before a user has trained anything, and from an installed wheel."""

import json
import subprocess
import sys
import zipfile

import httpx2 as httpx
import pytest

from digitlearn import Predictor
from digitlearn.cli import main
from digitlearn.inference.predictor import BOXED
from digitlearn.models.saved import CONFIG
from tests.conftest import draw_digit, encoded
from tests.test_serve import start_server


def test_predicting_needs_no_run_folder(tmp_path, capsys):
    predictor = Predictor.load()
    assert predictor.path == BOXED and predictor.classes == list("0123456789")
    right = sum(predictor.predict(draw_digit(d)).label == d for d in "0123456789")
    assert right >= 8  # typed digits, not MNIST's handwriting: the font set's 95% on ten
    image = tmp_path / "seven.png"
    image.write_bytes(encoded(draw_digit("7")))
    assert main(["predict", str(image)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"{image}: 7 ") and err.count("\n") == 1
    assert "using the model that ships with digitlearn" in err


def test_serving_needs_no_run_folder():
    proc, url = start_server()  # no run folder
    try:
        r = httpx.post(url + "api/predict", content=encoded(draw_digit("3")), timeout=30)
        assert r.status_code == 200 and r.json()["label"] == "3"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_wheel_carries_the_model_templates_and_page(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path),
         "."], capture_output=True, text=True, timeout=300, cwd=BOXED.parents[3],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    wheel = next(tmp_path.glob("digitlearn-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "digitlearn/inference/boxed/config.json", "digitlearn/inference/boxed/weights.safetensors",
        "digitlearn/inference/static/index.html", "digitlearn/chapter/templates/report.html.j2",
    ):  # fmt: skip
        assert needed in names
    assert wheel.stat().st_size < 2_000_000  # the weights are 0.4 MB


@pytest.mark.mnist
def test_the_boxed_model_is_what_its_recipe_and_seed_train(fast_run):
    """The model retrained from what its config.json records: the command `fast_run` runs
    (`digitlearn train --data mnist --recipe fast`, seed 42), shared with the other tests."""
    recorded = json.loads((BOXED / CONFIG).read_text())
    again = json.loads((fast_run / CONFIG).read_text())
    for key in ("data", "recipe", "seed"):
        assert recorded["train"][key] == again["train"][key], key
    assert recorded["model"] == again["model"]
    # bit for bit on the machine that made it; within a few test images on another CPU
    assert abs(again["results"]["accuracy"] - recorded["results"]["accuracy"]) <= 0.003
    assert again["results"]["accuracy"] >= 0.99
