"""`digitlearn export`: the model as one ONNX or TorchScript file that other runtimes read, with
the same answers as the run it came from."""

import json

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from digitlearn import Predictor
from digitlearn.cli import main
from digitlearn.inference.export import export


@pytest.mark.mnist
def test_onnx_in_onnxruntime_matches_the_run(fast_run, mnist, tmp_path, capsys):
    out = tmp_path / "model.onnx"
    assert main(["export", str(fast_run), "--format", "onnx", "--out", str(out)]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {out}: onnx, input float32 (N, 1, 28, 28)")
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(props["classes"]) == list("0123456789")
    assert json.loads(props["input"])["mean"] == pytest.approx(0.1307)

    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    pixels = (mnist.valid.x.float() / 255)[:, None].numpy()  # the test set as a runtime sees it
    got = np.concatenate(
        [session.run(None, {"pixels": pixels[i : i + 1000]})[0] for i in range(0, len(pixels), 1000)]
    )
    predictor = Predictor.load(fast_run)
    expected = torch.cat(
        [predictor.probabilities(mnist.valid.x[i : i + 1000]) for i in range(0, len(pixels), 1000)]
    )
    assert np.abs(got - expected.numpy()).max() <= 1e-4
    accuracy = float((got.argmax(1) == mnist.valid.y.numpy()).mean())
    recorded = json.loads((fast_run / "config.json").read_text())["results"]["accuracy"]
    assert abs(accuracy - recorded) <= 0.002


def test_torchscript_carries_its_classes_and_answers_as_the_model(untrained_run, tmp_path):
    predictor = Predictor.load(untrained_run)
    out = export(predictor, tmp_path / "model.pt", "torchscript")
    files = {"classes.json": "", "input.json": ""}
    loaded = torch.jit.load(str(out), _extra_files=files)
    assert json.loads(files["classes.json"]) == predictor.classes
    x = torch.rand(3, 28, 28)
    torch.testing.assert_close(loaded(x[:, None]), predictor.probabilities(x), atol=1e-5, rtol=0)


def test_an_unknown_format_and_a_bad_run_are_one_line(untrained_run, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["export", str(untrained_run), "--format", "tflite", "--out", str(tmp_path / "m")])
    assert main(["export", str(tmp_path / "nothing"), "--out", str(tmp_path / "m.onnx")]) == 1
    assert "is not a saved model" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()
