"""The compact ResNet (`resnet`): the chapter's resnet18, resized for small grey images."""

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from .limits import MAX_LAYERS
from .options import Option
from .registry import register_model
from .strided import CHANNELS, CNN_RECIPE


@register_model(
    "resnet",
    inputs="image",
    size_arg=None,  # global average pooling takes any size
    options={
        "channels": replace(CHANNELS, first_low=2),  # the stem has channels[0] // 2
        "blocks": Option("int", 1, MAX_LAYERS, "residual blocks per stage"),
    },
    recipe={
        **CNN_RECIPE,
        "epochs": 5,
        "channels": None,
        "label_smoothing": 0.1,
        "augment": True,
        "about": "the compact ResNet (303k parameters): 5 epochs of one-cycle AdamW at up to lr 0.01, "
        "augmented, label smoothing 0.1",
    },
)
def resnet(n_out: int = 10, channels: Sequence[int] = (32, 64, 128), blocks: int = 1) -> Any:
    """A 3x3 stem, then per entry of `channels` a stage of `blocks` residual blocks whose first halves
    the image (28 -> 14 -> 7 -> 4), then global average pooling and a linear layer."""
    from torch import nn

    from .layers import ResBlock, conv_bn

    layers: list[nn.Module] = [conv_bn(1, channels[0] // 2)]
    c_in = channels[0] // 2
    for c in channels:
        for i in range(blocks):
            layers.append(ResBlock(c_in, c, stride=2 if i == 0 else 1))
            c_in = c
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, n_out))
