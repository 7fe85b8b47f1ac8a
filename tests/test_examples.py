"""The scripts in examples/ run as a user runs them, and print what they say they do.

Each runs in its own interpreter, from a temporary working folder, with the data from the
mirror: they use the public API only, so a change that breaks them breaks users' code too.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def figure(text: str, label: str) -> float:
    return float(re.search(rf"{label}:? ([0-9.]+)", text).group(1))


def test_every_example_is_tested():
    tested = {"chapter4.py", "fast_recipe_by_hand.py", "my_model.py", "my_callback.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


def test_the_chapter_on_one_screen(sample, tmp_path):
    out = run_example("chapter4.py", tmp_path)
    assert figure(out, "pixel similarity") > 0.95
    assert figure(out, "linear1") > 0.97 and figure(out, "simple_net") >= 0.98


@pytest.mark.mnist
def test_the_fast_recipe_by_hand_is_the_fast_recipe(fast_run, tmp_path):
    by_hand = figure(run_example("fast_recipe_by_hand.py", tmp_path), "accuracy")
    recipe = json.loads((fast_run / "config.json").read_text())["results"]["accuracy"]
    assert by_hand >= 0.99 and by_hand == round(recipe, 4)  # the same training, to the last image


def test_a_model_of_your_own(sample, tmp_path):
    out = run_example("my_model.py", tmp_path)
    assert figure(out, "accuracy") > 0.95 and "Predictor(two_layer, classes 3, 7" in out


def test_a_callback_of_your_own_survives_a_checkpoint(sample, tmp_path):
    out = run_example("my_callback.py", tmp_path)
    assert "resumed with the counter at 196: the same weights as without stopping: True" in out
