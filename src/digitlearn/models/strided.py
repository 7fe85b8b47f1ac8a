"""The strided CNN: stride-2 convolutions with batch norm, then one linear layer (`cnn`)."""

from collections.abc import Sequence
from typing import Any

from .limits import MAX_WIDTH
from .options import Option
from .registry import register_model

CHANNELS = Option("sizes", 1, MAX_WIDTH, "channels per stage, e.g. 16,32,64")

# the CNN's default recipe, which the ResNet's starts from
CNN_RECIPE = {
    "epochs": 3,
    "lr": 0.01,
    "opt": "adam",
    "bs": 256,
    "one_cycle": True,
    "normalize": True,
    "precision": "auto",
    "channels": (16, 32, 64),
    "about": "the strided CNN with batch norm (34k parameters): 3 epochs of one-cycle AdamW at up to "
    "lr 0.01, batch 256",
}


def halved(size: int, kernel: int) -> int:
    """The output size of a stride-2 convolution padded by kernel // 2."""
    return (size + 2 * (kernel // 2) - kernel) // 2 + 1


@register_model("cnn", inputs="image", size_arg="in_size", options={"channels": CHANNELS}, recipe=CNN_RECIPE)
def cnn(n_out: int = 10, channels: Sequence[int] = (16, 32, 64), in_size: Sequence[int] = (28, 28)) -> Any:
    """A small CNN: stride-2 convolutions (5x5, then 3x3) with batch norm, then one linear layer.

    Each stride-2 convolution halves the image, so the deep layers are cheap (28 -> 14 -> 7 -> 4);
    the last feature map is flattened rather than pooled, which keeps where each stroke is.
    """
    from torch import nn

    from .layers import conv_bn

    layers, c_in, (h, w) = [], 1, in_size
    for i, c in enumerate(channels):
        k = 5 if i == 0 else 3  # a wider first kernel sees a whole stroke width at once
        layers.append(conv_bn(c_in, c, k, stride=2))
        c_in, h, w = c, halved(h, k), halved(w, k)
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(c_in * h * w, n_out))
