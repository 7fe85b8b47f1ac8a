"""The model registry: every model's builder, the inputs it takes, its options, and its recipe.

A model is registered where it is defined, by decorating its builder:

    @register_model("lenet", inputs="image", size_arg="in_size", options=("channels", "hidden"),
                    recipe={"epochs": 3, "lr": 0.01, ...})
    def lenet(n_out=10, channels=(8, 24), hidden=(128,), in_size=(28, 28)): ...

`inputs` is "flat" (rows of H*W pixels) or "image" ((1, H, W) maps); `size_arg` names the builder
argument that takes the image size (n_in for flat models, in_size for images, None if any size
will do); `options` are the recipe settings the builder takes as arguments of the same name
(`init_std` is linear1's `std`); `recipe` is the model's default recipe, as settings.

A built model carries `config` = {"arch": builder name, **arguments}: a saved model is rebuilt from
JSON by name (`build_model`), so loading never runs code from a file. Builders import torch only
when called, so the registry, and with it `digitlearn --help`, loads at once.
"""

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import DigitlearnError
from ..jsondata import jsonable

# recipe settings whose builder argument has another name
ARGUMENT_NAMES = {"init_std": "std"}


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: what `--model NAME` builds, and how."""

    name: str
    builder: Callable[..., Any]  # returns an nn.Module carrying `config`
    inputs: Literal["flat", "image"]
    size_arg: str | None
    options: tuple[str, ...]
    recipe: dict

    @property
    def arch(self) -> str:
        """The builder's name, as saved in a run's config.json."""
        return self.builder.__name__

    @property
    def takes_flat(self) -> bool:
        return self.inputs == "flat"

    def build(self, n_out: int, size: tuple[int, int], settings: dict) -> Any:
        """A fresh model for images of `size` and `n_out` outputs; `settings` are recipe settings
        (those this model has no option for, and those that are None, are left out)."""
        kwargs = {
            ARGUMENT_NAMES.get(k, k): v for k, v in settings.items() if k in self.options and v is not None
        }
        if self.size_arg == "n_in":
            kwargs["n_in"] = size[0] * size[1]
        elif self.size_arg:
            kwargs[self.size_arg] = size
        return self.builder(n_out=n_out, **kwargs)


MODELS: dict[str, ModelSpec] = {}  # by model name (`--model`)
ARCHS: dict[str, Callable[..., Any]] = {}  # builders by arch name (config.json)


def register_model(
    name: str,
    inputs: Literal["flat", "image"],
    size_arg: str | None,
    options: tuple[str, ...] = (),
    recipe: dict | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated builder as model `name` (see the module's docstring)."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def build(*args, **kwargs) -> Any:
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            model = fn(*bound.args, **bound.kwargs)
            model.config = {"arch": fn.__name__, **jsonable(bound.arguments)}
            return model

        MODELS[name] = ModelSpec(name, build, inputs, size_arg, tuple(options), dict(recipe or {}))
        ARCHS[fn.__name__] = build
        return build

    return register


def build_model(config: dict) -> Any:
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
