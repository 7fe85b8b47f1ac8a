"""A trained model for other runtimes: ONNX (onnxruntime, and everything that reads ONNX) or
TorchScript, as one file that needs neither digitlearn nor Python.

The exported model takes what every runtime can hand it: a float32 batch (N, 1, H, W) of pixel
values in [0, 1], ink = 1 as MNIST stores it, of any N. The run's input scaling (flattening, mean
and std) is inside, and so is the activation: it returns the probability of each class (N, C).
Its classes and input format travel with it: in the ONNX file's metadata (`classes`, `input`,
JSON), in the TorchScript file's extra files (`classes.json`, `input.json`).

Exporting needs the `export` extra (`pip install 'digitlearn[export]'`): PyTorch's ONNX exporter
uses onnx and onnxscript, and the tests check the file in onnxruntime.
"""

import contextlib
import io
import json
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..errors import DigitlearnError
from ..files import atomic_path
from ..training.losses import probabilities
from .predictor import Predictor

if TYPE_CHECKING:
    import onnx

FORMATS = ("onnx", "torchscript")


class Exported(nn.Module):
    """The model with its input scaling before it and its activation after it."""

    def __init__(self, predictor: Predictor) -> None:
        super().__init__()
        fmt = predictor.input_format
        self.model, self.loss_func = predictor.model.cpu().eval(), predictor.loss_func
        self.flat, self.mean, self.std = fmt.flat, fmt.mean, fmt.std

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = (pixels - self.mean) / self.std
        x = x.flatten(1) if self.flat else x
        return probabilities(self.model(x), self.loss_func)


def metadata(predictor: Predictor) -> dict[str, str]:
    """What a runtime needs to know besides the graph, as JSON strings."""
    return {"classes": json.dumps(predictor.classes), "input": json.dumps(predictor.input_format.to_dict())}


def export(predictor: Predictor, out: str | Path, format: str = "onnx") -> Path:
    """Write `predictor`'s model to the file `out` in `format` (onnx or torchscript), atomically."""
    if format not in FORMATS:
        raise DigitlearnError(f"unknown export format {format!r} (known: {', '.join(FORMATS)})")
    out = Path(out)
    if format == "onnx":
        proto = onnx_model(predictor)  # refuses first if onnx is not installed
        import onnx

        with atomic_path(out, suffix=out.suffix) as tmp:
            onnx.save(proto, str(tmp))
        return out
    wrapped = Exported(predictor).eval()
    with atomic_path(out, suffix=out.suffix) as tmp, torch.no_grad():
        traced = torch.jit.trace(wrapped, _example(predictor))
        extra = {f"{k}.json": v for k, v in metadata(predictor).items()}
        torch.jit.save(traced, str(tmp), _extra_files=extra)
    return out


def onnx_model(predictor: Predictor) -> "onnx.ModelProto":
    """`predictor`'s model as an ONNX graph in memory (what `export` writes), with its classes and
    input format in the metadata: for onnxruntime (runtime.py) or a file."""
    try:
        import onnx
    except ImportError:
        raise DigitlearnError(
            "exporting to ONNX needs the export extra: pip install 'digitlearn[export]'"
        ) from None
    batch = torch.export.Dim("batch", min=1)
    # quiet: the exporter prints its progress, warns of its own deprecations and logs that
    # torchvision's operators are not there (this model uses none)
    registry = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registry.level
    registry.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            program = torch.onnx.export(
                Exported(predictor).eval(),
                (_example(predictor),),
                input_names=["pixels"],
                output_names=["probabilities"],
                dynamic_shapes={"pixels": {0: batch}},
                dynamo=True,
                verbose=False,
            )
    finally:
        registry.setLevel(level)
    proto = program.model_proto
    onnx.helper.set_model_props(proto, metadata(predictor))
    return proto


def _example(predictor: Predictor) -> torch.Tensor:
    """A batch for the exporters to trace: two images of the model's size (two: a batch of one
    could be taken for a fixed size)."""
    h, w = predictor.size
    return torch.rand(2, 1, h, w)
