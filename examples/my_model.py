"""A model of your own: register its builder, with its options' types and bounds, and every part
of digitlearn knows it: recipes, flags, saved runs, the Predictor.

    python examples/my_model.py

Saved as a file in src/digitlearn/models/, the same model also works from the command line
(`digitlearn train --model two_layer --width 64`); here it is registered from a script.
"""

import tempfile
from pathlib import Path

from digitlearn import Predictor, load_dataset, train_run
from digitlearn.models import Option, register_model


@register_model(
    "two_layer",
    inputs="flat",  # rows of H*W pixels
    size_arg="n_in",  # the argument that receives H*W
    options={"width": Option("int", 1, 4096, "hidden units")},
    recipe={"epochs": 2, "lr": 3e-3, "opt": "adam", "loss": "cross_entropy", "width": 32},
)
def two_layer(n_in: int = 784, n_out: int = 10, width: int = 32):
    """Linear, ReLU, linear."""
    from torch import nn

    return nn.Sequential(nn.Linear(n_in, width), nn.ReLU(), nn.Linear(width, n_out))


out = Path(tempfile.mkdtemp()) / "two_layer"
run = train_run("mnist_sample", model="two_layer", out=out, width=16, progress=False, log=None)
print(f"accuracy {run.record['results']['accuracy']:.4f}, config {run.record['train']['width']}")
predictor = Predictor.load(out)  # the run folder rebuilds the model by its registered name
image = load_dataset("mnist_sample").valid.x[0]
print(f"{predictor}: the first validation image is a {predictor.classify(image).label}")
