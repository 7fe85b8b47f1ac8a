"""What a checkpoint may hold, checked before anything in it is restored.

A checkpoint can be truncated by a full disk, damaged by a bad sector, or edited by hand; resuming
from it must then say so in one line naming the file and the field, not fail deep inside torch or
numpy, nor resume into an inconsistent run. The checks: the checksum of everything in the file
(flipped bytes anywhere), every metadata field's type and range (the epoch within 0..n_epoch,
the history's rows matching it), every tensor reference, the model's tensors (names, shapes,
dtypes, finite values), the optimizer's state against the parameters, and each random
generator's state by its size.
"""

import math
import random
from typing import Any, NoReturn

import numpy as np
import torch

from ..errors import DigitlearnError
from .events import Learner
from .optim import trainable

KEYS = ("format", "epoch", "n_epoch", "opt", "rng", "callbacks", "extra")
MAX_EPOCHS = 10**6
MAX_TENSORS = 100_000


class _Check:
    def __init__(self, path: object) -> None:
        self.path = path

    def fail(self, field: str, what: str) -> NoReturn:
        raise DigitlearnError(f"{self.path}: the checkpoint is damaged: {field} {what}")

    def whole(self, field: str, value: Any, low: int, high: int) -> int:
        if type(value) is not int or not low <= value <= high:
            self.fail(field, f"must be a whole number from {low:,} to {high:,}, not {value!r:.40}")
        return value

    def kind(self, field: str, value: Any, kinds: type | tuple[type, ...], what: str) -> Any:
        if not isinstance(value, kinds) or isinstance(value, bool):  # true is an int to Python
            self.fail(field, f"must be {what}, not {type(value).__name__}")
        return value

    def tensor(self, field: str, value: Any, dtype: torch.dtype, numel: int | None = None) -> torch.Tensor:
        if not isinstance(value, torch.Tensor) or value.dtype != dtype:
            self.fail(
                field, f"must be a tensor of {dtype}, not {getattr(value, 'dtype', type(value).__name__)}"
            )
        if numel is not None and value.numel() != numel:
            self.fail(field, f"must hold {numel:,} numbers, not {value.numel():,}")
        return value


def check_references(state: Any, tensors: dict[str, torch.Tensor], path: object) -> None:
    """Every {"tensor": name} in the metadata names a tensor of the file, and no more than the
    limit are referenced (counted level by level: no recursion on hand-made nesting)."""
    check, level, seen = _Check(path), [state], 0
    while level:
        nxt = []
        for value in level:
            if isinstance(value, dict):
                if value.keys() == {"tensor"}:
                    if value["tensor"] not in tensors:
                        check.fail(f"tensor {str(value['tensor'])!r:.60}", "is missing from the file")
                    seen += 1
                    continue
                nxt.extend(value.values())
            elif isinstance(value, list):
                nxt.extend(value)
        if seen > MAX_TENSORS:
            check.fail("metadata", f"refers to more than {MAX_TENSORS:,} tensors")
        level = nxt


def check_state(state: Any, path: object) -> None:
    """The metadata's fields, before any tensor is joined in."""
    check = _Check(path)
    check.kind("metadata", state, dict, "an object")
    for key in KEYS:
        if key not in state:
            check.fail(key, "is missing")
    unknown = sorted(state.keys() - set(KEYS))
    if unknown:
        check.fail(str(unknown[0])[:40], "is not a field of a checkpoint")
    n_epoch = check.whole("n_epoch", state["n_epoch"], 0, MAX_EPOCHS)
    check.whole("epoch", state["epoch"], 0, n_epoch)
    check.kind("extra", state["extra"], dict, "an object")
    check.kind("callbacks", state["callbacks"], dict, "an object")
    check.kind("rng", state["rng"], dict, "an object")
    if state["opt"] is not None:
        check.kind("opt", state["opt"], dict, "an object")


def check_restorable(state: dict, learn: Learner, path: object) -> None:
    """With the tensors joined in: what the model, the optimizer, the generators and the
    Recorder's history must be for this Learner."""
    check = _Check(path)
    _check_model(check, state["model"], learn)
    if state["opt"] is not None:
        _check_opt(check, state["opt"], trainable(learn.raw_model.parameters()))
    _check_rng(check, state["rng"])
    for key, cb_state in state["callbacks"].items():
        check.kind(f"callbacks.{key:.60}", cb_state, dict, "an object")
        if key.endswith(".Recorder"):
            _check_history(check, cb_state, state["epoch"])


def _check_model(check: _Check, tensors: dict[str, torch.Tensor], learn: Learner) -> None:
    expected = learn.raw_model.state_dict()
    missing, extra = sorted(expected.keys() - tensors.keys()), sorted(tensors.keys() - expected.keys())
    if missing or extra:
        name = (missing or extra)[0]
        check.fail(f"model tensor {name!r}", "is missing" if missing else "is not one of this model's")
    for name, want in expected.items():
        got = tensors[name]
        if got.shape != want.shape or got.dtype != want.dtype:
            check.fail(
                f"model tensor {name!r}",
                f"is {got.dtype} {tuple(got.shape)}, not {want.dtype} {tuple(want.shape)}",
            )
        if got.is_floating_point() and not bool(got.isfinite().all()):
            check.fail(f"model tensor {name!r}", "holds NaN or infinite values")


def _check_opt(check: _Check, opt: dict, params: list[torch.Tensor]) -> None:
    for key in ("lr", "mom", "state"):
        if key not in opt:
            check.fail(f"opt.{key}", "is missing")
    for key in ("lr", "mom"):
        value = check.kind(f"opt.{key}", opt[key], (int, float), "a number")
        if not math.isfinite(value):
            check.fail(f"opt.{key}", "must be finite")
    states = check.kind("opt.state", opt["state"], list, "a list")
    if len(states) != len(params):
        check.fail("opt.state", f"holds {len(states)} parameters' state, the model trains {len(params)}")
    for i, (s, p) in enumerate(zip(states, params, strict=True)):
        check.kind(f"opt.state[{i}]", s, dict, "an object")
        for k, v in s.items():
            field = f"opt.state[{i}].{k:.40}"
            if isinstance(v, torch.Tensor):
                if v.numel() > 1 and v.shape != p.shape:
                    check.fail(field, f"is {tuple(v.shape)}, the parameter is {tuple(p.shape)}")
                if v.is_floating_point() and not bool(v.isfinite().all()):
                    check.fail(field, "holds NaN or infinite values")
            elif isinstance(v, bool) or not isinstance(v, int | float):
                check.fail(field, f"must be a number or a tensor, not {type(v).__name__}")


def _check_rng(check: _Check, rng: dict) -> None:
    for key in ("torch", "python", "numpy", "cuda"):
        if key not in rng:
            check.fail(f"rng.{key}", "is missing")
    check.tensor("rng.torch", rng["torch"], torch.uint8, torch.get_rng_state().numel())
    python = check.kind("rng.python", rng["python"], list, "a list")
    internal = len(random.getstate()[1])
    if len(python) != 3 or not isinstance(python[1], list) or len(python[1]) != internal:
        check.fail("rng.python", f"must be [version, {internal} numbers, gauss]")
    if not all(type(x) is int and 0 <= x < 2**32 for x in python[1]) or type(python[0]) is not int:
        check.fail("rng.python", "must hold whole numbers from 0 to 2**32 - 1")
    numpy = check.kind("rng.numpy", rng["numpy"], list, "a list")
    keys = len(np.random.get_state(legacy=True)[1])
    if len(numpy) != 5 or numpy[0] != "MT19937" or not all(type(x) in (int, float) for x in numpy[2:]):
        check.fail("rng.numpy", "must be ['MT19937', keys, position, has_gauss, gauss]")
    check.tensor("rng.numpy.keys", numpy[1], torch.int64, keys)
    if not 0 <= numpy[2] <= keys or not bool(((numpy[1] >= 0) & (numpy[1] < 2**32)).all()):
        check.fail("rng.numpy", "holds numbers out of range")
    for i, state in enumerate(check.kind("rng.cuda", rng["cuda"], list, "a list")):
        check.tensor(f"rng.cuda[{i}]", state, torch.uint8)
    if "loader" in rng:
        loader = check.tensor("rng.loader", rng["loader"], torch.uint8)
        if loader.numel() not in (torch.get_rng_state().numel(), 16):  # a CPU or a CUDA generator's
            check.fail("rng.loader", f"is a generator state of {loader.numel()} bytes, of no generator")


def _check_history(check: _Check, recorder: dict, epoch: int) -> None:
    history = check.kind("Recorder.history", recorder.get("history"), list, "a list")
    if len(history) != epoch:
        check.fail(
            "Recorder.history", f"holds {len(history)} epochs' rows, the checkpoint is at epoch {epoch}"
        )
    for i, row in enumerate(history):
        if not isinstance(row, dict) or row.get("epoch") != i:
            check.fail(f"Recorder.history[{i}]", f"must be epoch {i}'s row")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in row.values()):
            check.fail(f"Recorder.history[{i}]", "must hold numbers")
    names = recorder.get("names")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        check.fail("Recorder.names", "must be a list of column names")
