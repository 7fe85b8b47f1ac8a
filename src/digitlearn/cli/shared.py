"""What several commands share: argument types, option groups, reading --data and the recipe
flags, and the one way a command says it was interrupted."""

import argparse
import dataclasses
import math
from typing import TYPE_CHECKING, NoReturn

from ..models import MODELS, Option
from ..models.limits import MAX_SIZE
from ..training.recipes import RECIPES, Recipe, recipe_for

if TYPE_CHECKING:
    from ..data.dataset import Dataset

LOSS_NAMES = {"mnist": "mnist_loss", "bce": "bce_loss", "ce": "cross_entropy"}
# recipe settings that a command-line flag of the same name replaces: every one but the
# description, and each option a model declares in its registration
RECIPE_FLAGS = (
    *(f.name for f in dataclasses.fields(Recipe) if f.name not in ("about", "options")),
    *dict.fromkeys(s for spec in MODELS.values() for s in spec.settings),
)


class Interrupted(Exception):
    """Ctrl-C stopped the command's work; `main` says so in one line and exits with 130."""


# ---------------------------------------------------------------- argument types
# Every number a user types has a range, checked while parsing, before any work: a typo must not
# train to a loss of -566 (label smoothing 2), allocate 360 GB (channels 100000) or serve on
# another port than asked (70000).

MAX_SEED = 2**63 - 1  # torch.manual_seed takes up to a signed 64-bit integer


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (the full usage is a `--help` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def number(kind: type, low: float, high: float, low_open: bool = False, high_open: bool = False):
    """An argument type: a `kind` (int or float) from `low` to `high` (excluded at an open end)."""

    def parse(text: str):
        try:
            value = kind(text)
        except (ValueError, OverflowError):
            value = math.nan
        above = value > low if low_open else value >= low
        below = value < high if high_open else value <= high
        if not (above and below):  # also NaN and infinities
            if kind is int:
                what = f"a whole number from {low:,} to {high:,}"
            else:
                what = f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value

    return parse


def size(text: str) -> tuple[int, int]:
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2) or not all(1 <= p <= MAX_SIZE for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 28 or 28x28, up to {MAX_SIZE}")
    return (parts[0], parts[-1])


def index_range(text: str) -> slice:
    try:
        start, stop = (int(p) if p else None for p in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a range like 4:10") from None
    return slice(start, stop)


count = number(int, 1, 2**31 - 1)  # epochs, batches, images...
probability = number(float, 0, 1)
fraction = number(float, 0, 1, high_open=True)  # momentum, label smoothing
# any positive finite rate: one too large to train is caught by the divergence guard, in one line
learning_rate = number(float, 0, math.inf, low_open=True, high_open=True)


# ---------------------------------------------------------------- option groups


def threads_parent() -> argparse.ArgumentParser:
    """--threads, for the commands that compute with torch (`main` applies it before they run)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "--threads",
        type=number(int, 1, 1024),
        metavar="N",
        help="PyTorch threads (default: $DIGITLEARN_THREADS, else one per core); 1 can be faster when "
        "other programs keep the cores busy",
    )
    return p


def add_data(q: argparse.ArgumentParser) -> None:
    q.add_argument(
        "--data",
        default="mnist_sample",
        help="a dataset name (%(default)s, mnist, mnist_png) or a folder/archive path",
    )
    q.add_argument("--size", type=size, help="resize every image, e.g. 28 or 28x28")


def add_device(q: argparse.ArgumentParser, default: str = "auto") -> None:
    help = (
        "auto (a GPU if there is one), cpu or cuda"
        if default == "auto"
        else f"{default} (default), cuda or auto"
    )
    q.add_argument("--device", default=default, help=help)


def add_seed(q: argparse.ArgumentParser) -> None:
    q.add_argument(
        "--seed", type=number(int, 0, MAX_SEED), default=42, help="random seed (default %(default)s)"
    )


def add_recipe(q: argparse.ArgumentParser) -> None:
    """--recipe, --model, and a flag for each recipe setting (RECIPE_FLAGS)."""
    add_data(q)
    add_device(q)
    add_seed(q)
    images = ", ".join(name for name, spec in MODELS.items() if not spec.takes_flat)
    q.add_argument("--recipe", choices=list(RECIPES), help="a named recipe (see `digitlearn recipes`)")
    q.add_argument("--model", choices=list(MODELS), help="default: the recipe's model, else simple_net")
    add_model_options(q)
    q.add_argument("--bs", type=number(int, 1, 65536), help="batch size")
    q.add_argument("--opt", choices=["sgd", "adam"], help="optimizer (adam has decoupled weight decay)")
    q.add_argument("--mom", type=fraction, help="momentum (sgd, default 0) or beta1 (adam, default 0.9)")
    q.add_argument("--sqr-mom", type=fraction, help="adam's beta2 (default 0.999)")
    q.add_argument("--wd", type=number(float, 0, 10), help="weight decay")
    q.add_argument(
        "--loss",
        choices=list(LOSS_NAMES),
        help="mnist (the chapter's), bce, or ce (softmax); default mnist for two classes, else ce",
    )
    q.add_argument("--label-smoothing", type=fraction, help="label smoothing for --loss ce, e.g. 0.1")
    q.add_argument(
        "--augment", action=argparse.BooleanOptionalAction, help=f"random shifts/rotations ({images})"
    )
    q.add_argument(
        "--plain-ends",
        type=number(int, 0, 100_000),
        metavar="N",
        help="with --augment: the first N epochs and the last N train on the images as they are",
    )
    q.add_argument(
        "--whiten",
        action=argparse.BooleanOptionalAction,
        help=f"the first convolution's filters made from the training images, not trained ({images})",
    )
    q.add_argument("--normalize", action=argparse.BooleanOptionalAction, help="scale inputs to mean 0, std 1")
    q.add_argument(
        "--precision", choices=["auto", "fp32", "bf16"], help="auto: bf16 where it runs fast (AMX, GPUs)"
    )
    q.add_argument(
        "--skip-learned",
        type=probability,
        metavar="P",
        help="after the first epoch, train only on examples whose true class had probability < P "
        "when last seen (0: off)",
    )
    q.add_argument(
        "--skip-from",
        type=number(float, 0, 1, low_open=True),
        metavar="F",
        help="with --skip-learned: start skipping F of the way through the first epoch, each batch "
        "scored first (default 1: after the first epoch)",
    )
    q.add_argument(
        "--skip-bs",
        type=number(int, 0, 65536),
        metavar="N",
        help="with --skip-from: the unsure examples wait and are trained N at a time "
        "(0: each scored batch's own)",
    )
    q.add_argument(
        "--validate", choices=["each", "last"], help="validate after each epoch or after the last only"
    )
    q.add_argument("--quiet", action="store_true", help="no progress display")


def add_model_options(q: argparse.ArgumentParser) -> None:
    """A flag for each option the registered models declare (`--channels`, `--hidden`...), with
    its bounds; an option several models declare is one flag, checked again by the recipe
    against the chosen model's own bounds."""
    users: dict[str, list[str]] = {}
    declared: dict[str, Option] = {}
    for name, spec in MODELS.items():
        for setting, arg in spec.settings.items():
            users.setdefault(setting, []).append(name)
            declared.setdefault(setting, spec.options[arg])
    for setting, option in declared.items():
        q.add_argument(
            "--" + setting.replace("_", "-"),
            type=option_type(option),
            metavar="N,N" if option.kind == "sizes" else "N",
            help=f"{option.help} ({', '.join(users[setting])})",
        )


def option_type(option: Option):
    """An argument type that parses and bounds a model option."""

    def parse(text: str):
        try:
            return option.parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    return parse


# ---------------------------------------------------------------- reading the options


def load_data(args: argparse.Namespace) -> "Dataset":
    from ..data.dataset import load_dataset

    return load_dataset(args.data, size=args.size)


def recipe_flags(args: argparse.Namespace) -> dict:
    """The recipe settings the user gave as flags (None for those not given)."""
    flags = {k: getattr(args, k, None) for k in RECIPE_FLAGS}
    flags["loss"] = LOSS_NAMES.get(flags["loss"])
    return flags


def recipe_from(args: argparse.Namespace) -> Recipe:
    """The named recipe (or the model's default one), each flag the user gave replacing its setting."""
    return recipe_for(args.recipe, args.model).updated(**recipe_flags(args))
