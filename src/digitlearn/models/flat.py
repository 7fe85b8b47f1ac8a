"""The chapter's models, on rows of H*W pixels: linear1, simple_net, and a deeper MLP."""

from collections.abc import Sequence
from typing import Any

from .limits import MAX_LAYERS, MAX_WIDTH
from .options import Option
from .registry import register_model

HIDDEN = Option("sizes", 1, MAX_WIDTH, "hidden layer sizes, e.g. 200,100", count=(0, MAX_LAYERS))


@register_model(
    "linear",
    inputs="flat",
    size_arg="n_in",
    options={"std": Option("float", 0, 100, "std of the initial weights", setting="init_std")},
    recipe={
        "epochs": 20,
        "lr": 1.0,
        "init_std": 0.01,
        "about": "the chapter's linear1 and plain SGD at lr 1.0 for 20 epochs, started at std 0.01 (the "
        "chapter's std 1.0 makes ten classes' first outputs far from uniform: 0.916 on MNIST, not 0.924)",
    },
)
def linear1(n_in: int = 28 * 28, n_out: int = 1, std: float = 1.0) -> Any:
    """One linear layer initialised as the chapter does (`randn * std`); n_out=10 for ten digits."""
    from .layers import Linear1

    return Linear1(n_in, n_out, std)


@register_model(
    "simple_net",
    inputs="flat",
    size_arg="n_in",
    options={"n_hidden": Option("int", 1, MAX_WIDTH, "hidden units")},
    recipe={"epochs": 40, "lr": 0.1, "about": "the chapter's simple_net: plain SGD at lr 0.1 for 40 epochs"},
)
def simple_net(n_in: int = 28 * 28, n_hidden: int = 30, n_out: int = 1) -> Any:
    """The chapter's neural net: linear, ReLU, linear (784-30-1)."""
    from torch import nn

    return nn.Sequential(nn.Linear(n_in, n_hidden), nn.ReLU(), nn.Linear(n_hidden, n_out))


@register_model(
    "mlp",
    inputs="flat",
    size_arg="n_in",
    options={"hidden": HIDDEN, "dropout": Option("float", 0, 1, "dropout after each hidden layer")},
    recipe={
        "epochs": 3,
        "lr": 5e-3,
        "opt": "adam",
        "one_cycle": True,
        "wd": 0.01,
        "hidden": (512, 256),
        "validate": "last",
        "about": "two hidden layers, 3 epochs of one-cycle AdamW at up to lr 0.005, validated at the end",
    },
)
def mlp(n_in: int = 28 * 28, hidden: Sequence[int] = (100,), n_out: int = 1, dropout: float = 0.0) -> Any:
    """Linear layers of the `hidden` sizes with a ReLU (and optional dropout) after each."""
    from torch import nn

    layers: list[nn.Module] = []
    for n in hidden:
        layers += [nn.Linear(n_in, n), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else [])
        n_in = n
    return nn.Sequential(*layers, nn.Linear(n_in, n_out))
