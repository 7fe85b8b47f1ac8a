"""A saved model is a folder: `weights.safetensors` (tensors only) and `config.json` (plain data).

`save_model` writes both; `read_weights` and `load_weights` read the weights back, checked against
the model they are for (names, shapes, dtypes, finite values, and the file's size before its
header) before a single tensor is read. Building a model from a config.json someone else wrote,
and checking that config, is the run folder's business (`runs.model`).
"""

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save
from torch import nn

from ..errors import DigitlearnError
from ..files import atomic_path, checksum
from ..jsondata import jsonable

WEIGHTS = "weights.safetensors"
CONFIG = "config.json"
FORMAT = "digitlearn-model-1"
CHECKSUM_KEY = "sha256"  # of every tensor, in the file's metadata

# safetensors' names for the dtypes a model holds
DTYPE_NAMES = {
    torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
    torch.bool: "BOOL",
}  # fmt: skip
WEIGHTS_HEADER_BYTES = 1 << 20  # the header beyond the data: about 100 bytes a tensor


def save_model(path: str | Path, model: nn.Module, config: dict) -> Path:
    """Write the model's weights and `config` into the folder `path` (created if needed)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise DigitlearnError(f"{path} is a file: a saved model is a folder")
    # copies: safetensors refuses tensors that share memory, and wants them on the CPU
    state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path / WEIGHTS) as tmp:  # written by Python, so with the usual umask permissions
        tmp.write_bytes(save(state, {CHECKSUM_KEY: checksum("", state)}))
    with atomic_path(path / CONFIG) as tmp:
        # strict JSON: an interrupted run's results hold NaN, which JSON spells null
        tmp.write_text(json.dumps(jsonable({"format": FORMAT, **config}), indent=2, allow_nan=False) + "\n")
    return path


def weights_limit(expected: dict[str, torch.Tensor]) -> int:
    """The most bytes a safetensors file of exactly these tensors takes (8: the header's length)."""
    return 8 + WEIGHTS_HEADER_BYTES + sum(t.numel() * t.element_size() for t in expected.values())


def check_weights_header(header: dict[str, tuple[str, tuple[int, ...]]], expected: dict, file: Path) -> None:
    """The file's tensors, as (dtype name, shape) by name, must be the model's: the same names,
    shapes and dtypes (runs are saved from models as built: float32, and int64 counters)."""
    missing, extra = sorted(expected.keys() - header.keys()), sorted(header.keys() - expected.keys())
    wrong = sorted(k for k in expected.keys() & header.keys() if header[k][1] != tuple(expected[k].shape))
    if missing or extra or wrong:
        k = (missing or extra or wrong)[0]
        problem = (
            "missing"
            if missing
            else "unexpected"
            if extra
            else f"{header[k][1]} not {tuple(expected[k].shape)}"
        )
        raise DigitlearnError(f"{file} does not fit this model: tensor {k!r} is {problem}")
    for k, t in expected.items():
        want = DTYPE_NAMES.get(t.dtype, str(t.dtype))
        if header[k][0] != want:
            raise DigitlearnError(
                f"{file}: tensor {k!r} must hold {want} numbers, as the model's does, not {header[k][0]}"
            )


def check_finite(state: dict[str, torch.Tensor], file: Path) -> None:
    for k, t in state.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise DigitlearnError(f"{file}: tensor {k!r} holds NaN or infinite values")


def read_weights(path: str | Path, expected: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors of the weights file in `path`, which must be exactly `expected`'s (names, shapes,
    dtypes) and finite. The header is checked before any tensor is read, and the file's size
    before the header, so a file cannot make this read more than the model's own size."""
    file = Path(path) / WEIGHTS
    if not file.is_file():
        raise DigitlearnError(f"{path} is not a saved model: no {WEIGHTS} in it")
    size, limit = file.stat().st_size, weights_limit(expected)
    if size > limit:
        raise DigitlearnError(
            f"{file}: {size:,} bytes, more than this model's weights take ({limit:,} at most)"
        )
    try:
        with safe_open(file, "pt") as f:
            slices = {k: f.get_slice(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
            check_weights_header(
                {k: (s.get_dtype(), tuple(s.get_shape())) for k, s in slices.items()}, expected, file
            )
            state = {k: f.get_tensor(k) for k in slices}
            recorded = (f.metadata() or {}).get(CHECKSUM_KEY)
    except (SafetensorError, OSError) as e:
        raise DigitlearnError(f"{file}: cannot read the weights ({e})") from None
    if recorded is not None and recorded != checksum("", state):  # runs saved before it have none
        raise DigitlearnError(f"{file}: the weights are damaged: their checksum does not match them")
    check_finite(state, file)
    return state


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Fill `model` with the weights saved in `path`; names, shapes and dtypes must match exactly."""
    state = read_weights(path, model.state_dict())
    with torch.no_grad():
        model.load_state_dict(state)
    return model
