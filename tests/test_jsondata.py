"""One conversion to JSON-ready values, and files that are strict JSON even when figures are NaN."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from digitlearn.jsondata import jsonable
from digitlearn.models.saved import save_model


def strict(text: str) -> object:
    """JSON as every other language reads it: NaN and Infinity are not JSON."""

    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_every_kind_of_value():
    value = {
        1: (1, 2.5),
        "tensor": torch.tensor([[1.0, 2.0]]),
        "scalar": torch.tensor(3),
        "numpy": np.arange(3),
        "numpy_scalar": np.float32(0.5),
        "path": Path("runs") / "x",
        "nan": math.nan,
        "inf": [-math.inf],
        "nested": {"t": (torch.zeros(1),)},
        "text": "nan",
        "none": None,
    }
    assert jsonable(value) == {
        "1": [1, 2.5],
        "tensor": [[1.0, 2.0]],
        "scalar": 3,
        "numpy": [0, 1, 2],
        "numpy_scalar": 0.5,
        "path": "runs/x",
        "nan": None,
        "inf": [None],
        "nested": {"t": [[0.0]]},
        "text": "nan",
        "none": None,
    }
    json.dumps(jsonable(value), allow_nan=False)


def test_a_saved_model_with_nan_figures_is_strict_json(tmp_path):
    save_model(tmp_path / "run", nn.Linear(2, 1), {"results": {"accuracy": math.nan}, "sizes": (2, 1)})
    config = strict((tmp_path / "run" / "config.json").read_text())
    assert config["results"] == {"accuracy": None} and config["sizes"] == [2, 1]
    with pytest.raises(ValueError, match="NaN is not JSON"):
        strict('{"a": NaN}')
