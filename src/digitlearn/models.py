"""Models from the chapter: a linear model with explicit tensors, simple_net, and an MLP.

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


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
