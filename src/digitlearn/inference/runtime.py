"""`--runtime onnx`: a Predictor whose model runs in onnxruntime instead of PyTorch.

The model is exported as `digitlearn export --format onnx` writes it (export.py: the input's
scaling and the activation inside), in memory when the run is loaded, and run by onnxruntime's
CPU provider with as many threads as PyTorch was given (`--threads`). Everything else, the
preparation of images above all, is the same: only the model's call changes.
"""

import os

import torch

from ..errors import DigitlearnError
from .export import onnx_model
from .predictor import Predictor

RUNTIMES = ("torch", "onnx")


def load_predictor(
    run_dir: str | os.PathLike | None = None, device: str | torch.device = "cpu", runtime: str = "torch"
) -> Predictor:
    """`Predictor.load(run_dir, device)`, its model run by `runtime` (torch or onnx)."""
    if runtime not in RUNTIMES:
        raise DigitlearnError(f"unknown runtime {runtime!r} (known: {', '.join(RUNTIMES)})")
    return (OnnxPredictor if runtime == "onnx" else Predictor).load(run_dir, device)


class OnnxPredictor(Predictor):
    """A Predictor whose model is run by onnxruntime (the `export` extra), on the CPU."""

    def __init__(self, model: torch.nn.Module, config: dict, device: str | torch.device = "cpu") -> None:
        try:
            import onnxruntime
        except ImportError:
            raise DigitlearnError(
                "--runtime onnx needs onnxruntime, which is not installed: pip install 'digitlearn[export]'"
            ) from None
        super().__init__(model, config, device)
        if self.device.type != "cpu":
            raise DigitlearnError(f"--runtime onnx runs on the CPU, not {self.device}: use --device cpu")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        # its threads would otherwise spin between calls, taking a CPU from whatever runs beside them
        # (the server's image workers)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        graph = onnx_model(self).SerializeToString()
        self.session = onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])

    def run_model(self, images: torch.Tensor) -> torch.Tensor:
        h, w = self.size
        if tuple(images.shape[-2:]) != (h, w):
            got = "x".join(map(str, images.shape[-2:]))
            raise DigitlearnError(f"images are {got}, but the model takes {h}x{w}")
        pixels = images.float().div(255) if images.dtype == torch.uint8 else images.float()
        return torch.from_numpy(self.session.run(None, {"pixels": pixels.reshape(-1, 1, h, w).numpy()})[0])

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + ", in onnxruntime)"
