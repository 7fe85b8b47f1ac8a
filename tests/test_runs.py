# ruff: noqa: E501  (the corpus reads best one case a line, with its whole message)
"""Saved models: safetensors weights and a JSON config, both checked before anything is built.

The corpus below starts from a real saved run and breaks one thing at a time, as the attack
campaign did (issue 16): each must be refused in one line that names the file and the field,
quickly, before a model of the config's size is allocated.
"""

import inspect
import json
import os
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save
from torch import nn

from digitlearn import DigitlearnError, load_model, mlp
from digitlearn.inference.predictor import Predictor
from digitlearn.models import MODELS, register_model
from digitlearn.models.saved import CONFIG, WEIGHTS, load_weights, save_model
from digitlearn.runs.model import read_config
from digitlearn.runs.schema import (
    MAX_CONFIG_BYTES,
    MAX_NUMBERS,
    blank_input,
    check_blank_image,
    check_config,
    count_outputs,
    outputs_bound,
    planned_model,
    shown,
)
from digitlearn.training.recipes import RECIPES
from tests.conftest import draw_digit, save_untrained

# ---------------------------------------------------------------- saving and loading


def test_round_trip(tmp_path):
    model = mlp(n_in=6, hidden=[5], n_out=3)
    save_model(tmp_path / "m", model, {"model": model.config, "classes": ["a", "b", "c"]})
    loaded, config = load_model(tmp_path / "m")
    assert config["classes"] == ["a", "b", "c"] and config["model"]["hidden"] == [5]
    x = torch.rand(4, 6)
    assert torch.equal(loaded(x), model(x))
    assert all(not p.is_meta for p in loaded.parameters()) and loaded.training
    umask = os.umask(0)
    os.umask(umask)
    for name in (WEIGHTS, CONFIG):
        assert (tmp_path / "m" / name).stat().st_mode & 0o777 == 0o666 & ~umask


def test_loading_errors_name_the_file(tmp_path):
    with pytest.raises(DigitlearnError, match="is not a saved model: no such folder"):
        read_config(tmp_path / "nope")
    folder = tmp_path / "m"
    folder.mkdir()
    with pytest.raises(DigitlearnError, match=f"no {CONFIG} in it"):
        read_config(folder)
    (folder / CONFIG).write_text("{not json")
    with pytest.raises(DigitlearnError, match=r"config\.json: not valid JSON"):
        read_config(folder)
    (folder / CONFIG).write_text(json.dumps({"format": "pickle"}))
    with pytest.raises(DigitlearnError, match="not a digitlearn model config"):
        read_config(folder)


def test_weights_must_fit(tmp_path):
    model = nn.Linear(4, 2)
    save_model(tmp_path / "m", model, {})
    with pytest.raises(DigitlearnError, match=r"tensor 'bias' is \(2,\) not \(3,\)"):
        load_weights(nn.Linear(4, 3), tmp_path / "m")
    with pytest.raises(DigitlearnError, match=r"tensor '0\.bias' is missing"):
        load_weights(nn.Sequential(nn.Linear(4, 2)), tmp_path / "m")
    with pytest.raises(DigitlearnError, match=r"tensor 'weight' must hold F64 numbers.* not F32"):
        load_weights(nn.Linear(4, 2).double(), tmp_path / "m")
    (tmp_path / "m" / WEIGHTS).write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00garbage!")
    with pytest.raises(DigitlearnError, match=r"weights\.safetensors: cannot read the weights"):
        load_weights(model, tmp_path / "m")


def test_a_file_is_not_a_folder(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(DigitlearnError, match="is a file"):
        save_model(tmp_path / "f", nn.Linear(1, 1), {})


# ---------------------------------------------------------------- every run the project writes loads


def tiny_dataset(n_classes: int, size: int = 28):
    """A Dataset of one random image per class in each split: enough to build and save a run."""
    from digitlearn.data.dataset import Dataset, Split

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n_classes, size, size), dtype=torch.uint8, generator=g)
    split = Split(x, torch.arange(n_classes), [f"{i}.png" for i in range(n_classes)])
    return Dataset(split, split, [f"class {i}" for i in range(n_classes)], "tiny")


# two classes give the flat models one output (mnist_loss); the image models, two (cross_entropy)
RUNS = [
    *((name, 2) for name, spec in MODELS.items() if spec.takes_flat),
    *((n, 3) for n in [*MODELS, *RECIPES]),
]


@pytest.mark.parametrize(("recipe_name", "n_classes"), RUNS)
def test_every_run_the_project_writes_loads(tmp_path, recipe_name, n_classes):
    # untrained, but written as `digitlearn train` writes it: the recipe's model, loss and input format
    from digitlearn.runs.folder import save_run
    from digitlearn.training.recipes import RECIPES, default_recipe

    recipe = RECIPES.get(recipe_name) or default_recipe(recipe_name)
    ds = tiny_dataset(n_classes)
    learn = recipe.learner(ds, device="cpu", progress=False)
    save_run(tmp_path / "run", learn, recipe, "tiny", seed=42, recipe_name=recipe_name)
    p = Predictor.load(tmp_path / "run")
    assert p.classes == ds.classes and p.predict(draw_digit("3")).probs.shape == (n_classes,)
    loaded = dict(p.model.state_dict())
    assert all(torch.equal(loaded[k], v.cpu()) for k, v in learn.model.state_dict().items())


def test_every_builder_argument_has_bounds_or_the_model_is_not_registered():
    for spec in MODELS.values():
        assert set(inspect.signature(spec.builder).parameters) == set(spec.arguments()), spec.name
    with pytest.raises(DigitlearnError, match="model wide: argument 'width' has no Option"):

        @register_model("wide", inputs="flat", size_arg="n_in")
        def wide(n_in: int = 784, n_out: int = 10, width: int = 3): ...

    assert "wide" not in MODELS


def image_format(side: int, flat: bool) -> dict:
    return {"height": side, "width": side, "flat": flat, "mean": 0.0, "std": 1.0}


def test_large_models_within_the_total_are_planned_not_allocated():
    widest = {"arch": "mlp", "n_in": 784, "hidden": [4096] * 16, "n_out": 10, "dropout": 0.0}
    model = planned_model(widest, image_format(28, flat=True), Path(CONFIG))  # 1 GiB if allocated
    assert next(model.parameters()).is_meta
    resnet = {"arch": "resnet", "n_out": 10, "channels": [32, 64, 128], "blocks": 1}
    planned_model(resnet, image_format(1024, flat=False), Path(CONFIG))  # 175M outputs: counted


@pytest.mark.parametrize("recipe_name", [*MODELS, *RECIPES])
def test_the_outputs_bound_holds_and_spares_counting_for_mnist(recipe_name):
    from dataclasses import asdict

    from digitlearn.training.recipes import RECIPES, default_recipe

    recipe = RECIPES.get(recipe_name) or default_recipe(recipe_name)
    for side in (28, 64):
        with torch.device("meta"):
            model = recipe.spec.build(10, (side, side), asdict(recipe))
        fmt = image_format(side, recipe.spec.takes_flat)
        assert count_outputs(model, fmt) <= outputs_bound(model, fmt)
        if side == 28:  # so loading an MNIST run never runs the meta device's kernels
            assert outputs_bound(model, fmt) < MAX_NUMBERS // 100


# ---------------------------------------------------------------- the corpus of broken configs

Mutation = Callable[[dict], None]


def setting(dotted: str, value: object) -> Mutation:
    """Set the config's value at `dotted` (e.g. "model.channels") to `value`."""

    def mutate(config: dict) -> None:
        *parents, last = dotted.split(".")
        for key in parents:
            config = config[key]
        config[last] = value

    return mutate


def removing(dotted: str) -> Mutation:
    def mutate(config: dict) -> None:
        *parents, last = dotted.split(".")
        for key in parents:
            config = config[key]
        del config[last]

    return mutate


def several(*mutations: Mutation) -> Mutation:
    def mutate(config: dict) -> None:
        for m in mutations:
            m(config)

    return mutate


def model_of(arch: str, **arguments: object) -> Mutation:
    """Another model in place of the cnn (its builder's defaults for the arguments not given)."""
    return setting("model", {"arch": arch, **arguments})


def images_of(side: int) -> Mutation:
    return several(setting("input.height", side), setting("input.width", side))


TEN = [str(i) for i in range(10)]

# (what is wrong, how, the whole message after the file's name); the base run is conftest's
# untrained cnn: 10 classes, 28x28 normalised images, cross_entropy
CONFIG_CASES = [
    # model: layer sizes
    ("huge channel", setting("model.channels", [16, 100000, 64]), "model.channels[1] must be a whole number from 1 to 4,096, not 100000"),
    ("fractional channel", setting("model.channels", [16, 32.5, 64]), "model.channels[1] must be a whole number from 1 to 4,096, not 32.5"),
    ("float channel", setting("model.channels", [16, 32.0, 64]), "model.channels[1] must be a whole number from 1 to 4,096, not 32.0"),
    ("string channel", setting("model.channels", [16, "32", 64]), "model.channels[1] must be a whole number from 1 to 4,096, not \"32\""),
    ("negative channel", setting("model.channels", [16, -32, 64]), "model.channels[1] must be a whole number from 1 to 4,096, not -32"),
    ("zero channel", setting("model.channels", [0, 32, 64]), "model.channels[0] must be a whole number from 1 to 4,096, not 0"),
    ("bool channel", setting("model.channels", [True, 32, 64]), "model.channels[0] must be a whole number from 1 to 4,096, not true"),
    ("nested channel", setting("model.channels", [16, [32], 64]), "model.channels[1] must be a whole number from 1 to 4,096, not [32]"),
    ("no channels", setting("model.channels", []), "model.channels must be a list of 1 to 16 whole numbers, not []"),
    ("17 stages", setting("model.channels", [16] * 17), "model.channels must be a list of 1 to 16 whole numbers, not [16, 16, 16, 16, 16, 16, 16, 16, 16, ..."),
    ("channels as text", setting("model.channels", "16,32,64"), "model.channels must be a list of 1 to 16 whole numbers, not \"16,32,64\""),
    ("channels null", setting("model.channels", None), "model.channels must be a list of 1 to 16 whole numbers, not null"),
    ("channels object", setting("model.channels", {"0": 16}), "model.channels must be a list of 1 to 16 whole numbers, not {\"0\": 16}"),
    ("float n_out", setting("model.n_out", 10.0), "model.n_out must be a whole number from 1 to 4,096, not 10.0"),
    ("string n_out", setting("model.n_out", "10"), "model.n_out must be a whole number from 1 to 4,096, not \"10\""),
    ("zero n_out", setting("model.n_out", 0), "model.n_out must be a whole number from 1 to 4,096, not 0"),
    ("negative n_out", setting("model.n_out", -10), "model.n_out must be a whole number from 1 to 4,096, not -10"),
    ("bool n_out", setting("model.n_out", True), "model.n_out must be a whole number from 1 to 4,096, not true"),
    ("huge n_out", setting("model.n_out", 10**30), "model.n_out must be a whole number from 1 to 4,096, not 1000000000000000000000000000000"),
    ("n_out not the classes", setting("model.n_out", 11), "model.n_out must be 10, one output for each class in classes, not 11"),
    ("zero input size", setting("model.in_size", [0, 28]), "model.in_size[0] must be a whole number from 1 to 1,024, not 0"),
    ("negative input size", setting("model.in_size", [28, -28]), "model.in_size[1] must be a whole number from 1 to 1,024, not -28"),
    ("huge input size", setting("model.in_size", [100000, 28]), "model.in_size[0] must be a whole number from 1 to 1,024, not 100000"),
    ("string input size", setting("model.in_size", ["28", 28]), "model.in_size[0] must be a whole number from 1 to 1,024, not \"28\""),
    ("one input side", setting("model.in_size", [28]), "model.in_size must be a list of 2 whole numbers, not [28]"),
    ("three input sides", setting("model.in_size", [28, 28, 28]), "model.in_size must be a list of 2 whole numbers, not [28, 28, 28]"),
    ("input size a number", setting("model.in_size", 28), "model.in_size must be a list of 2 whole numbers, not 28"),
    ("input size not the input's", setting("model.in_size", [32, 32]), "model.in_size must be [28, 28] to take 28x28 inputs (input.height, width), not [32, 32]"),
    # model: the architecture
    ("unknown arch", setting("model.arch", "eval"), "model.arch must be one of cnn, lenet, linear1, mlp, resnet, simple_net, not \"eval\""),
    ("a torch class as arch", setting("model.arch", "Sequential"), "model.arch must be one of cnn, lenet, linear1, mlp, resnet, simple_net, not \"Sequential\""),
    ("arch a number", setting("model.arch", 5), "model.arch must be one of cnn, lenet, linear1, mlp, resnet, simple_net, not 5"),
    ("arch a list", setting("model.arch", ["cnn"]), "model.arch must be one of cnn, lenet, linear1, mlp, resnet, simple_net, not [\"cnn\"]"),
    ("no arch", removing("model.arch"), "model.arch is missing: it must be one of cnn, lenet, linear1, mlp, resnet, simple_net"),
    ("unknown model argument", setting("model.bias", True), "model.bias is not an argument of cnn (its arguments: n_out, channels, in_size)"),
    ("model a name", setting("model", "cnn"), "model must be an object naming an architecture and its arguments, not \"cnn\""),
    ("model a list", setting("model", []), "model must be an object naming an architecture and its arguments, not []"),
    ("model null", setting("model", None), "names no architecture: the model was not built by a digitlearn builder, so build it yourself and use Learner.load or load_weights"),
    ("resnet stem of no channels", model_of("resnet", channels=[1, 8]), "model.channels[0] must be a whole number from 2 to 4,096, not 1"),
    ("resnet of no blocks", model_of("resnet", blocks=0), "model.blocks must be a whole number from 1 to 16, not 0"),
    ("resnet blocks as text", model_of("resnet", blocks="2"), "model.blocks must be a whole number from 1 to 16, not \"2\""),
    ("dropout above 1", model_of("mlp", n_in=784, dropout=2), "model.dropout must be a number from 0 to 1, not 2"),
    ("huge init std", model_of("linear1", n_in=784, n_out=10, std=1e300), "model.std must be a number from 0 to 100, not 1e+300"),
    ("simple_net hidden 0", model_of("simple_net", n_in=784, n_hidden=0), "model.n_hidden must be a whole number from 1 to 4,096, not 0"),
    ("mlp of a text layer", model_of("mlp", n_in=784, hidden=["x"]), "model.hidden[0] must be a whole number from 1 to 4,096, not \"x\""),
    # model: within every field's bounds, but too large in total
    (
        "16 stages of 4096 channels at 1024x1024",
        several(model_of("cnn", channels=[4096] * 16, in_size=[1024, 1024]), images_of(1024)),
        "model: 2,265,329,690 weights, more than a run may have (536,870,912, 2 GiB)",
    ),
    (
        "4096 channels at 1024x1024",
        several(model_of("resnet", channels=[4096]), images_of(1024)),
        "model: 234,997,774 weights and 15,569,264,650 layer outputs for one 1024x1024 image, more than a run may have (536,870,912, 2 GiB)",
    ),
    ("lenet on images too small", several(model_of("lenet", in_size=[8, 8]), images_of(8)), "model: images of 8x8 are too small for lenet's 2 stages"),
    # input
    ("height 0", setting("input.height", 0), "input.height must be a whole number from 1 to 1,024, not 0"),
    ("negative height", setting("input.height", -28), "input.height must be a whole number from 1 to 1,024, not -28"),
    ("height as text", setting("input.height", "28"), "input.height must be a whole number from 1 to 1,024, not \"28\""),
    ("height 100000", setting("input.height", 100000), "input.height must be a whole number from 1 to 1,024, not 100000"),
    ("fractional height", setting("input.height", 28.5), "input.height must be a whole number from 1 to 1,024, not 28.5"),
    ("height true", setting("input.height", True), "input.height must be a whole number from 1 to 1,024, not true"),
    ("width null", setting("input.width", None), "input.width must be a whole number from 1 to 1,024, not null"),
    ("height not the model's", images_of(32), "model.in_size must be [32, 32] to take 32x32 inputs (input.height, width), not [28, 28]"),
    ("flat as text", setting("input.flat", "false"), "input.flat must be true or false, not \"false\""),
    ("flat as 0", setting("input.flat", 0), "input.flat must be true or false, not 0"),
    ("flat rows for a cnn", setting("input.flat", True), "input.flat must be false for cnn, which takes image inputs, not true"),
    ("images for an mlp", model_of("mlp", n_in=784), "input.flat must be true for mlp, which takes flat inputs, not false"),
    ("n_in not the input's", several(model_of("mlp", n_in=100), setting("input.flat", True)), "model.n_in must be 784 to take 28x28 inputs (input.height, width), not 100"),
    ("mean as text", setting("input.mean", "0.13"), "input.mean must be a number from -100 to 100, not \"0.13\""),
    ("huge mean", setting("input.mean", 1e300), "input.mean must be a number from -100 to 100, not 1e+300"),
    ("std 0", setting("input.std", 0), "input.std must be a number from 1e-06 to 100, not 0"),
    ("negative std", setting("input.std", -0.3), "input.std must be a number from 1e-06 to 100, not -0.3"),
    ("tiny std", setting("input.std", 1e-300), "input.std must be a number from 1e-06 to 100, not 1e-300"),
    ("std null", setting("input.std", None), "input.std must be a number from 1e-06 to 100, not null"),
    ("no std", removing("input.std"), "input.std is missing"),
    ("unknown input key", setting("input.channels", 3), "input.channels is not a setting digitlearn knows (known: height, width, flat, mean, std)"),
    ("input a list", setting("input", [28, 28]), "input must be an object, not [28, 28]"),
    ("input as text", setting("input", "28x28"), "input must be an object, not \"28x28\""),
    # classes
    ("nine classes for ten outputs", setting("classes", TEN[:9]), "model.n_out must be 9, one output for each class in classes, not 10"),
    ("duplicate classes", setting("classes", ["0", "1", "1", *TEN[3:]]), "classes[2] must be a name not already in the list, not \"1\""),
    ("classes as numbers", setting("classes", list(range(10))), "classes[0] must be a text of 1 to 255 printable characters, not 0"),
    ("an empty class name", setting("classes", [*TEN[:9], ""]), "classes[9] must be a text of 1 to 255 printable characters, not \"\""),
    ("a class name with a newline", setting("classes", [*TEN[:9], "nine\n"]), "classes[9] must be a text of 1 to 255 printable characters, not \"nine\\n\""),
    ("a class name of 1000 characters", setting("classes", [*TEN[:9], "x" * 1000]), "classes[9] must be a text of 1 to 255 printable characters, not \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx..."),
    ("a class that is a list", setting("classes", [*TEN[:9], ["9"]]), "classes[9] must be a text of 1 to 255 printable characters, not [\"9\"]"),
    ("classes as text", setting("classes", "0123456789"), "classes must be a list of 2 to 4,096 class names, not \"0123456789\""),
    ("no classes", setting("classes", []), "classes must be a list of 2 to 4,096 class names, not []"),
    ("one class", setting("classes", ["0"]), "classes must be a list of 2 to 4,096 class names, not [\"0\"]"),
    ("5000 classes", setting("classes", [str(i) for i in range(5000)]), "classes must be a list of 2 to 4,096 class names, not [\"0\", \"1\", \"2\", \"3\", \"4\", \"5\", \"6\", \"..."),
    # loss
    ("unknown loss", setting("loss.name", "mse"), "loss.name must be one of mnist_loss, bce_loss, cross_entropy, not \"mse\""),
    ("empty loss name", setting("loss.name", ""), "loss.name must be one of mnist_loss, bce_loss, cross_entropy, not \"\""),
    ("loss name a number", setting("loss.name", 5), "loss.name must be one of mnist_loss, bce_loss, cross_entropy, not 5"),
    ("loss name a list", setting("loss.name", ["cross_entropy"]), "loss.name must be one of mnist_loss, bce_loss, cross_entropy, not [\"cross_entropy\"]"),
    ("loss name null", setting("loss.name", None), "loss.name must be one of mnist_loss, bce_loss, cross_entropy, not null"),
    ("no loss name", removing("loss.name"), "loss.name is missing"),
    ("loss as text", setting("loss", "cross_entropy"), "loss must be an object, not \"cross_entropy\""),
    ("unknown loss key", setting("loss.reduction", "sum"), "loss.reduction is not a setting digitlearn knows (known: name, label_smoothing)"),
    ("label smoothing 2", setting("loss.label_smoothing", 2), "loss.label_smoothing must be a number from 0 to under 1, not 2"),
    ("label smoothing 1", setting("loss.label_smoothing", 1), "loss.label_smoothing must be a number from 0 to under 1, not 1"),
    ("smoothing mnist_loss", setting("loss", {"name": "mnist_loss", "label_smoothing": 0.1}), "loss.label_smoothing is not a setting of mnist_loss"),
    ("binary loss on ten outputs", setting("loss.name", "mnist_loss"), "model.n_out must be 1 with loss mnist_loss: its output is the second class's probability, not 10"),
    ("bce on ten classes", several(setting("loss.name", "bce_loss"), setting("model.n_out", 1)), "classes must be a list of 2 names with loss bce_loss, not [\"0\", \"1\", \"2\", \"3\", \"4\", \"5\", \"6\", \"..."),
    # the rest
    ("another format", setting("format", "digitlearn-model-2"), "not a digitlearn model config (expected format 'digitlearn-model-1')"),
    ("train a list", setting("train", []), "train must be an object, not []"),
    ("train.data a number", setting("train", {"data": 5}), "train.data must be a text of 1 to 4,096 printable characters, not 5"),
]  # fmt: skip


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    # the meta device's kernels load once per process, in about a second: no one case's cost
    with torch.device("meta"):
        count_outputs(nn.Conv2d(1, 1, 3), image_format(4, flat=False))
    return save_untrained(tmp_path_factory.mktemp("runs") / "base")


def broken_copy(base: Path, folder: Path, config: bytes | None = None, weights: bytes | None = None) -> Path:
    """A copy of the run `base` in `folder`, with config.json and weights.safetensors replaced as given."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG).write_bytes((base / CONFIG).read_bytes() if config is None else config)
    (folder / WEIGHTS).write_bytes((base / WEIGHTS).read_bytes() if weights is None else weights)
    return folder


def refused(folder: Path, file: str, named: str, load: Callable = load_model) -> str:
    """Loading `folder` fails in one line naming `file` and `named` (how fast: bench/refusals.py)."""
    with pytest.raises(DigitlearnError) as caught:
        load(folder)
    message = str(caught.value)
    assert f"{file}" in message and named in message, message
    assert "\n" not in message and len(message) < 400, message
    return message


def mutated_config(base: Path, mutate: Mutation) -> bytes:
    config = json.loads((base / CONFIG).read_text())
    mutate(config)
    return json.dumps(config).encode()


@pytest.mark.parametrize(("what", "mutate", "named"), CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_a_broken_config_is_refused(base_run, tmp_path, what, mutate, named):
    folder = broken_copy(base_run, tmp_path / "run", config=mutated_config(base_run, mutate))
    assert refused(folder, f"{folder / CONFIG}:", named) == f"{folder / CONFIG}: {named}"


def test_the_message_says_what_the_field_must_be(base_run, tmp_path):
    config = mutated_config(base_run, setting("model.channels", [16, 100000, 64]))
    folder = broken_copy(base_run, tmp_path / "run", config=config)
    assert refused(folder, CONFIG, "channels") == (
        f"{folder / CONFIG}: model.channels[1] must be a whole number from 1 to 4,096, not 100000"
    )


def text_edit(old: str, new: str) -> Callable[[bytes], bytes]:
    def edit(text: bytes) -> bytes:
        assert old.encode() in text
        return text.replace(old.encode(), new.encode(), 1)

    return edit


def nested(depth: int) -> Callable[[bytes], bytes]:
    return text_edit('"train": null', f'"train": {"[" * depth}{"]" * depth}')


# (what is wrong, an edit of config.json's text, what the message must say): what JSON itself
# allows, or what Python's json reads beyond it
TEXT_CASES = [
    ("NaN", text_edit('"mean": 0.1307', '"mean": NaN'), "NaN is not a JSON number"),
    ("Infinity", text_edit('"std": 0.3081', '"std": Infinity'), "Infinity is not a JSON number"),
    ("-Infinity", text_edit('"mean": 0.1307', '"mean": -Infinity'), "-Infinity is not"),
    ("1e999", text_edit('"std": 0.3081', '"std": 1e999'), "1e999 is too large"),
    ("5000 digits", text_edit('"n_out": 10', f'"n_out": {"9" * 5000}'), "a number of 5,000 characters"),
    ("5000-digit float", text_edit('"std": 0.3081', f'"std": 0.{"3" * 5000}'), "a number of 5,002"),
    ("nested 40 deep", nested(40), "nested 41 levels deep"),
    ("nested 100000 deep", nested(100_000), "nested 100,001 levels deep"),
    ("a key twice", text_edit('"classes":', '"model": {"arch": "eval"}, "classes":'), "'model' appears"),
    ("over 1 MiB", text_edit('"train": null', f'"train": "{"x" * MAX_CONFIG_BYTES}"'), "too large for a"),
    ("not UTF-8", lambda text: text.replace(b"cross_entropy", b"cross_\xff"), "not valid JSON"),
    ("cut short", lambda text: text[: len(text) // 2], "not valid JSON"),
    ("empty", lambda text: b"", "not valid JSON"),
    ("a list", lambda text: b"[]", "not a digitlearn model config"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "edit", "named"), TEXT_CASES, ids=[c[0] for c in TEXT_CASES])
def test_a_config_that_is_not_strict_json_is_refused(base_run, tmp_path, what, edit, named):
    text = json.dumps({**json.loads((base_run / CONFIG).read_text()), "train": None}).encode()
    folder = broken_copy(base_run, tmp_path / "run", config=edit(text))
    refused(folder, f"{folder / CONFIG}:", named)


def test_metadata_is_tolerated(base_run, tmp_path):
    # what a later version (or Learner.save's extra) adds is metadata: nothing builds from it
    extra = {"notes": {"by": "someone", "tags": ["a", "b"]}, "train": {"data": "mnist", "future": [1, 2]}}
    config = mutated_config(base_run, lambda c: c.update(extra))
    _, loaded = load_model(broken_copy(base_run, tmp_path / "run", config=config))
    assert loaded["notes"] == extra["notes"]


# ---------------------------------------------------------------- the corpus of broken weights

StateEdit = Callable[[dict[str, torch.Tensor]], None]


def tensor_set(key: str, value: float, at: int = 0) -> StateEdit:
    def edit(state: dict) -> None:
        state[key].view(-1)[at] = value

    return edit


def retyped(key: str, dtype: torch.dtype) -> StateEdit:
    def edit(state: dict) -> None:
        state[key] = state[key].to(dtype)

    return edit


def reshaped(key: str, shape: tuple[int, ...]) -> StateEdit:
    def edit(state: dict) -> None:
        state[key] = torch.zeros(shape)

    return edit


def added(key: str) -> StateEdit:
    def edit(state: dict) -> None:
        state[key] = torch.zeros(1)

    return edit


def dropped(key: str) -> StateEdit:
    def edit(state: dict) -> None:
        del state[key]

    return edit


# (what is wrong, an edit of the saved tensors, what the message must say)
STATE_CASES = [
    ("NaN weight", tensor_set("0.0.weight", float("nan")), "tensor '0.0.weight' holds NaN"),
    ("infinite bias", tensor_set("4.bias", float("inf"), at=3), "tensor '4.bias' holds NaN or infinite"),
    ("NaN running mean", tensor_set("1.1.running_mean", float("nan")), "tensor '1.1.running_mean' holds NaN"),
    ("negative running var", tensor_set("2.1.running_var", -1.0), "outputs for a blank image are not finite"),
    ("int weights", retyped("4.weight", torch.int32), "tensor '4.weight' must hold F32 numbers"),
    ("float64 weights", retyped("4.weight", torch.float64), "tensor '4.weight' must hold F32 numbers"),
    ("half weights", retyped("0.0.weight", torch.float16), "tensor '0.0.weight' must hold F32 numbers"),
    ("float counter", retyped("0.1.num_batches_tracked", torch.float32), "must hold I64 numbers"),
    ("bool weights", retyped("4.bias", torch.bool), "tensor '4.bias' must hold F32 numbers"),
    ("wrong shape", reshaped("4.weight", (10, 100)), "tensor '4.weight' is (10, 100) not (10, 1024)"),
    ("scalar for a vector", reshaped("4.bias", ()), "tensor '4.bias' is () not (10,)"),
    ("missing tensor", dropped("4.bias"), "tensor '4.bias' is missing"),
    ("extra tensor", added("5.weight"), "tensor '5.weight' is unexpected"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "edit", "named"), STATE_CASES, ids=[c[0] for c in STATE_CASES])
def test_broken_weights_are_refused(base_run, tmp_path, what, edit, named):
    state = load_file(base_run / WEIGHTS)
    edit(state)
    folder = broken_copy(base_run, tmp_path / "run", weights=save(state))
    refused(folder, f"{folder / WEIGHTS}", named)


def header_of(length: int, header: bytes = b"") -> bytes:
    return struct.pack("<Q", length) + header


# (what is wrong, an edit of weights.safetensors's bytes, what the message must say)
BYTES_CASES = [
    ("cut short", lambda data: data[:-100], "cannot read the weights"),
    ("cut in the header", lambda data: data[:20], "cannot read the weights"),
    ("empty", lambda data: b"", "cannot read the weights"),
    ("garbage", lambda data: b"\x08" + bytes(7) + b"garbage!", "cannot read the weights"),
    ("a header of 2**40 bytes", lambda data: header_of(2**40) + data[8:], "cannot read the weights"),
    ("a header of 2 MiB", lambda data: header_of(2 << 20, b"{" + b" " * (2 << 20)), "more than this model's"),
    ("junk after the data", lambda data: data + b"\x00" * 64, "cannot read the weights"),
    ("10 MiB of junk after the data", lambda data: data + bytes(10 << 20), "more than this model's weights"),
    ("a header that is not JSON", lambda data: header_of(4, b"\xff\xfe\xfd\xfc") + data, "cannot read"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "edit", "named"), BYTES_CASES, ids=[c[0] for c in BYTES_CASES])
def test_a_broken_weights_file_is_refused(base_run, tmp_path, what, edit, named):
    folder = broken_copy(base_run, tmp_path / "run", weights=edit((base_run / WEIGHTS).read_bytes()))
    refused(folder, f"{folder / WEIGHTS}", named)


def test_missing_files(base_run, tmp_path):
    folder = broken_copy(base_run, tmp_path / "run")
    (folder / WEIGHTS).unlink()
    (folder / WEIGHTS).mkdir()
    refused(folder, str(folder), "no weights.safetensors in it")
    (folder / CONFIG).unlink()
    refused(folder, str(folder), "no config.json in it")


# ---------------------------------------------------------------- what the user sees


def test_predictor_needs_classes_and_an_input_format(base_run, tmp_path):
    for key in ("classes", "input"):
        config = mutated_config(base_run, setting(key, None))
        folder = broken_copy(base_run, tmp_path / key, config=config)
        refused(folder, f"{folder / CONFIG}: {key} is missing", key, load=Predictor.load)
        load_model(folder)  # without them, the model itself still loads


@pytest.mark.parametrize(
    ("mutate", "named"),
    [
        (setting("model.channels", [16, 100000, 64]), "model.channels[1]"),
        (setting("input.std", 0), "input.std"),
        (setting("classes", TEN[:9]), "model.n_out"),
    ],
)
def test_predict_says_what_is_wrong_in_one_line(base_run, tmp_path, capsys, mutate, named):
    from digitlearn.cli import main

    folder = broken_copy(base_run, tmp_path / "run", config=mutated_config(base_run, mutate))
    draw_digit("7").save(tmp_path / "7.png")
    assert main(["predict", str(folder), str(tmp_path / "7.png")]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith(f"digitlearn: error: {folder / CONFIG}: {named}")


def test_predict_refuses_nan_weights_rather_than_print_nan(base_run, tmp_path, capsys):
    from digitlearn.cli import main

    state = load_file(base_run / WEIGHTS)
    state["4.weight"][0, 0] = float("nan")
    folder = broken_copy(base_run, tmp_path / "run", weights=save(state))
    draw_digit("7").save(tmp_path / "7.png")
    assert main(["predict", str(folder), str(tmp_path / "7.png")]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "(nan)" not in err and "tensor '4.weight' holds NaN" in err


def test_serve_refuses_to_start_on_a_broken_run(base_run, tmp_path, capsys, monkeypatch):
    from digitlearn.cli import main
    from digitlearn.inference import serve

    monkeypatch.setattr(serve, "serve", lambda *args, **kwargs: pytest.fail("serve started"))
    mutate = setting("classes", ["3", "7"])
    folder = broken_copy(base_run, tmp_path / "run", config=mutated_config(base_run, mutate))
    assert main(["serve", str(folder), "--port", "0"]) == 1
    assert "model.n_out must be 2" in capsys.readouterr().err


def test_predicting_refuses_outputs_that_are_not_finite(base_run):
    p = Predictor.load(base_run)
    with torch.no_grad():
        p.model[4].weight.fill_(3e38)  # finite, but the outputs overflow
    with pytest.raises(DigitlearnError, match="outputs are not finite"):
        p.predict(draw_digit("7"))


def test_a_base_copy_loads(base_run, tmp_path):
    # the corpus's refusals are each for its one edit: the unedited copy loads
    folder = broken_copy(base_run, tmp_path / "run", config=mutated_config(base_run, lambda config: None))
    assert Predictor.load(folder).classes == TEN


def test_a_flipped_byte_in_the_weights_is_caught_by_their_checksum(base_run, tmp_path):
    data = bytearray((base_run / WEIGHTS).read_bytes())
    data[-3] ^= 0x01  # the last weight's low bits: still a finite number, still the right shape
    folder = broken_copy(base_run, tmp_path / "flipped", weights=bytes(data))
    refused(folder, WEIGHTS, "the weights are damaged: their checksum does not match them")


# ---------------------------------------------------------------- found by mutation testing


def a_config(**parts) -> dict:
    """A small valid config (an mlp on flat 2x2 images) with `parts` replaced."""
    config = {
        "model": {"arch": "mlp", "n_in": 4, "hidden": [3], "n_out": 2},
        "classes": ["a", "b"],
        "input": {"height": 2, "width": 2, "flat": True, "mean": 0.0, "std": 1.0},
        "loss": {"name": "cross_entropy"},
    }
    config.update(parts)
    return {k: v for k, v in config.items() if v is not None}


def small_mlp(n_out: int = 2, n_in: int = 4) -> dict:
    return {"arch": "mlp", "n_in": n_in, "hidden": [3], "n_out": n_out}


ACCEPTED = {
    "4,096 classes": a_config(model=small_mlp(4096), classes=[str(i) for i in range(4096)]),
    "1x1 images": a_config(model=small_mlp(n_in=1), input={"height": 1, "width": 1, "flat": True, "mean": 0.0, "std": 1.0}),
    "an image size as a tuple, as code makes it": a_config(
        model={"arch": "cnn", "n_out": 2, "in_size": (2, 2)},
        input={"height": 2, "width": 2, "flat": False, "mean": 0.0, "std": 1.0},
    ),
    "one output for two classes and no loss": a_config(model=small_mlp(1), loss=None),
    "one output, no classes, no loss": a_config(model=small_mlp(1), classes=None, loss=None),
    "two outputs for cross_entropy without classes": a_config(classes=None),
    "label smoothing 0": a_config(loss={"name": "cross_entropy", "label_smoothing": 0}),
}  # fmt: skip

REFUSED = {
    "one output for three classes and no loss": (a_config(model=small_mlp(1), classes=["a", "b", "c"], loss=None), "model.n_out must be 3, one output for each class in classes, not 1"),
    "three outputs for two classes and no loss": (a_config(model=small_mlp(3), loss=None), "model.n_out must be 2, one output for each class in classes, not 3"),
    "one output for cross_entropy without classes": (a_config(model=small_mlp(1), classes=None), "model.n_out must be 2 or more with loss cross_entropy: one output per class, not 1"),
    "no classes where they are required": (a_config(classes=None), "classes is missing: it must be the list of class names"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(ACCEPTED))
def test_configs_at_the_edges_are_accepted(name):
    check_config(ACCEPTED[name], Path(CONFIG))


@pytest.mark.parametrize("name", list(REFUSED))
def test_configs_just_past_the_edges_are_refused(name):
    config, message = REFUSED[name]
    with pytest.raises(DigitlearnError) as e:
        check_config(config, Path(CONFIG), required=("classes",) if "required" in name else ())
    assert str(e.value) == f"{CONFIG}: {message}"


def test_a_blank_input_is_a_zero_image_scaled_as_the_format_says():
    fmt = {"height": 2, "width": 3, "flat": True, "mean": 0.5, "std": 0.25}
    flat = blank_input(fmt)
    assert flat.shape == (1, 6) and flat.device.type == "cpu" and bool((flat == -2.0).all())
    assert blank_input({**fmt, "flat": False}).shape == (1, 1, 2, 3)


def test_weights_whose_blank_image_output_is_not_finite_are_refused():
    model = nn.Sequential(nn.Linear(4, 2), nn.BatchNorm1d(2)).eval()
    model[1].running_var.fill_(-1.0)  # finite weights, NaN outputs
    with pytest.raises(DigitlearnError) as e:
        check_blank_image(model, image_format(2, flat=True), Path(WEIGHTS))
    assert str(e.value) == (
        f"{WEIGHTS}: the model's outputs for a blank image are not finite (NaN or infinite): "
        "the weights are damaged (a batch norm's running_var below 0?)"
    )


def test_the_outputs_bound_and_count_of_small_models():
    flat, image = image_format(2, flat=True), image_format(2, flat=False)
    layers = nn.Sequential(nn.Linear(4, 10), nn.ReLU(), nn.Linear(10, 3))
    assert outputs_bound(layers, flat) == 3 * max(10, 4)  # on flat inputs: the widest layer or the image
    assert outputs_bound(nn.Sequential(nn.ReLU(), nn.Flatten()), image) == 2 * 4  # no weights: one channel
    with torch.device("meta"):
        assert (
            count_outputs(nn.Sequential(nn.Linear(4, 10), nn.ReLU(), nn.Linear(10, 3)), flat) == 10 + 10 + 3
        )


def test_values_are_shown_as_json_cut_to_the_limit():
    assert shown("x" * 38) == '"' + "x" * 38 + '"'  # 40 characters: whole
    assert shown("x" * 39) == '"' + "x" * 36 + "..."
    assert shown(1j) == "1j"  # not JSON data: as Python writes it
