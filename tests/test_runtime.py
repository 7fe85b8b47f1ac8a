"""`--runtime onnx`: predict and serve with the model exported to ONNX and run by onnxruntime, with
the same answers as PyTorch; without onnxruntime, one line."""

import json
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from digitlearn.cli import main
from digitlearn.inference.runtime import load_predictor
from digitlearn.inference.serve import create_app
from tests.conftest import draw_digit, encoded

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("digits")
    paths = []
    for digit in "1479":
        paths.append(folder / f"{digit}.png")
        draw_digit(digit).save(paths[-1])
    return paths


def predicted(run, images, *options: str, capsys) -> list[dict]:
    assert main(["predict", str(run), *map(str, images), "--json", *options]) == 0
    return json.loads(capsys.readouterr().out)


def test_onnx_predicts_as_torch_does(untrained_run, images, capsys):
    torch_rows = predicted(untrained_run, images, capsys=capsys)
    onnx_rows = predicted(untrained_run, images, "--runtime", "onnx", capsys=capsys)
    for ours, theirs in zip(onnx_rows, torch_rows, strict=True):
        assert ours["label"] == theirs["label"]
        for c, p in theirs["probabilities"].items():
            assert ours["probabilities"][c] == pytest.approx(p, abs=1e-4)


def test_the_server_answers_with_onnx_as_with_torch(untrained_run):
    predictor = load_predictor(untrained_run, runtime="onnx")
    assert "onnxruntime" in repr(predictor)
    data = encoded(draw_digit("3"))
    expected = load_predictor(untrained_run).predict(data)
    with TestClient(create_app(predictor)) as client:
        r = client.post("/api/predict", content=data, headers={"Content-Type": "image/png"})
    assert r.status_code == 200 and r.json()["label"] == expected.label
    assert r.json()["probability"] == pytest.approx(expected.probability, abs=1e-4)


def test_without_onnxruntime_it_is_one_line(untrained_run, images):
    # onnxruntime made unimportable in a fresh interpreter, as where the export extra is not installed
    code = (
        "import sys; sys.modules['onnxruntime'] = None; from digitlearn.cli import main; "
        f"sys.exit(main(['predict', {str(untrained_run)!r}, {str(images[0])!r}, '--runtime', 'onnx']))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "digitlearn: error: --runtime onnx needs onnxruntime, which is not installed: "
        "pip install 'digitlearn[export]'"
    ]
