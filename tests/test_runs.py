"""Saved models: safetensors weights and a JSON config; loading builds from the registry only."""

import json
import os

import pytest
import torch
from torch import nn

from digitlearn import DigitlearnError, load_model, mlp
from digitlearn.runs import CONFIG, WEIGHTS, load_weights, read_config, save_model


def test_round_trip(tmp_path):
    model = mlp(n_in=6, hidden=[5], n_out=3)
    save_model(tmp_path / "m", model, {"model": model.config, "classes": ["a", "b", "c"]})
    loaded, config = load_model(tmp_path / "m")
    assert config["classes"] == ["a", "b", "c"] and config["model"]["hidden"] == [5]
    x = torch.rand(4, 6)
    assert torch.equal(loaded(x), model(x))
    umask = os.umask(0)
    os.umask(umask)
    for name in (WEIGHTS, CONFIG):
        assert (tmp_path / "m" / name).stat().st_mode & 0o777 == 0o666 & ~umask


def test_loading_errors_name_the_file(tmp_path):
    with pytest.raises(DigitlearnError, match="is not a saved model: no such folder"):
        read_config(tmp_path / "nope")
    folder = tmp_path / "m"
    folder.mkdir()
    with pytest.raises(DigitlearnError, match=f"no {CONFIG} in it"):
        read_config(folder)
    (folder / CONFIG).write_text("{not json")
    with pytest.raises(DigitlearnError, match=r"config\.json: not valid JSON"):
        read_config(folder)
    (folder / CONFIG).write_text(json.dumps({"format": "pickle"}))
    with pytest.raises(DigitlearnError, match="not a digitlearn model config"):
        read_config(folder)
    (folder / CONFIG).write_text(json.dumps({"format": "digitlearn-model-1", "model": {"arch": "eval"}}))
    with pytest.raises(DigitlearnError, match="unknown model architecture 'eval'"):
        load_model(folder)
    (folder / CONFIG).write_text(json.dumps({"format": "digitlearn-model-1", "model": None}))
    with pytest.raises(DigitlearnError, match="names no architecture"):
        load_model(folder)


def test_weights_must_fit(tmp_path):
    model = nn.Linear(4, 2)
    save_model(tmp_path / "m", model, {})
    with pytest.raises(DigitlearnError, match=r"tensor 'bias' is \(2,\) not \(3,\)"):
        load_weights(nn.Linear(4, 3), tmp_path / "m")
    with pytest.raises(DigitlearnError, match=r"tensor '0\.bias' is missing"):
        load_weights(nn.Sequential(nn.Linear(4, 2)), tmp_path / "m")
    (tmp_path / "m" / WEIGHTS).write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00garbage!")
    with pytest.raises(DigitlearnError, match=r"weights\.safetensors: cannot read the weights"):
        load_weights(model, tmp_path / "m")


def test_a_file_is_not_a_folder(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(DigitlearnError, match="is a file"):
        save_model(tmp_path / "f", nn.Linear(1, 1), {})
