"""The pieces the models are built from: the chapter's init and linear1, 2x2 max pooling,
conv-batchnorm-ReLU blocks, the residual block, and counting parameters."""

from collections.abc import Sequence

import torch
from torch import nn


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


class MaxPool2(nn.MaxPool2d):
    """2x2 max pooling, stride 2: `nn.MaxPool2d(2)`, the same numbers, faster where no gradient is wanted.

    PyTorch's CPU max pool always works out which input won each window, for a backward pass that
    scoring, validation and inference never run; there two elementwise maxima of strided views do
    the same in about a third of the time (channels-last, AVX2). With gradients it is the library's
    own pool: its backward sends each window's gradient to one input, even where inputs tie.
    """

    def __init__(self) -> None:
        super().__init__(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the library's pool where a gradient may be wanted, and where a graph is being recorded
        # (an exported model then holds one MaxPool operator, as nn.MaxPool2d's does)
        recording = torch.jit.is_tracing() or torch.compiler.is_compiling()
        if recording or (torch.is_grad_enabled() and x.requires_grad):
            return super().forward(x)
        h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2  # an odd last row or column is dropped
        rows = torch.maximum(x[..., 0:h:2, :w], x[..., 1:h:2, :w])
        return torch.maximum(rows[..., 0::2], rows[..., 1::2])


def conv_bn(c_in: int, c_out: int, kernel: int = 3, stride: int = 1, act: bool = True) -> nn.Sequential:
    """Convolution (no bias: batch norm's shift replaces it), batch norm, then ReLU if `act`."""
    layers = [nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(c_out)]
    return nn.Sequential(*layers, *([nn.ReLU(inplace=True)] if act else []))


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


def n_params(model: nn.Module) -> int:
    """How many numbers training adjusts."""
    return sum(p.numel() for p in model.parameters())
