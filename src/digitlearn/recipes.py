"""Recipes: named, documented sets of training settings (model, optimizer, schedule, epochs...).

Every model has a default recipe: for the chapter's models, the chapter's own settings, so
`digitlearn train --model simple_net` repeats the book. `fast` and `best` are the routes to 99.0%
and 99.5% on full MNIST. A command-line flag overrides one setting of whichever recipe is used.
"""

import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace

import torch

from .augment import Augment
from .data import Dataset
from .errors import DigitlearnError
from .learner import Learner, fast_bf16, pick_device, set_seed
from .losses import LOSSES, cross_entropy
from .metrics import accuracy, batch_accuracy
from .models import ARCHS
from .optim import SGD, Adam


@dataclass(frozen=True)
class Recipe:
    """Everything `digitlearn train` needs to know besides the data."""

    model: str
    epochs: int
    lr: float
    opt: str = "sgd"  # sgd, or adam (with decoupled weight decay: AdamW)
    bs: int = 256
    one_cycle: bool = False
    mom: float | None = None  # None: sgd 0, adam 0.9
    wd: float = 0.0
    loss: str | None = None  # mnist_loss, bce_loss or cross_entropy; None: mnist_loss for two
    # classes on the chapter's flat models, else cross_entropy
    label_smoothing: float = 0.0
    augment: bool = False  # random shifts, rotations and zooms of each training batch
    normalize: bool = False  # inputs scaled to mean 0, std 1 by the training pixels' statistics
    precision: str = "fp32"  # fp32, bf16, or auto (bf16 where the hardware runs it fast)
    init_std: float = 1.0  # linear: weights and bias start as randn * init_std (the chapter's 1.0)
    hidden: tuple[int, ...] = (100,)  # mlp
    channels: tuple[int, ...] | None = None  # cnn and resnet (None: the model's default)
    about: str = ""

    def updated(self, **changes: object) -> "Recipe":
        """This recipe with the settings in `changes` that are not None replaced."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise DigitlearnError(f"unknown recipe settings: {', '.join(unknown)}")
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("about")
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    def loss_func(self, n_classes: int) -> Callable:
        """The loss this recipe trains `n_classes` classes with."""
        name = self.loss or ("mnist_loss" if n_classes == 2 and MODEL_INPUTS[self.model] else "cross_entropy")
        if name not in LOSSES:
            raise DigitlearnError(f"unknown loss {name!r} (known: {', '.join(LOSSES)})")
        if name != "cross_entropy" and n_classes != 2:
            raise DigitlearnError(
                f"{name} is for two classes, but the data has {n_classes}: use cross_entropy (--loss ce)"
            )
        if self.label_smoothing:
            if name != "cross_entropy":
                raise DigitlearnError(f"label smoothing goes with cross_entropy (--loss ce), not {name}")
            return functools.partial(cross_entropy, label_smoothing=self.label_smoothing)
        return LOSSES[name]

    def model_for(self, ds: Dataset, n_out: int) -> torch.nn.Module:
        """A fresh model of this recipe's kind, sized for `ds` and `n_out` outputs."""
        h, w = ds.train.x.shape[1:]
        if self.model == "cnn":
            kwargs = {"in_size": (h, w)}
        elif self.model == "resnet":
            kwargs = {}
        else:
            kwargs = {"n_in": h * w}
            if self.model == "mlp":
                kwargs["hidden"] = self.hidden
            if self.model == "linear":
                kwargs["std"] = self.init_std
        if self.channels and self.model in ("cnn", "resnet"):
            kwargs["channels"] = self.channels
        return ARCHS[MODEL_ARCHS[self.model]](n_out=n_out, **kwargs)

    def learner(self, ds: Dataset, seed: int = 42, device: str = "auto", progress: bool = True) -> Learner:
        """The Learner this recipe describes for `ds`, on `device`, seeded before anything random."""
        if self.augment and MODEL_INPUTS[self.model]:
            raise DigitlearnError(
                f"augmentation works on images: use it with cnn or resnet, not {self.model}"
            )
        loss = self.loss_func(len(ds.classes))
        n_out = 1 if loss in (LOSSES["mnist_loss"], LOSSES["bce_loss"]) else len(ds.classes)
        set_seed(seed)
        flat = MODEL_INPUTS[self.model]
        dls = ds.dataloaders(bs=self.bs, flat=flat, normalize=self.normalize)
        target = pick_device(device)
        model = self.model_for(ds, n_out)
        # channels_last (NHWC) lets oneDNN and cuDNN run convolutions without reordering each batch
        model = model.to(target) if flat else model.to(target, memory_format=torch.channels_last)
        if self.opt == "sgd":
            opt_func = functools.partial(SGD, mom=self.mom or 0.0, wd=self.wd)
        elif self.opt == "adam":
            mom = 0.9 if self.mom is None else self.mom
            opt_func = functools.partial(Adam, mom=mom, wd=self.wd, decouple_wd=True)
        else:
            raise DigitlearnError(f"unknown optimizer {self.opt!r} (known: sgd, adam)")
        learn = Learner(
            dls,
            model,
            opt_func=opt_func,
            loss_func=loss,
            metrics=batch_accuracy if n_out == 1 else accuracy,
            cbs=[Augment()] if self.augment else [],
            progress=progress,
        )
        if self.precision == "bf16" or (self.precision == "auto" and fast_bf16(target)):
            learn.to_bf16()
        elif self.precision not in ("fp32", "auto"):
            raise DigitlearnError(f"unknown precision {self.precision!r} (known: auto, fp32, bf16)")
        return learn

    def fit(self, learn: Learner) -> None:
        """Train `learn` for this recipe's epochs at its learning rate, with its schedule."""
        if self.one_cycle:
            learn.fit_one_cycle(self.epochs, self.lr)
        else:
            learn.fit(self.epochs, self.lr)


# the architecture each model name builds, and whether it takes flat rows (True) or (1, H, W) images
MODEL_ARCHS = {
    "linear": "linear1", "simple_net": "simple_net", "mlp": "mlp", "cnn": "cnn", "resnet": "resnet"
}  # fmt: skip
MODEL_INPUTS = {"linear": True, "simple_net": True, "mlp": True, "cnn": False, "resnet": False}

_FAST = Recipe(
    "cnn",
    epochs=3,
    lr=0.01,
    opt="adam",
    bs=256,
    one_cycle=True,
    normalize=True,
    precision="auto",
    channels=(16, 32, 64),
    about="quickest route to 99.0% on MNIST: the small CNN (34k parameters), 3 epochs of one-cycle "
    "AdamW at up to lr 0.01, batch 256, no augmentation",
)
# best: the fast recipe, wider, longer, augmented and label-smoothed
_BEST = replace(
    _FAST,
    epochs=12,
    label_smoothing=0.1,
    augment=True,
    channels=(32, 64, 128),
    about="for 99.5% on MNIST: a wider CNN (114k parameters), 12 epochs of one-cycle AdamW at up to "
    "lr 0.01, random shifts/rotations/zooms, label smoothing 0.1",
)
RECIPES = {"fast": _FAST, "best": _BEST}


MODEL_RECIPES = {
    "linear": Recipe(
        "linear",
        epochs=20,
        lr=1.0,
        init_std=0.01,
        about="the chapter's linear1 and plain SGD at lr 1.0 for 20 epochs, started at std 0.01 "
        "(the chapter's std 1.0 makes ten classes' first outputs far from uniform: 0.916 on MNIST, "
        "not 0.924)",
    ),
    "simple_net": Recipe(
        "simple_net", epochs=40, lr=0.1, about="the chapter's simple_net: plain SGD at lr 0.1 for 40 epochs"
    ),
    "mlp": Recipe(
        "mlp",
        epochs=8,
        lr=3e-3,
        opt="adam",
        one_cycle=True,
        wd=0.01,
        hidden=(512, 256),
        about="two hidden layers, AdamW and one-cycle",
    ),
    "cnn": replace(_FAST, about="the fast recipe"),
    "resnet": replace(
        _BEST,
        model="resnet",
        epochs=5,
        channels=None,
        about="the compact ResNet (304k parameters): 5 epochs of one-cycle AdamW at up to lr 0.01, "
        "augmented, label smoothing 0.1",
    ),
}


def recipe_for(name: str | None, model: str | None) -> Recipe:
    """The recipe called `name`, or else the default recipe of `model` (default: simple_net)."""
    if name is not None:
        if name not in RECIPES:
            raise DigitlearnError(f"unknown recipe {name!r} (known: {', '.join(RECIPES)})")
        recipe = RECIPES[name]
        # another model under a named recipe keeps the recipe's schedule, not its channel sizes
        return recipe if model in (None, recipe.model) else replace(recipe, model=model, channels=None)
    return MODEL_RECIPES[model or "simple_net"]
