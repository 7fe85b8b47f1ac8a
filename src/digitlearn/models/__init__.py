"""Models: the chapter's linear model and neural nets, and three CNNs, each registered with the
inputs it takes, its options and its default recipe (see `registry`).

    flat      linear1, simple_net and mlp, on rows of pixels
    strided   cnn: stride-2 convolutions with batch norm
    pooled    lenet: convolutions and max pools (the fast and best recipes')
    residual  resnet: the chapter's resnet18, resized
    layers    the pieces: the chapter's init, conv blocks, the residual block, n_params

    options   Option: a builder argument's type and bounds
    saved     a model's files: weights.safetensors and config.json
    limits    the bounds on a model's shape

A model is one new file here: a builder decorated with `register_model`. Every module of this
folder is imported below, so the command line, the recipes and saved runs then know it.
"""

import importlib
import pkgutil

from .flat import linear1, mlp, simple_net
from .options import Option
from .pooled import lenet
from .registry import ARCHS, MODELS, ModelSpec, build_model, register_model
from .residual import resnet
from .strided import cnn

# the pieces, and what reads and writes models, register nothing: importing them would only cost
_NOT_MODELS = {"layers", "limits", "options", "registry", "saved"}
for _module in pkgutil.iter_modules(__path__):
    if _module.name not in _NOT_MODELS:
        importlib.import_module(f".{_module.name}", __name__)
# each builder by its name, a user's too: `from digitlearn.models import bar_tiny`
globals().update({spec.arch: spec.builder for spec in MODELS.values()})

__all__ = [
    "ARCHS", "MODELS", "ModelSpec", "Option", "build_model", "cnn", "lenet", "linear1", "mlp",
    "register_model", "resnet", "simple_net",
]  # fmt: skip
