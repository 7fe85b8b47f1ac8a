"""Recipes: named, documented sets of training settings (model, optimizer, schedule, epochs...).

Every model has a default recipe: for the chapter's models, the chapter's own settings, so
`digitlearn train --model simple_net` repeats the book. `fast` and `best` are the routes to 99.0%
and 99.5% on full MNIST. A command-line flag overrides one setting of whichever recipe is used.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from ..errors import DigitlearnError
from ..jsondata import jsonable
from ..models import MODELS, ModelSpec

# The tables below are what the command line offers, and they need no torch: what builds a
# Learner imports it when called, so `digitlearn --help` and `digitlearn recipes` answer at once.
if TYPE_CHECKING:
    import torch

    from ..data.dataset import Dataset
    from . import Callback, History, Learner


# a sensible learning rate for each optimizer, when a recipe is switched to it
OPTIMIZER_LR = {"sgd": 0.1, "adam": 1e-3}


@dataclass(frozen=True, init=False, repr=False)
class Recipe:
    """Everything `digitlearn train` needs to know besides the data.

    Besides the settings below, a recipe takes the options its model declares in its registration
    (`channels=(8, 32)` for lenet), kept in `options` and read as attributes (`recipe.channels`).
    """

    model: str
    epochs: int
    lr: float
    opt: str = "sgd"  # sgd, or adam (with decoupled weight decay: AdamW)
    bs: int = 256
    one_cycle: bool = False
    mom: float | None = None  # None: sgd 0, adam 0.9 (one-cycle moves it 0.05 either way)
    sqr_mom: float = 0.999  # adam's beta2
    wd: float = 0.0
    loss: str | None = None  # mnist_loss, bce_loss or cross_entropy; None: mnist_loss for two
    # classes on the chapter's flat models, else cross_entropy
    label_smoothing: float = 0.0
    augment: bool = False  # random shifts, rotations and zooms of each training batch
    plain_ends: int = 0  # with augment: the first this-many epochs and the last train on plain images
    whiten: bool = False  # the first convolution's filters made from the training images' patches
    # (whitening, see training.whiten) and never trained: backward stops before it
    normalize: bool = False  # inputs scaled to mean 0, std 1 by the training pixels' statistics
    precision: str = "fp32"  # fp32, bf16, or auto (bf16 where the hardware runs it fast)
    skip_learned: float = 0.0  # > 0: after the first epoch, train only on examples whose true class
    # the model gave a probability below this when it last saw them (see callbacks.SkipLearned)
    skip_from: float = 1.0  # where skipping starts, in epochs: 1, after the first; 0.2, from a fifth
    # of the way through it, each batch then scored first and only its unsure examples trained on
    skip_bs: int = 0  # > 0 (with skip_from < 1): the unsure examples wait and are trained in batches
    # of this many (0: each scored batch's unsure examples at once)
    validate: str = "each"  # each: after every epoch; last: after the last epoch only
    options: dict = field(default_factory=dict)  # the model's own settings: channels, hidden...
    about: str = ""

    def __init__(self, model: str, epochs: int, lr: float, **settings: Any) -> None:
        own = {f.name for f in fields(Recipe)}
        options = dict(settings.pop("options", None) or {})
        options.update({k: settings.pop(k) for k in list(settings) if k not in own})
        given = {"model": model, "epochs": epochs, "lr": lr, **settings}
        for f in fields(Recipe):
            if f.name not in given and f.default is MISSING and f.default_factory is MISSING:
                raise TypeError(f"Recipe needs {f.name}")
            default = f.default_factory() if f.default_factory is not MISSING else f.default
            object.__setattr__(self, f.name, given.get(f.name, default))
        # JSON has no tuples: layer sizes read back from a file are lists
        options = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items() if v is not None}
        object.__setattr__(self, "options", options)
        if model in MODELS:
            self._check_options()

    def _check_options(self) -> None:
        takes = self.spec.settings
        unknown = sorted(set(self.options) - set(takes))
        if unknown:
            raise DigitlearnError(
                f"unknown recipe settings for {self.model}: {', '.join(unknown)} "
                f"(its options: {', '.join(takes) or 'none'})"
            )
        for name, value in self.options.items():
            found = self.spec.options[takes[name]].problem(value)
            if found:
                where, what, bad = found
                raise DigitlearnError(f"recipe setting {name}{where} must be {what}, not {bad!r}")

    def __getattr__(self, name: str) -> Any:
        # a model option not set reads as None (the builder's default), as the fields once did
        if name != "options" and any(name in spec.settings for spec in MODELS.values()):
            return self.options.get(name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __repr__(self) -> str:
        # the settings that differ from the defaults: the dataclass's repr lists all twenty
        shown = [
            f"{f.name}={getattr(self, f.name)!r}"
            for f in fields(self)
            if f.name not in ("about", "options")
            and (f.default is MISSING or getattr(self, f.name) != f.default)
        ]
        shown += [f"{k}={v!r}" for k, v in self.options.items()]
        return f"Recipe({', '.join(shown)})"

    def updated(self, **changes: object) -> Recipe:
        """This recipe with the settings in `changes` that are not None replaced.

        Another optimizer without a learning rate gets that optimizer's usual one (`OPTIMIZER_LR`):
        the recipe's rate was chosen for its own optimizer.
        """
        changes = {k: v for k, v in changes.items() if v is not None}
        model = changes.get("model", self.model)
        known = {f.name for f in fields(self)} | set(MODELS[model].settings if model in MODELS else ())
        unknown = sorted(set(changes) - known)
        if unknown:
            raise DigitlearnError(f"unknown recipe settings for {model}: {', '.join(unknown)}")
        if changes.get("opt", self.opt) != self.opt and "lr" not in changes:
            changes["lr"] = OPTIMIZER_LR.get(changes["opt"], self.lr)
        return replace(self, **changes)

    @property
    def momentum(self) -> float:
        """The momentum (adam's beta1) this recipe trains with."""
        return self.mom if self.mom is not None else 0.9 if self.opt == "adam" else 0.0

    def to_dict(self) -> dict:
        """The settings as JSON-ready data (without `about`), the model's options among them."""
        plain = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("about", "options")}
        return jsonable({**plain, **self.options})

    @classmethod
    def from_dict(cls, settings: dict) -> Recipe:
        """The recipe `to_dict` wrote (a run's config.json records it), checked as any recipe is."""
        if not isinstance(settings, dict) or not {"model", "epochs", "lr"} <= settings.keys():
            raise DigitlearnError("a recipe needs at least model, epochs and lr")
        return cls(**settings)

    def loss_func(self, n_classes: int) -> Callable:
        """The loss this recipe trains `n_classes` classes with."""
        from .losses import LOSSES, cross_entropy

        one_output = n_classes == 2 and self.spec.takes_flat  # the chapter's models, on two classes
        name = self.loss or ("mnist_loss" if one_output else "cross_entropy")
        if name not in LOSSES:
            raise DigitlearnError(f"unknown loss {name!r} (known: {', '.join(LOSSES)})")
        if name != "cross_entropy" and n_classes != 2:
            raise DigitlearnError(
                f"{name} is for two classes, but the data has {n_classes}: use cross_entropy (--loss ce)"
            )
        if not 0 <= self.label_smoothing < 1:  # 1 or more rewards wrong answers: the loss goes below 0
            raise DigitlearnError(f"label smoothing is from 0 to under 1, not {self.label_smoothing}")
        if self.label_smoothing:
            if name != "cross_entropy":
                raise DigitlearnError(
                    f"label smoothing goes with cross_entropy (--loss ce), not {name}; "
                    "turn it off with --label-smoothing 0"
                )
            return functools.partial(cross_entropy, label_smoothing=self.label_smoothing)
        return LOSSES[name]

    @property
    def spec(self) -> ModelSpec:
        """The registered model this recipe trains."""
        if self.model not in MODELS:
            raise DigitlearnError(f"unknown model {self.model!r} (known: {', '.join(MODELS)})")
        return MODELS[self.model]

    def model_for(self, ds: Dataset, n_out: int) -> torch.nn.Module:
        """A fresh model of this recipe's kind, sized for `ds` and `n_out` outputs."""
        h, w = ds.train.x.shape[1:]
        return self.spec.build(n_out, (h, w), self.options)

    def learner(self, ds: Dataset, seed: int = 42, device: str = "auto", progress: bool = True) -> Learner:
        """The Learner this recipe describes for `ds`, on `device`, seeded before anything random."""
        import torch

        from ..device import pick_device, set_seed
        from ..hardware import fast_bf16
        from . import Augment, Learner, ValidateAtEnd
        from .losses import kind_of
        from .metrics import accuracy, batch_accuracy
        from .optim import SGD, Adam
        from .whiten import N_IMAGES, whiten_first_conv

        images = ", ".join(name for name, spec in MODELS.items() if not spec.takes_flat)
        if self.augment and self.spec.takes_flat:
            raise DigitlearnError(f"augmentation works on images: use it with {images}, not {self.model}")
        if self.whiten and self.spec.takes_flat:
            raise DigitlearnError(f"whitening works on convolutions: use it with {images}, not {self.model}")
        if self.validate not in ("each", "last"):
            raise DigitlearnError(f"unknown validate setting {self.validate!r} (known: each, last)")
        loss = self.loss_func(len(ds.classes))
        n_out = kind_of(loss).n_out(len(ds.classes))
        set_seed(seed)
        flat = self.spec.takes_flat
        dls = ds.dataloaders(bs=self.bs, flat=flat, normalize=self.normalize)
        target = pick_device(device)
        model = self.model_for(ds, n_out)
        if self.whiten:
            try:
                whiten_first_conv(model, dls.input_format(ds.train.x[:N_IMAGES]))
            except DigitlearnError as e:
                raise DigitlearnError(f"{e}: turn whitening off with --no-whiten") from None
        # channels_last (NHWC) lets oneDNN and cuDNN run convolutions without reordering each batch
        model = model.to(target) if flat else model.to(target, memory_format=torch.channels_last)
        if self.opt == "sgd":
            opt_func = functools.partial(SGD, mom=self.momentum, wd=self.wd)
        elif self.opt == "adam":
            opt_func = functools.partial(
                Adam, mom=self.momentum, sqr_mom=self.sqr_mom, wd=self.wd, decouple_wd=True
            )
        else:
            raise DigitlearnError(f"unknown optimizer {self.opt!r} (known: sgd, adam)")
        learn = Learner(
            dls,
            model,
            opt_func=opt_func,
            loss_func=loss,
            metrics=batch_accuracy if n_out == 1 else accuracy,
            cbs=[
                *([Augment(plain_ends=self.plain_ends)] if self.augment else []),
                *([self._skip_learned()] if self.skip_learned else []),
                *([ValidateAtEnd()] if self.validate == "last" else []),
            ],
            progress=progress,
        )
        if self.precision == "bf16" or (self.precision == "auto" and fast_bf16(target)):
            learn.to_bf16()
        elif self.precision not in ("fp32", "auto"):
            raise DigitlearnError(f"unknown precision {self.precision!r} (known: auto, fp32, bf16)")
        return learn

    def _skip_learned(self) -> Callback:
        from .skip_learned import SkipLearned

        # skip_from 1 (or more): from the second epoch on; SkipLearned refuses one below 0
        first_from = self.skip_from if self.skip_from < 1 else None
        if self.skip_bs and first_from is None:
            raise DigitlearnError("skip_bs (--skip-bs) works with skip_from below 1 (--skip-from)")
        return SkipLearned(self.skip_learned, first_from=first_from, bs=self.skip_bs or None)

    def fit(self, learn: Learner) -> History:
        """Train `learn` for this recipe's epochs at its learning rate, with its schedule."""
        if self.one_cycle:
            # momentum cycles 0.05 either side of the recipe's (fastai's 0.95, 0.85, 0.95 around 0.9)
            high, low = round(self.momentum + 0.05, 6), round(self.momentum - 0.05, 6)
            return learn.fit_one_cycle(self.epochs, self.lr, moms=(high, low, high))
        return learn.fit(self.epochs, self.lr)


def default_recipe(model: str) -> Recipe:
    """The recipe `model` was registered with (see `models.register_model`)."""
    if model not in MODELS:
        raise DigitlearnError(f"unknown model {model!r} (known: {', '.join(MODELS)})")
    return Recipe(model, **MODELS[model].recipe)


_FAST = default_recipe("lenet")
# best: the fast recipe's net wider, trained on every example each epoch, augmented and
# label-smoothed (skipping learned examples and augmenting do not mix: the subset shrinks to a
# few hundred hard cases that it then overfits)
_BEST = replace(
    _FAST,
    epochs=5,
    lr=0.03,
    mom=0.9,
    sqr_mom=0.99,
    channels=(12, 48),
    batch_norm=1,
    skip_learned=0.0,
    skip_from=1.0,
    skip_bs=0,
    label_smoothing=0.1,
    augment=True,
    plain_ends=1,
    whiten=True,
    about="for about 99.5% on MNIST: the LeNet-style CNN wider (161k parameters) with its first convolution "
    "made from the training images (whitening) and not trained, batch norm on its hidden layer, 5 epochs "
    "of one-cycle AdamW at up to lr 0.03, betas (0.9, 0.99), label smoothing 0.1, the middle 3 epochs on "
    "randomly shifted, rotated and zoomed images, validated at the end. Chosen on a held-out tenth of the "
    "training images (--valid-split 0.1, seeds 1-18): mean 0.9941 against 0.9936 without the batch norm "
    "(at lr 0.01, its best)",
)
RECIPES = {"fast": _FAST, "best": _BEST}


def recipe_for(name: str | None, model: str | None) -> Recipe:
    """The recipe called `name`, or else the default recipe of `model` (default: simple_net)."""
    if name is not None:
        if name not in RECIPES:
            raise DigitlearnError(f"unknown recipe {name!r} (known: {', '.join(RECIPES)})")
        recipe = RECIPES[name]
        # another model under a named recipe keeps the recipe's schedule, not its layer sizes
        same = model in (None, recipe.model)
        return recipe if same else replace(recipe, model=model, options={})
    return default_recipe(model or "simple_net")
