"""A saved model is a folder: `weights.safetensors` (tensors only) and `config.json` (plain data).

The config names the architecture and its arguments, the class names, how images become inputs,
and the loss; loading builds the model from the registry in `models`, then fills in the weights.
Neither file can carry code, and both are checked (run_schema) before anything is built, so
loading a model from anywhere is safe.
"""

import json
from collections.abc import Collection
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save
from torch import nn

from .errors import DigitlearnError
from .files import atomic_path
from .jsondata import jsonable
from .run_schema import (
    MAX_CONFIG_BYTES,
    check_blank_image,
    check_config,
    check_finite,
    check_weights_header,
    parse_config,
    planned_model,
    weights_limit,
)

WEIGHTS = "weights.safetensors"
CONFIG = "config.json"
FORMAT = "digitlearn-model-1"
# an unfinished run's checkpoint (training.checkpoint): its metadata says how far the run got
CHECKPOINT = "checkpoint.safetensors"
CHECKPOINT_KEY = "digitlearn-checkpoint"


def unfinished(path: str | Path) -> tuple[int, int] | None:
    """(epochs done, epochs planned) if `path` is a run that has not finished, else None."""
    file = Path(path) / CHECKPOINT
    if not file.is_file():
        return None
    try:
        with safe_open(file, "pt") as f:  # the header only: no tensor is read
            meta = f.metadata() or {}
        return int(meta["epoch"]), int(meta["n_epoch"])
    except (SafetensorError, OSError, KeyError, ValueError):
        return None  # not a checkpoint of ours: the folder is judged by its other files


def refuse_unfinished(path: str | Path) -> None:
    """One clear line for a run that has not finished: its weights are not a trained model's."""
    progress = unfinished(path)
    if progress is not None:
        raise DigitlearnError(
            f"{path} is an unfinished run (epoch {progress[0]} of {progress[1]}): "
            f"resume it with digitlearn train --resume {path}"
        )


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
    """The config.json of a saved model folder, as strict JSON of bounded size (see run_schema)."""
    refuse_unfinished(path)
    file = Path(path) / CONFIG
    if not file.is_file():
        what = "no such folder" if not Path(path).exists() else f"no {CONFIG} in it"
        raise DigitlearnError(f"{path} is not a saved model: {what}")
    with file.open("rb") as f:  # at most one byte past the limit: the size is checked before parsing
        config = parse_config(f.read(MAX_CONFIG_BYTES + 1), file)
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise DigitlearnError(f"{file}: not a digitlearn model config (expected format {FORMAT!r})")
    return config


def read_weights(path: str | Path, expected: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors of the weights file in `path`, which must be exactly `expected`'s (names, shapes,
    dtypes) and finite. The header is checked before any tensor is read, and the file's size
    before the header, so a file cannot make this read more than the model's own size."""
    file = Path(path) / WEIGHTS
    if not file.is_file():
        raise DigitlearnError(f"{path} is not a saved model: no {WEIGHTS} in it")
    size, limit = file.stat().st_size, weights_limit(expected)
    if size > limit:
        raise DigitlearnError(
            f"{file}: {size:,} bytes, more than this model's weights take ({limit:,} at most)"
        )
    try:
        with safe_open(file, "pt") as f:
            slices = {k: f.get_slice(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
            check_weights_header(
                {k: (s.get_dtype(), tuple(s.get_shape())) for k, s in slices.items()}, expected, file
            )
            state = {k: f.get_tensor(k) for k in slices}
    except (SafetensorError, OSError) as e:
        raise DigitlearnError(f"{file}: cannot read the weights ({e})") from None
    check_finite(state, file)
    return state


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Fill `model` with the weights saved in `path`; names, shapes and dtypes must match exactly."""
    state = read_weights(path, model.state_dict())
    with torch.no_grad():
        model.load_state_dict(state)
    return model


def load_model(path: str | Path, required: Collection[str] = ()) -> tuple[nn.Module, dict]:
    """Rebuild a saved model from its folder: (model with its weights, config).

    The config is checked first (run_schema; `required`: "classes", "input", which must be there),
    then the model is planned on the meta device, which allocates nothing, and checked for size,
    then the weights are read and checked against the plan, and only then become the model's:
    assigned in place of the plan's, so no random initial weights are made only to be replaced.
    """
    file = Path(path) / CONFIG
    config = read_config(path)
    model_config = check_config(config, file, required)
    model = planned_model(model_config, config.get("input"), file)
    state = read_weights(path, model.state_dict())
    model.load_state_dict(state, assign=True)
    if config.get("input") is not None:
        check_blank_image(model, config["input"], Path(path) / WEIGHTS)
    return model, config
