"""Recipes: named settings, their overrides, and the Learners they build (multi-class included)."""

import functools
import json
import math

import pytest
import torch
from torch import nn

from digitlearn import Callback, DigitlearnError, SkipLearned, cross_entropy, load_dataset
from digitlearn.data.dataset import Dataset, Split
from digitlearn.models import MODELS
from digitlearn.models.layers import ResBlock
from digitlearn.training import Augment, MixedPrecision
from digitlearn.training.recipes import RECIPES, Recipe, default_recipe, recipe_for

from .conftest import make_folder


def blob_dataset(n_classes: int = 4, n: int = 128, size: int = 16, seed: int = 0) -> Dataset:
    """Images whose class is the corner a bright blob sits in, on a noisy background."""
    g = torch.Generator().manual_seed(seed)

    def split(count: int) -> Split:
        y = torch.arange(count) % n_classes
        x = torch.randint(0, 60, (count, size, size), generator=g, dtype=torch.uint8)
        half = size // 2
        for i, c in enumerate(y.tolist()):
            r, col = (c // 2) * half, (c % 2) * half
            dr, dc = torch.randint(0, half - 4, (2,), generator=g).tolist()
            x[i, r + dr : r + dr + 4, col + dc : col + dc + 4] = 255
        return Split(x, y, [f"{int(c)}/{i}" for i, c in enumerate(y)])

    return Dataset(split(n), split(n // 2), [f"c{i}" for i in range(n_classes)], "blobs")


def test_recipe_for_and_overrides():
    assert recipe_for(None, None) == default_recipe("simple_net")
    assert recipe_for("fast", None) is RECIPES["fast"] and recipe_for("fast", "lenet") is RECIPES["fast"]
    other = recipe_for("best", "resnet")
    assert other.model == "resnet" and other.channels is None and other.epochs == RECIPES["best"].epochs
    assert recipe_for("fast", "mlp").hidden is None  # the mlp's own layer sizes, not lenet's
    changed = RECIPES["fast"].updated(epochs=5, lr=None, augment=True)
    assert (changed.epochs, changed.lr, changed.augment) == (5, RECIPES["fast"].lr, True)
    with pytest.raises(DigitlearnError, match="unknown recipe settings for lenet: colour"):
        RECIPES["fast"].updated(colour="red")
    with pytest.raises(DigitlearnError, match="unknown recipe 'slow' \\(known: fast, best\\)"):
        recipe_for("slow", None)
    assert json.loads(json.dumps(RECIPES["best"].to_dict()))["channels"] == [12, 48]
    assert all(default_recipe(m).spec is MODELS[m] for m in MODELS)
    with pytest.raises(DigitlearnError, match="unknown model 'svm'"):
        default_recipe("svm")


def test_chapter_models_keep_the_chapters_settings():
    assert (default_recipe("simple_net").epochs, default_recipe("simple_net").lr) == (40, 0.1)
    linear = default_recipe("linear")
    assert (linear.epochs, linear.lr, linear.opt, linear.one_cycle) == (20, 1.0, "sgd", False)


def test_loss_choice():
    plain = Recipe("simple_net", epochs=1, lr=0.1)
    assert plain.loss_func(2).__name__ == "mnist_loss" and plain.loss_func(10) is cross_entropy
    assert Recipe("cnn", epochs=1, lr=0.1).loss_func(2) is cross_entropy  # CNNs give one output per class
    smooth = plain.updated(label_smoothing=0.1).loss_func(10)
    assert isinstance(smooth, functools.partial) and smooth.keywords == {"label_smoothing": 0.1}
    with pytest.raises(DigitlearnError, match="mnist_loss is for two classes, but the data has 10"):
        plain.updated(loss="mnist_loss").loss_func(10)
    smoothing_off = r"label smoothing goes with cross_entropy .*; turn it off with --label-smoothing 0"
    with pytest.raises(DigitlearnError, match=smoothing_off):
        plain.updated(label_smoothing=0.1).loss_func(2)


def test_the_fast_recipe_skips_learned_examples_and_validates_once(tmp_path):
    fast = RECIPES["fast"]
    assert (fast.model, fast.skip_learned, fast.skip_bs, fast.validate, fast.momentum, fast.sqr_mom) == (
        "lenet",
        0.85,
        128,
        "last",
        0.7,
        0.9,
    )
    ds = load_dataset(make_folder(tmp_path / "ds", classes=("a", "b"), n=4, size=16))
    learn = fast.learner(ds, progress=False)
    assert {type(cb).__name__ for cb in learn.cbs} >= {"SkipLearned", "ValidateAtEnd"}
    skip = next(cb for cb in learn.cbs if isinstance(cb, SkipLearned))
    assert (skip.threshold, skip.first_from, skip.bs) == (0.85, 0.2, 128)
    assert learn.opt_func(learn.model.parameters(), 0.01).sqr_mom == 0.9
    seen = []
    learn.add_cbs(
        [type("Moms", (Callback,), {"after_step": lambda self, learn: seen.append(learn.opt.mom)})()]
    )
    fast.fit(learn)
    # 0.05 about 0.7: one step per epoch here, at the start (0.75) and halfway, a third of the way
    # back up the cosine from 0.65 at a quarter
    assert seen == pytest.approx([0.75, 0.65 + 0.1 * (1 - math.cos(math.pi / 3)) / 2])
    assert [r["epoch"] for r in learn.recorder.history] == [0, 1]
    assert math.isnan(learn.recorder.history[0]["accuracy"]) and not math.isnan(
        learn.recorder.history[1]["accuracy"]
    )
    best = RECIPES["best"]
    assert (
        best.augment and not best.skip_learned and best.label_smoothing == 0.1
    )  # skipping and augmenting do not mix
    settings = (
        best.epochs,
        best.lr,
        best.momentum,
        best.sqr_mom,
        best.channels,
        best.plain_ends,
        best.whiten,
        best.batch_norm,
    )
    assert settings == (5, 0.03, 0.9, 0.99, (12, 48), 1, True, 1)


def test_learners_for_each_model(tmp_path):
    ds = load_dataset(make_folder(tmp_path / "ds", classes=("a", "b", "c"), n=4, size=16))
    for name, flat in ((n, s.takes_flat) for n, s in MODELS.items()):
        learn = default_recipe(name).learner(ds, progress=False)
        xb, _ = learn.dls.train.one_batch()
        assert (xb.ndim == 2) == flat, name
        assert learn.model(xb).shape == (len(xb), 3), name
        convolutional = any(isinstance(m, nn.Conv2d) for m in learn.model.modules())
        assert convolutional == (not flat), name
    cnn = RECIPES["best"].learner(ds, progress=False)
    assert any(isinstance(cb, Augment) and cb.plain_ends == 1 for cb in cnn.cbs)
    first = next(m for m in cnn.model.modules() if isinstance(m, nn.Conv2d))
    assert not first.weight.requires_grad and torch.equal(first.weight[6:], -first.weight[:6])  # whitened
    before = first.weight.clone()
    cnn.fit(1, 0.01)
    assert torch.equal(first.weight, before) and not any(p is first.weight for p in cnn.opt.params)
    unwhitened = RECIPES["best"].updated(whiten=False).learner(ds, progress=False)
    assert next(m for m in unwhitened.model.modules() if isinstance(m, nn.Conv2d)).weight.requires_grad
    with pytest.raises(
        DigitlearnError, match="whitening works on convolutions: use it with lenet, cnn, resnet, not mlp"
    ):
        default_recipe("mlp").updated(whiten=True).learner(ds)
    with pytest.raises(
        DigitlearnError, match=r"at most 50 for a 5x5 kernel.*has 60: turn whitening off with --no-whiten"
    ):
        RECIPES["best"].updated(channels=(60, 48)).learner(ds)
    assert cnn.dls.input_format["mean"] != 0.0  # normalised inputs
    weight = next(m.weight for m in cnn.model.modules() if isinstance(m, nn.Conv2d))
    assert weight.is_contiguous(memory_format=torch.channels_last)
    assert any(
        isinstance(cb, MixedPrecision) for cb in RECIPES["fast"].updated(precision="bf16").learner(ds).cbs
    )
    assert not any(
        isinstance(cb, MixedPrecision) for cb in RECIPES["fast"].updated(precision="fp32").learner(ds).cbs
    )
    with pytest.raises(
        DigitlearnError, match="augmentation works on images: use it with lenet, cnn, resnet, not mlp"
    ):
        default_recipe("mlp").updated(augment=True).learner(ds)
    with pytest.raises(DigitlearnError, match="unknown precision 'fp8'"):
        RECIPES["fast"].updated(precision="fp8").learner(ds)
    with pytest.raises(DigitlearnError, match="unknown validate setting 'never'"):
        RECIPES["fast"].updated(validate="never").learner(ds)
    with pytest.raises(DigitlearnError, match=r"skip_bs \(--skip-bs\) works with skip_from below 1"):
        RECIPES["fast"].updated(skip_from=1.0).learner(ds)
    plain = RECIPES["fast"].updated(skip_bs=0).learner(ds)
    assert next(cb for cb in plain.cbs if isinstance(cb, SkipLearned)).bs is None


@pytest.mark.parametrize("name", ["cnn", "lenet", "resnet"])
def test_cnns_learn_four_classes(name):
    """The multi-class machinery end to end: softmax loss, accuracy, augmentation, one-cycle, bf16."""
    ds = blob_dataset()
    recipe = Recipe(
        name, epochs=12, lr=0.01, opt="adam", bs=16, one_cycle=True, normalize=True, augment=True,
        label_smoothing=0.05, precision="bf16", channels=(8, 16),
    )  # fmt: skip
    learn = recipe.learner(ds, seed=0, progress=False)
    recipe.fit(learn)
    first, last = learn.recorder.history[0], learn.recorder.history[-1]
    assert last["train_loss"] < first["train_loss"] and last["accuracy"] >= 0.9
    assert any(isinstance(m, ResBlock) for m in learn.model.modules()) == (name == "resnet")
    assert any(isinstance(m, nn.MaxPool2d) for m in learn.model.modules()) == (name == "lenet")
    probs = learn.get_preds()[0]
    assert probs.shape == (64, 4) and torch.allclose(probs.sum(1), torch.ones(64))


def test_a_recipe_shows_what_differs_from_the_defaults():
    assert repr(Recipe("mlp", 3, 5e-3)) == "Recipe(model='mlp', epochs=3, lr=0.005)"
    fast = repr(RECIPES["fast"])
    assert fast.startswith("Recipe(model='lenet', epochs=2, lr=0.015, opt='adam', one_cycle=True")
    assert "about=" not in fast and " bs=" not in fast and len(fast) < 250


def test_to_dict_records_only_the_layer_settings_the_model_takes():
    def layer_keys(model: str) -> set[str]:
        return {"hidden", "channels", "init_std"} & default_recipe(model).to_dict().keys()

    assert layer_keys("simple_net") == set() and layer_keys("linear") == {"init_std"}
    assert layer_keys("mlp") == {"hidden"} and layer_keys("lenet") == {"channels", "hidden"}
    assert layer_keys("resnet") == set() and layer_keys("cnn") == {"channels"}  # resnet: its builder's
    settings = default_recipe("simple_net").to_dict()
    assert (settings["epochs"], settings["lr"], settings["model"]) == (40, 0.1, "simple_net")  # the rest kept


def test_a_simple_net_runs_config_records_no_unused_settings(tmp_path):
    from digitlearn.cli import main

    root = make_folder(tmp_path / "ds", n=4)
    out = tmp_path / "run"
    assert main(["train", "--data", str(root), "--epochs", "1", "--quiet", "--out", str(out)]) == 0
    train = json.loads((out / "config.json").read_text())["train"]
    assert train["model"] == "simple_net" and not {"hidden", "channels", "init_std"} & train.keys()
