"""The LeNet-style CNN (`lenet`): convolutions and max pools, then hidden linear layers."""

from collections.abc import Sequence
from typing import Any

from ..errors import DigitlearnError
from .flat import HIDDEN
from .limits import MAX_WIDTH
from .options import Option
from .registry import register_model

# the fast recipe (recipes.RECIPES["fast"]) is this model's default, and best its wider form
FAST_RECIPE = {
    "epochs": 2,
    "lr": 0.015,
    "opt": "adam",
    "mom": 0.7,
    "sqr_mom": 0.9,
    "bs": 256,
    "one_cycle": True,
    "normalize": True,
    "channels": (8, 32),
    "hidden": (128,),
    "label_smoothing": 0.1,
    "skip_learned": 0.85,
    "skip_from": 0.2,
    "skip_bs": 128,
    "validate": "last",
    "about": "quickest route to 99.0% on MNIST: a LeNet-style CNN (106k parameters), 2 epochs. A fifth of "
    "an epoch on every example; from then on each batch of 256 is scored first, and the examples it is not "
    "yet sure of (p < 0.85) wait and are trained on 128 at a time; the second epoch draws from those unsure "
    "when last seen. One-cycle AdamW at up to lr 0.015, betas (0.7, 0.9), label smoothing 0.1, validated "
    "at the end. Chosen on a held-out tenth of the training images (--valid-split 0.1, seeds 1-10): as "
    "accurate as the 3-epoch recipe before it (mean 0.9891 against 0.9893) in a sixth less time",
}


@register_model(
    "lenet",
    inputs="image",
    size_arg="in_size",
    options={
        "channels": Option("sizes", 1, MAX_WIDTH, "channels per stage, e.g. 8,32"),
        "hidden": HIDDEN,
        "batch_norm": Option("int", 0, 1, "1: batch norm after each hidden linear layer"),
    },
    recipe=FAST_RECIPE,
)
def lenet(
    n_out: int = 10,
    channels: Sequence[int] = (8, 24),
    hidden: Sequence[int] = (128,),
    in_size: Sequence[int] = (28, 28),
    batch_norm: int = 0,
) -> Any:
    """A LeNet-style CNN: per entry of `channels` a convolution (5x5, then 3x3; no padding), a 2x2
    max pool and a ReLU; then linear layers of the `hidden` sizes, each with a ReLU, and the output.

    Pooling makes it tolerant of small shifts, so it learns MNIST in fewer examples than the
    strided `cnn`; a narrow first layer keeps the costly full-resolution maps small; and it has
    no batch norm on its convolutions: on a CPU that took about 40% of each step of the strided
    CNN, and 5 to 20% of best's (after or before the second pool) for no gain held out. Pooling
    before the ReLU gives the same result as after it, on a quarter of the values.

    `batch_norm=1` puts batch norm between each hidden linear layer and its ReLU (the layer's bias
    dropped: the norm's shift replaces it). On a few hundred values per image it costs next to
    nothing, and it lets best train at three times the learning rate.
    """
    from torch import nn

    from .layers import MaxPool2

    layers, c_in, (h, w) = [], 1, in_size
    for i, c in enumerate(channels):
        k = 5 if i == 0 else 3
        h, w = (h - k + 1) // 2, (w - k + 1) // 2
        if min(h, w) < 1:
            size = f"{in_size[0]}x{in_size[1]}"
            raise DigitlearnError(f"images of {size} are too small for lenet's {len(channels)} stages")
        layers += [nn.Conv2d(c_in, c, k), MaxPool2(), nn.ReLU(inplace=True)]
        c_in = c
    layers.append(nn.Flatten())
    n_in = c_in * h * w
    for n in hidden:
        norm = [nn.BatchNorm1d(n)] if batch_norm else []
        layers += [nn.Linear(n_in, n, bias=not batch_norm), *norm, nn.ReLU(inplace=True)]
        n_in = n
    return nn.Sequential(*layers, nn.Linear(n_in, n_out))
