"""The model registry: every model's builder, the inputs it takes, its options, and its recipe.

A model is registered where it is defined, by decorating its builder:

    @register_model("lenet", inputs="image", size_arg="in_size",
                    options={"channels": Option("sizes", 1, MAX_WIDTH, "channels per stage")},
                    recipe={"epochs": 3, "lr": 0.01, ...})
    def lenet(n_out=10, channels=(8, 24), in_size=(28, 28)): ...

`inputs` is "flat" (rows of H*W pixels) or "image" ((1, H, W) maps); `size_arg` names the builder
argument that takes the image size (n_in for flat models, in_size for images, None if any size
will do); `options` declares every other argument but `n_out`, with its type and bounds (see
`options.Option`): each is a recipe setting and a command-line flag, and is checked when a saved
run is loaded. `recipe` is the model's default recipe, as settings.

Every module in this folder is imported when the package is (`models/__init__.py`), so a model
is one new file here.

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
from .options import N_OUT, SIZE_ARGS, Option


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: what `--model NAME` builds, and how."""

    name: str
    builder: Callable[..., Any]  # returns an nn.Module carrying `config`
    inputs: Literal["flat", "image"]
    size_arg: str | None
    options: dict[str, Option]  # by builder argument
    recipe: dict

    @property
    def arch(self) -> str:
        """The builder's name, as saved in a run's config.json."""
        return self.builder.__name__

    @property
    def takes_flat(self) -> bool:
        return self.inputs == "flat"

    @property
    def settings(self) -> dict[str, str]:
        """The recipe settings this model takes, each with the builder argument it sets."""
        return {opt.setting or arg: arg for arg, opt in self.options.items()}

    def arguments(self) -> dict[str, Option]:
        """Every builder argument with its bounds: n_out, the size argument, and the options."""
        size = {self.size_arg: SIZE_ARGS[self.size_arg]} if self.size_arg else {}
        return {"n_out": N_OUT, **size, **self.options}

    def build(self, n_out: int, size: tuple[int, int], settings: dict) -> Any:
        """A fresh model for images of `size` and `n_out` outputs; `settings` are recipe settings
        (those this model has no option for, and those that are None, are left out)."""
        names = self.settings
        kwargs = {names[k]: v for k, v in settings.items() if k in names and v is not None}
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
    options: dict[str, Option] | None = None,
    recipe: dict | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated builder as model `name` (see the module's docstring)."""
    if size_arg not in (None, *SIZE_ARGS):
        raise DigitlearnError(
            f"model {name}: size_arg is one of {', '.join(SIZE_ARGS)} or None, not {size_arg!r}"
        )

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(fn)
        declared = {"n_out", *([size_arg] if size_arg else []), *(options or {})}
        undeclared = [p for p in sig.parameters if p not in declared]
        if undeclared or "n_out" not in sig.parameters:
            # every argument is checked when a saved run is loaded, so each needs its bounds
            what = f"argument {undeclared[0]!r} has no Option" if undeclared else "it takes no n_out"
            raise DigitlearnError(f"model {name}: {what} (see digitlearn.models.registry)")

        @functools.wraps(fn)
        def build(*args, **kwargs) -> Any:
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            model = fn(*bound.args, **bound.kwargs)
            model.config = {"arch": fn.__name__, **jsonable(bound.arguments)}
            return model

        MODELS[name] = ModelSpec(name, build, inputs, size_arg, dict(options or {}), dict(recipe or {}))
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
