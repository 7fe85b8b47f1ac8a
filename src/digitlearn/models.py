"""Models: the chapter's linear model (explicit tensors), simple_net and an MLP, then two
convolutional nets for images: a small fast CNN and a compact ResNet.

Each builder records the arguments it was called with as `model.config`, so a saved model is
rebuilt from JSON by name (`build_model`): loading never runs code from a file.
"""

import functools
import inspect
from collections.abc import Callable, Sequence

import torch
from torch import nn

from .errors import DigitlearnError

ARCHS: dict[str, Callable[..., nn.Module]] = {}


def arch(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a model builder; the model it returns carries `config` = {"arch": name, **args}."""
    sig = inspect.signature(fn)

    @functools.wraps(fn)
    def build(*args, **kwargs) -> nn.Module:
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        model = fn(*bound.args, **bound.kwargs)
        model.config = {"arch": fn.__name__, **{k: _jsonable(v) for k, v in bound.arguments.items()}}
        return model

    ARCHS[fn.__name__] = build
    return build


def _jsonable(v: object) -> object:
    return list(v) if isinstance(v, tuple) else v


def build_model(config: dict) -> nn.Module:
    """A fresh model from its `config` (as recorded by a registered builder)."""
    args = dict(config)
    name = args.pop("arch", None)
    if name not in ARCHS:
        known = ", ".join(sorted(ARCHS))
        raise DigitlearnError(f"unknown model architecture {name!r} (known: {known})")
    try:
        return ARCHS[name](**args)
    except TypeError as e:
        raise DigitlearnError(f"bad arguments for model {name!r}: {e}") from None


def init_params(size: int | Sequence[int], std: float = 1.0) -> torch.Tensor:
    """Random normal parameters scaled by `std`, tracked by autograd (the chapter's init)."""
    return (torch.randn(size) * std).requires_grad_()


class Linear1(nn.Module):
    """The chapter's `linear1`: `xb @ weights + bias`, with explicit weight and bias tensors."""

    def __init__(self, n_in: int, n_out: int, std: float) -> None:
        super().__init__()
        self.weights = nn.Parameter(init_params((n_in, n_out), std))
        self.bias = nn.Parameter(init_params(n_out, std))

    def forward(self, xb: torch.Tensor) -> torch.Tensor:
        return xb @ self.weights + self.bias


@arch
def linear1(n_in: int = 28 * 28, n_out: int = 1, std: float = 1.0) -> nn.Module:
    """One linear layer initialised as the chapter does (`randn * std`); n_out=10 for ten digits."""
    return Linear1(n_in, n_out, std)


@arch
def simple_net(n_in: int = 28 * 28, n_hidden: int = 30, n_out: int = 1) -> nn.Module:
    """The chapter's neural net: linear, ReLU, linear (784-30-1)."""
    return nn.Sequential(nn.Linear(n_in, n_hidden), nn.ReLU(), nn.Linear(n_hidden, n_out))


@arch
def mlp(
    n_in: int = 28 * 28, hidden: Sequence[int] = (100,), n_out: int = 1, dropout: float = 0.0
) -> nn.Module:
    """Linear layers of the `hidden` sizes with a ReLU (and optional dropout) after each."""
    layers: list[nn.Module] = []
    for n in hidden:
        layers += [nn.Linear(n_in, n), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else [])
        n_in = n
    return nn.Sequential(*layers, nn.Linear(n_in, n_out))


def conv_bn(c_in: int, c_out: int, kernel: int = 3, stride: int = 1, act: bool = True) -> nn.Sequential:
    """Convolution (no bias: batch norm's shift replaces it), batch norm, then ReLU if `act`."""
    layers = [nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(c_out)]
    return nn.Sequential(*layers, *([nn.ReLU(inplace=True)] if act else []))


def _halved(size: int, kernel: int) -> int:
    """The output size of a stride-2 convolution padded by kernel // 2."""
    return (size + 2 * (kernel // 2) - kernel) // 2 + 1


@arch
def cnn(
    n_out: int = 10, channels: Sequence[int] = (16, 32, 64), in_size: Sequence[int] = (28, 28)
) -> nn.Module:
    """A small, fast CNN: stride-2 convolutions (5x5, then 3x3) with batch norm, then one linear layer.

    Each stride-2 convolution halves the image, so the deep layers are cheap (28 -> 14 -> 7 -> 4);
    the last feature map is flattened rather than pooled, which keeps where each stroke is.
    """
    layers, c_in, (h, w) = [], 1, in_size
    for i, c in enumerate(channels):
        k = 5 if i == 0 else 3  # a wider first kernel sees a whole stroke width at once
        layers.append(conv_bn(c_in, c, k, stride=2))
        c_in, h, w = c, _halved(h, k), _halved(w, k)
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(c_in * h * w, n_out))


@arch
def lenet(
    n_out: int = 10,
    channels: Sequence[int] = (8, 24),
    hidden: Sequence[int] = (128,),
    in_size: Sequence[int] = (28, 28),
) -> nn.Module:
    """A LeNet-style CNN: per entry of `channels` a convolution (5x5, then 3x3; no padding), a 2x2
    max pool and a ReLU; then linear layers of the `hidden` sizes, each with a ReLU, and the output.

    Pooling makes it tolerant of small shifts, so it learns MNIST in fewer examples than the
    strided `cnn`; a narrow first layer keeps the costly full-resolution maps small; and it has
    no batch norm, which would take about 40% of each step on a CPU. Pooling before the ReLU gives
    the same result as after it, on a quarter of the values.
    """
    layers, c_in, (h, w) = [], 1, in_size
    for i, c in enumerate(channels):
        k = 5 if i == 0 else 3
        h, w = (h - k + 1) // 2, (w - k + 1) // 2
        if min(h, w) < 1:
            size = f"{in_size[0]}x{in_size[1]}"
            raise DigitlearnError(f"images of {size} are too small for lenet's {len(channels)} stages")
        layers += [nn.Conv2d(c_in, c, k), nn.MaxPool2d(2), nn.ReLU(inplace=True)]
        c_in = c
    layers.append(nn.Flatten())
    n_in = c_in * h * w
    for n in hidden:
        layers += [nn.Linear(n_in, n), nn.ReLU(inplace=True)]
        n_in = n
    return nn.Sequential(*layers, nn.Linear(n_in, n_out))


class ResBlock(nn.Module):
    """Two 3x3 convolutions plus a shortcut: relu(convs(x) + shortcut(x)).

    The shortcut is the identity, or (when the block changes size or channels) an average pool and
    a 1x1 convolution. The second batch norm starts at zero, so every block starts as its shortcut:
    a deep net begins as a shallow one and the gradient reaches the first layers unchanged.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.convs = nn.Sequential(conv_bn(c_in, c_out, stride=stride), conv_bn(c_out, c_out, act=False))
        nn.init.zeros_(self.convs[1][1].weight)
        shortcut: list[nn.Module] = []
        if stride != 1:
            shortcut.append(nn.AvgPool2d(stride, ceil_mode=True))
        if c_in != c_out:
            shortcut.append(conv_bn(c_in, c_out, kernel=1, act=False))
        self.shortcut = nn.Sequential(*shortcut)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.convs(x) + self.shortcut(x))


@arch
def resnet(n_out: int = 10, channels: Sequence[int] = (32, 64, 128), blocks: int = 1) -> nn.Module:
    """A compact ResNet for small grey images (the chapter's resnet18, resized for 28x28).

    A 3x3 stem, then per entry of `channels` a stage of `blocks` residual blocks whose first halves
    the image (28 -> 14 -> 7 -> 4), then global average pooling and a linear layer.
    """
    layers: list[nn.Module] = [conv_bn(1, channels[0] // 2)]
    c_in = channels[0] // 2
    for c in channels:
        for i in range(blocks):
            layers.append(ResBlock(c_in, c, stride=2 if i == 0 else 1))
            c_in = c
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, n_out))


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
