"""A saved model folder read back: config.json checked, the model planned, then the weights.

The config names the architecture and its arguments, the class names, how images become inputs,
and the loss; loading builds the model from the registry in `models`, then fills in the weights.
Neither file can carry code, and both are checked (`schema`) before anything is built, so
loading a model from anywhere is safe. Writing one is `models.saved` (what `Learner.save` does).
"""

import functools
from collections.abc import Collection
from pathlib import Path

import torch
from torch import nn

from ..data.dataset import InputFormat
from ..data.loaders import DataLoader, DataLoaders
from ..errors import DigitlearnError
from ..models.saved import CONFIG, FORMAT, WEIGHTS, read_weights
from ..training import Learner
from ..training.losses import LOSSES
from .checkpoint import refuse_unfinished
from .schema import MAX_CONFIG_BYTES, check_blank_image, check_config, parse_config, planned_model


def read_config(path: str | Path) -> dict:
    """The config.json of a saved model folder, as strict JSON of bounded size (see `schema`)."""
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


def load_model(path: str | Path, required: Collection[str] = ()) -> tuple[nn.Module, dict]:
    """Rebuild a saved model from its folder: (model with its weights, config).

    The config is checked first (`schema`; `required`: "classes", "input", which must be there),
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


def load_learner(run_dir: str | Path, device: str | torch.device = "cpu") -> Learner:
    """A Learner for inference from a saved run (`digitlearn train`'s folder, or `learn.save`):
    the model with its weights, classes, input format and loss, and no data. `predict`,
    `get_preds(dl)` and `summary` work on it; nothing is unpickled."""
    model, config = load_model(run_dir)
    fmt = config.get("input") or None
    # no images, but of the model's input shape, which `summary` reads
    x = InputFormat(**fmt)(torch.zeros(0, fmt["height"], fmt["width"])) if fmt else torch.zeros(0)
    empty = DataLoader(x, torch.zeros(0, dtype=torch.long))
    dls = DataLoaders(empty, empty, config.get("classes"), fmt)
    loss = config.get("loss") or {"name": "cross_entropy"}
    options = {k: v for k, v in loss.items() if k != "name"}
    loss_func = LOSSES[loss["name"]]
    if options:
        loss_func = functools.partial(loss_func, **options)
    return Learner(dls, model.to(device), loss_func=loss_func, progress=False)
