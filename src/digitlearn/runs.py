"""A saved model is a folder: `weights.safetensors` (tensors only) and `config.json` (plain data).

The config names the architecture and its arguments, the class names, how images become inputs,
and the loss; loading builds the model from the registry in `models`, then fills in the weights.
Neither file can carry code, so loading a model from anywhere is safe.
"""

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from .errors import DigitlearnError
from .files import atomic_path
from .jsondata import jsonable
from .models import build_model

WEIGHTS = "weights.safetensors"
CONFIG = "config.json"
FORMAT = "digitlearn-model-1"


def save_model(path: str | Path, model: nn.Module, config: dict) -> Path:
    """Write the model's weights and `config` into the folder `path` (created if needed)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise DigitlearnError(f"{path} is a file: a saved model is a folder")
    # copies: safetensors refuses tensors that share memory, and wants them on the CPU
    state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path / WEIGHTS) as tmp:
        tmp.write_bytes(save(state))  # written by Python, so with the usual umask permissions
    with atomic_path(path / CONFIG) as tmp:
        # strict JSON: an interrupted run's results hold NaN, which JSON spells null
        tmp.write_text(json.dumps(jsonable({"format": FORMAT, **config}), indent=2, allow_nan=False) + "\n")
    return path


def read_config(path: str | Path) -> dict:
    """The config.json of a saved model folder."""
    file = Path(path) / CONFIG
    if not file.is_file():
        what = "no such folder" if not Path(path).exists() else f"no {CONFIG} in it"
        raise DigitlearnError(f"{path} is not a saved model: {what}")
    try:
        config = json.loads(file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DigitlearnError(f"{file}: not valid JSON ({e})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise DigitlearnError(f"{file}: not a digitlearn model config (expected format {FORMAT!r})")
    return config


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Fill `model` with the weights saved in `path`; names and shapes must match exactly."""
    file = Path(path) / WEIGHTS
    if not file.is_file():
        raise DigitlearnError(f"{path} is not a saved model: no {WEIGHTS} in it")
    try:
        state = load_file(file)
    except (SafetensorError, OSError) as e:
        raise DigitlearnError(f"{file}: cannot read the weights ({e})") from None
    own = model.state_dict()
    missing, extra = sorted(own.keys() - state.keys()), sorted(state.keys() - own.keys())
    wrong = sorted(k for k in own.keys() & state.keys() if own[k].shape != state[k].shape)
    if missing or extra or wrong:
        k = (missing or extra or wrong)[0]
        problem = (
            "missing"
            if missing
            else "unexpected"
            if extra
            else f"{tuple(state[k].shape)} not {tuple(own[k].shape)}"
        )
        raise DigitlearnError(f"{file} does not fit this model: tensor {k!r} is {problem}")
    with torch.no_grad():
        model.load_state_dict(state)
    return model


def load_model(path: str | Path) -> tuple[nn.Module, dict]:
    """Rebuild a saved model from its folder: (model with its weights, config)."""
    config = read_config(path)
    if not isinstance(config.get("model"), dict):
        raise DigitlearnError(
            f"{Path(path) / CONFIG} names no architecture: the model was not built by a digitlearn "
            "builder, so build it yourself and use Learner.load or load_weights"
        )
    return load_weights(build_model(config["model"]), path), config
