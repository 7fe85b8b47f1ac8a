"""Models: the chapter's linear model and neural nets, and three CNNs, each registered with the
inputs it takes, its options and its default recipe (see `registry`).

    flat      linear1, simple_net and mlp, on rows of pixels
    strided   cnn: stride-2 convolutions with batch norm
    pooled    lenet: convolutions and max pools (the fast and best recipes')
    residual  resnet: the chapter's resnet18, resized
    layers    the pieces: the chapter's init, conv blocks, the residual block, n_params

To add a model, write its builder in a module here, decorated with `register_model`, import it
below, and test it: the command line, the recipes and saved runs then know it.
"""

from .flat import linear1, mlp, simple_net
from .pooled import lenet
from .registry import ARCHS, MODELS, ModelSpec, build_model, register_model
from .residual import resnet
from .strided import cnn

__all__ = [
    "ARCHS", "MODELS", "ModelSpec", "build_model", "cnn", "lenet", "linear1", "mlp", "register_model",
    "resnet", "simple_net",
]  # fmt: skip
