"""What a run folder may hold, checked before anything is built from it.

A run folder can come from anywhere, and config.json decides what gets built and how it is used:
the architecture and its layer sizes, how images are scaled, which class each output names. So
every value that building or predicting reads is checked for its type and range, the parts for
agreeing with each other, and the model's planned size against a total that keeps any run within
2 GiB, all before a single weight is allocated; then the weights for fitting the model exactly
and holding finite numbers. A problem is one DigitlearnError naming the file and field:

    runs/x/config.json: model.channels[1] must be a whole number from 1 to 4,096, not 100000

Strict: `format`, `model`, `classes`, `input` and `loss`, which building and predicting read; an
unknown key inside them is refused. Tolerated: any other top-level key (`train`, `results`,
`versions`, `metrics`, what `Learner.save(extra=...)` adds), since that is metadata a later version
may add to and nothing builds from it; it is still bounded by the file's size, depth and number
rules, and `train.data`, the one part something reads (evaluate's default --data), must be text.
"""

import inspect
import json
from collections.abc import Collection
from pathlib import Path
from typing import Any, NoReturn

import torch
from torch import nn

from ..errors import DigitlearnError
from ..jsondata import JSONError, read_json
from ..models import ARCHS, MODELS, ModelSpec, build_model
from ..models.limits import MAX_CLASSES, MAX_SIZE
from ..training.losses import KINDS

# ---------------------------------------------------------------- limits

# config.json: the project writes about 2 KB, 3 levels deep, numbers of at most 24 characters
# (a float's repr) or 19 digits (a 64-bit seed)
MAX_CONFIG_BYTES = 1 << 20
MAX_DEPTH = 32  # deeper nesting is no config's, and Python's parser recurses on it
MAX_NUMBER_CHARS = 40  # int() of thousands of digits takes long, then refuses

# the command line's bounds (models.limits) apply here too, so every run it trains loads
MAX_NAME_CHARS = 255  # a class is named by a folder, and a file name has at most 255 bytes

# A total that no per-field bound gives (16 layers of 4096 channels at 1024x1024 would take
# terabytes): the weights plus what the layers output for one image, at most 2 GiB as float32.
# The recipes' models are far below it (lenet, the fast recipe's: 106k weights and 13k outputs at
# 28x28; resnet at 1024x1024: 175M outputs). Above it are runs that the command line's per-flag
# bounds allow but no one trains, such as --model mlp --size 1024 (537M weights).
MAX_NUMBERS = 2**29
# the deepest model the command line makes (resnet, 16 stages) has 203; planning 16 blocks per
# stage (2,843) takes seconds
MAX_MODULES = 1024
MAX_DATA_CHARS = 4096  # train.data: a dataset name or a path (PATH_MAX is 4096)

# the input scaling: pixels are in [0, 1], so real statistics have a mean in [0, 1] and a std of
# at most about 0.71, rounded to 4 places (0.0001 or more); the bounds leave room for hand-made
# formats while (x - mean) / std stays far from overflowing a float32
MEAN_RANGE = (-100.0, 100.0)
STD_RANGE = (1e-6, 100.0)

INPUT_KEYS = ("height", "width", "flat", "mean", "std")


# ---------------------------------------------------------------- reading config.json


def parse_config(data: bytes, file: Path) -> Any:
    """The JSON in `data` (the contents of `file`), strictly (see `jsondata.read_json`), and of at
    most MAX_CONFIG_BYTES bytes."""
    if len(data) > MAX_CONFIG_BYTES:
        raise DigitlearnError(f"{file}: {len(data):,} bytes is too large for a config (at most 1 MiB)")
    try:
        return read_json(data, MAX_DEPTH, MAX_NUMBER_CHARS)
    except JSONError as e:
        raise DigitlearnError(f"{file}: {e}") from None


# ---------------------------------------------------------------- checking values

_MISSING = object()


def shown(value: Any, limit: int = 40) -> str:
    """`value` as JSON (its escapes keep the message on one line), cut to `limit` characters."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Check:
    """Checks the values of one file, refusing each in one line that names the file and the field."""

    def __init__(self, file: Path) -> None:
        self.file = file

    def error(self, message: str) -> NoReturn:
        raise DigitlearnError(f"{self.file}: {message}")

    def fail(self, field: str, what: str, value: Any = _MISSING) -> NoReturn:
        if value is _MISSING:
            self.error(f"{field} is missing: it must be {what}")
        self.error(f"{field} must be {what}, not {shown(value)}")

    def whole(self, field: str, value: Any, low: int, high: int) -> int:
        # type(), not isinstance: true is an int to Python, and 16.0 is not a count of channels
        if type(value) is not int or not low <= value <= high:
            self.fail(field, f"a whole number from {low:,} to {high:,}", value)
        return value

    def number(self, field: str, value: Any, low: float, high: float, high_open: bool = False) -> float:
        """A number from `low` to `high` (or to under `high`, if `high_open`)."""
        ok = type(value) in (int, float) and low <= value and (value < high if high_open else value <= high)
        if not ok:  # also NaN, which fails every comparison
            self.fail(field, f"a number from {low:g} to {'under ' if high_open else ''}{high:g}", value)
        return float(value)

    def flag(self, field: str, value: Any) -> bool:
        if type(value) is not bool:
            self.fail(field, "true or false", value)
        return value

    def text(self, field: str, value: Any, max_chars: int) -> str:
        # printable: a newline or escape code in a name would break one-line messages and terminals
        if type(value) is not str or not 0 < len(value) <= max_chars or not value.isprintable():
            self.fail(field, f"a text of 1 to {max_chars:,} printable characters", value)
        return value

    def section(self, field: str, value: Any, known: Collection[str], required: Collection[str]) -> dict:
        """An object with no keys but `known`, and all of `required`."""
        if not isinstance(value, dict):
            self.fail(field, "an object", value)
        unknown = sorted(value.keys() - set(known))
        if unknown:
            self.error(f"{field}.{unknown[0]} is not a setting digitlearn knows (known: {', '.join(known)})")
        for key in required:
            if key not in value:
                self.error(f"{field}.{key} is missing")
        return value


# ---------------------------------------------------------------- the model's arguments


def check_model(check: Check, value: Any) -> dict:
    """The model's config with every argument of its builder (the builder's default for those not
    given, as building would use it), each checked against the bounds its registration declares."""
    if not isinstance(value, dict):
        check.fail("model", "an object naming an architecture and its arguments", value)
    archs = sorted(ARCHS)
    arch = value.get("arch", _MISSING)
    if type(arch) is not str or arch not in archs:
        check.fail("model.arch", f"one of {', '.join(archs)}", arch)
    params = inspect.signature(ARCHS[arch]).parameters
    args = {k: v for k, v in value.items() if k != "arch"}
    unknown = sorted(args.keys() - params.keys())
    if unknown:
        check.error(f"model.{unknown[0]} is not an argument of {arch} (its arguments: {', '.join(params)})")
    full = {name: args.get(name, p.default) for name, p in params.items()}
    bounds = spec_of(arch).arguments()
    for name, arg in full.items():
        if arg is inspect.Parameter.empty:
            check.fail(f"model.{name}", bounds[name].describe())
        found = bounds[name].problem(arg)
        if found:
            where, what, bad = found
            check.fail(f"model.{name}{where}", what, bad)
    return {"arch": arch, **full}


def spec_of(arch: str) -> ModelSpec:
    return next(spec for spec in MODELS.values() if spec.arch == arch)


# ---------------------------------------------------------------- the other sections


def check_classes(check: Check, value: Any) -> list[str]:
    if not isinstance(value, list) or not 2 <= len(value) <= MAX_CLASSES:
        check.fail("classes", f"a list of 2 to {MAX_CLASSES:,} class names", value)
    names = [check.text(f"classes[{i}]", name, MAX_NAME_CHARS) for i, name in enumerate(value)]
    for i, name in enumerate(names):
        if name in names[:i]:
            check.fail(f"classes[{i}]", "a name not already in the list", name)
    return names


def check_input(check: Check, value: Any, model: dict) -> None:
    """The input format's values, and that they are what the model takes."""
    fmt = check.section("input", value, INPUT_KEYS, required=INPUT_KEYS)
    h = check.whole("input.height", fmt["height"], 1, MAX_SIZE)
    w = check.whole("input.width", fmt["width"], 1, MAX_SIZE)
    flat = check.flag("input.flat", fmt["flat"])
    check.number("input.mean", fmt["mean"], *MEAN_RANGE)
    check.number("input.std", fmt["std"], *STD_RANGE)  # above 0: the inputs are divided by it
    spec = spec_of(model["arch"])
    if flat != spec.takes_flat:
        check.fail(
            "input.flat",
            f"{str(spec.takes_flat).lower()} for {spec.arch}, which takes {spec.inputs} inputs",
            flat,
        )
    if spec.size_arg:  # as ModelSpec.build sizes the model
        want = h * w if spec.size_arg == "n_in" else [h, w]
        got = model[spec.size_arg]
        if (list(got) if isinstance(got, tuple) else got) != want:
            check.fail(
                f"model.{spec.size_arg}", f"{shown(want)} to take {h}x{w} inputs (input.height, width)", got
            )


def check_loss(check: Check, value: Any) -> str:
    options = sorted({o for kind in KINDS.values() for o in kind.options})
    loss = check.section("loss", value, ("name", *options), required=("name",))
    name = loss["name"]
    if type(name) is not str or name not in KINDS:
        check.fail("loss.name", f"one of {', '.join(KINDS)}", name)
    for option in loss.keys() - {"name"}:  # load_learner passes them on to the loss
        if option not in KINDS[name].options:
            check.error(f"loss.{option} is not a setting of {name}")
    if "label_smoothing" in loss:
        check.number("loss.label_smoothing", loss["label_smoothing"], 0, 1, high_open=True)
    return name


def check_outputs(check: Check, n_out: int, classes: list[str] | None, loss: str | None) -> None:
    """That the model has one output per class, or one for two classes under a binary loss (or no
    loss: predicting then takes the sigmoid of one output, as for a binary loss)."""
    if loss is not None and KINDS[loss].binary:
        if n_out != 1:
            check.fail(
                "model.n_out", f"1 with loss {loss}: its output is the second class's probability", n_out
            )
        if classes is not None and len(classes) != 2:
            check.fail("classes", f"a list of 2 names with loss {loss}", classes)
    elif classes is not None:
        one_for_two = n_out == 1 and len(classes) == 2 and loss is None
        if n_out != len(classes) and not one_for_two:
            check.fail("model.n_out", f"{len(classes)}, one output for each class in classes", n_out)
    elif loss == "cross_entropy" and n_out < 2:
        check.fail("model.n_out", "2 or more with loss cross_entropy: one output per class", n_out)


def check_train(check: Check, value: Any) -> None:
    """The training metadata: free-form, except that evaluate reads `train.data`."""
    if value is None:
        return
    if not isinstance(value, dict):
        check.fail("train", "an object", value)
    if value.get("data") is not None:
        check.text("train.data", value["data"], MAX_DATA_CHARS)


REQUIRED = {"classes": "the list of class names", "input": "the input format"}


def check_config(config: dict, file: Path, required: Collection[str] = ()) -> dict:
    """Check every value of `config` (read from `file`) that building and predicting read; the
    keys in `required` (some of REQUIRED) must be there, not null. Returns the model's config
    with all its builder's arguments."""
    check = Check(file)
    for key in required:
        if config.get(key) is None:
            check.fail(key, REQUIRED[key])
    if config.get("model") is None:
        check.error(
            "names no architecture: the model was not built by a digitlearn builder, so build it "
            "yourself and use Learner.load or load_weights"
        )
    model = check_model(check, config["model"])
    classes = check_classes(check, config["classes"]) if config.get("classes") is not None else None
    if config.get("input") is not None:
        check_input(check, config["input"], model)
    loss = check_loss(check, config["loss"]) if config.get("loss") is not None else None
    check_outputs(check, model["n_out"], classes, loss)
    check_train(check, config.get("train"))
    return model


# ---------------------------------------------------------------- the model's size


def blank_input(fmt: dict, device: str | torch.device = "cpu") -> torch.Tensor:
    """A blank image (all 0) as the model takes it: (1, H*W) or (1, 1, H, W), scaled as `fmt` says."""
    shape = (1, fmt["height"] * fmt["width"]) if fmt["flat"] else (1, 1, fmt["height"], fmt["width"])
    return torch.full(shape, -fmt["mean"] / fmt["std"], device=device)


def _evaluated(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's output for `x` in eval mode (as predicting runs it), leaving its mode as it was."""
    training = model.training
    try:
        with torch.no_grad():
            return model.eval()(x)
    finally:
        model.train(training)


def outputs_bound(model: nn.Module, fmt: dict) -> int:
    """At most how many numbers the model's layers output for one image, without running it.

    No layer of digitlearn's outputs more numbers than its widest layer (the largest first
    dimension of a weight: channels or units) times the image's pixels, since its convolutions
    and pools never enlarge an image; nor, on flat inputs, more than the widest layer or the image.
    """
    layers = sum(1 for m in model.modules() if not any(m.children()))
    widest = max((t.shape[0] for t in model.state_dict().values() if t.ndim), default=1)
    pixels = fmt["height"] * fmt["width"]
    return layers * (max(widest, pixels) if fmt["flat"] else widest * pixels)


def count_outputs(model: nn.Module, fmt: dict) -> int:
    """How many numbers the (meta) model's layers output for one image, by running it on the meta
    device: exact, but its kernels take a second to load (once), so only for large images."""
    counts: list[int] = []
    leaves = [m for m in model.modules() if not any(m.children())]
    hooks = [m.register_forward_hook(lambda m, i, out: counts.append(out.numel())) for m in leaves]
    try:
        _evaluated(model, blank_input(fmt, "meta"))
    finally:
        for hook in hooks:
            hook.remove()
    return sum(counts)


def planned_model(model_config: dict, fmt: dict | None, file: Path) -> nn.Module:
    """The checked model config's model on the meta device (shapes, no memory), refused if it has
    too many layers, or too many numbers: weights, and layer outputs for one of `fmt`'s images."""
    check = Check(file)
    try:
        with torch.device("meta"):
            model = build_model(model_config)
    except DigitlearnError as e:  # lenet: images too small for its stages
        check.error(f"model: {e}")
    layers = sum(1 for _ in model.modules())
    if layers > MAX_MODULES:
        check.error(f"model: {layers:,} layers, more than a run may have ({MAX_MODULES:,})")
    weights = sum(t.numel() for t in model.state_dict().values())
    if weights > MAX_NUMBERS:
        check.error(f"model: {weights:,} weights, more than a run may have ({MAX_NUMBERS:,}, 2 GiB)")
    if fmt is not None and weights + outputs_bound(model, fmt) > MAX_NUMBERS:
        outputs = count_outputs(model, fmt)
        if weights + outputs > MAX_NUMBERS:
            check.error(
                f"model: {weights:,} weights and {outputs:,} layer outputs for one {fmt['height']}x"
                f"{fmt['width']} image, more than a run may have ({MAX_NUMBERS:,}, 2 GiB)"
            )
    return model


def check_blank_image(model: nn.Module, fmt: dict, file: Path) -> None:
    """Refuse weights whose outputs are NaN or infinite even for a blank image: finite weights can
    do it (a batch norm's negative running_var), and predicting would print '0 (nan)'."""
    out = _evaluated(model, blank_input(fmt, next(model.parameters()).device))
    if not bool(out.isfinite().all()):
        raise DigitlearnError(
            f"{file}: the model's outputs for a blank image are not finite (NaN or infinite): "
            "the weights are damaged (a batch norm's running_var below 0?)"
        )
