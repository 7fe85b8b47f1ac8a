"""Where training runs, and how a run repeats: the device, and the seeds of every generator."""

import random

import numpy as np
import torch

from .errors import DigitlearnError


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and PyTorch, so that a run repeats exactly on the same machine."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def pick_device(name: str | torch.device = "auto") -> torch.device:
    """`auto` is the GPU when PyTorch sees one, else the CPU; `cuda` without one is an error."""
    name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DigitlearnError(f"unknown device {name!r} (use auto, cpu or cuda)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DigitlearnError(
            f"device {name!r} asked for, but PyTorch {torch.__version__} sees no CUDA GPU here"
        )
    return device
