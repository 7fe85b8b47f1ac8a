"""Checkpoints: everything a fit needs to go on exactly where it stopped, in one safetensors file.

A checkpoint holds the model's and the optimizer's tensors, every random generator's state (torch's
CPU and CUDA ones, the training loader's and augmentation's own, Python's `random`, NumPy's), the
epoch counter (the schedules' position: they advance by epoch), and the state of every callback
that keeps some (`Callback.state_dict`: the Recorder's history, SkipLearned's marks, the trackers'
best figure and weights, a user's own callback's), with no list of classes.
Tensors are safetensors tensors; the rest is JSON in the file's metadata, so one atomic rename
writes it all and nothing in it is unpickled.
Restored at an epoch boundary, on the same machine and thread count, the rest of the fit repeats
bit for bit what an uninterrupted one would have done.
"""

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save
from torch.nn.parallel import DistributedDataParallel

from ..errors import DigitlearnError
from ..files import atomic_path, checksum
from ..jsondata import JSONError, read_json
from .checkpoint_check import check_references, check_restorable, check_state
from .events import Callback, Learner

FORMAT = "digitlearn-checkpoint-2"  # 2: each callback's own state_dict, by its class
CHECKPOINT_KEY = "digitlearn-checkpoint"  # the metadata entry holding the JSON part
CHECKSUM_KEY = "sha256"  # of the JSON part and every tensor: flipped bytes anywhere show


def unwrapped(model: torch.nn.Module) -> torch.nn.Module:
    """The model itself, out of the DistributedDataParallel wrapper that training may have put on."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def _split(obj: Any, tensors: dict[str, torch.Tensor], key: str) -> Any:
    """`obj` as JSON data, each tensor in it moved to `tensors` and replaced by {"tensor": name}."""
    if isinstance(obj, torch.Tensor):
        tensors[key] = obj.detach().to("cpu", copy=True).contiguous()
        return {"tensor": key}
    if isinstance(obj, dict):
        return {k: _split(v, tensors, f"{key}.{k}") for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_split(v, tensors, f"{key}.{i}") for i, v in enumerate(obj)]
    return obj


def _join(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The inverse of `_split`."""
    if isinstance(obj, dict):
        if obj.keys() == {"tensor"}:
            return tensors[obj["tensor"]]
        return {k: _join(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_join(v, tensors) for v in obj]
    return obj


def _rng_state(learn: Learner) -> dict:
    np_state = np.random.get_state(legacy=True)
    state = {
        "torch": torch.get_rng_state(),
        "python": list(random.getstate()),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        # only generators already in use: initialising CUDA just to save its state costs seconds
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
    }
    if learn.dls.train.generator is not None:
        state["loader"] = learn.dls.train.generator.get_state()
    return state


def _set_rng_state(learn: Learner, state: dict) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])
    if "loader" in state:
        dl = learn.dls.train
        if dl.generator is None:  # a data-parallel run's (see `distributed`), resumed in one process
            dl.generator = torch.Generator(dl.device or "cpu")
        dl.generator.set_state(state["loader"])


def _callback_keys(learn: Learner) -> list[tuple[str, Callback]]:
    """Each callback with a stable name for its state: its class's, numbered from the second of a
    class on (two SaveBestModel watching different figures keep one state each)."""
    seen: dict[str, int] = {}
    keyed = []
    for cb in learn.cbs:
        name = f"{type(cb).__module__}.{type(cb).__qualname__}"
        seen[name] = seen.get(name, 0) + 1
        keyed.append((name if seen[name] == 1 else f"{name}#{seen[name]}", cb))
    return keyed


def _callback_states(learn: Learner) -> dict:
    """The state of every callback that keeps some (`Callback.state_dict`), by its key."""
    return {key: state for key, cb in _callback_keys(learn) if (state := cb.state_dict())}


def _set_callback_states(learn: Learner, states: dict, path: object) -> None:
    """Each saved state back into its callback; the checkpoint's callbacks and the Learner's that
    keep state must be the same, or the fit would go on from a state that is not its own."""
    callbacks = dict(_callback_keys(learn))
    unknown = sorted(states.keys() - callbacks.keys())
    if unknown:
        raise DigitlearnError(
            f"{path}: the checkpoint holds the state of a callback this Learner does not have "
            f"({unknown[0]}): add the same callbacks before resuming"
        )
    # a callback that keeps state returns it even before its first fit: none saved means it was absent
    unsaved = sorted(key for key, cb in callbacks.items() if key not in states and cb.state_dict())
    if unsaved:
        raise DigitlearnError(
            f"{path}: the checkpoint holds no state of a callback this Learner has ({unsaved[0]}): "
            "resume with the callbacks it was saved with"
        )
    for key, state in states.items():
        try:
            callbacks[key].load_state_dict(state)
        except (KeyError, TypeError, ValueError, RuntimeError) as e:  # a state of another version of it
            first_line = str(e).split("\n", 1)[0]  # torch's messages may run on for lines
            raise DigitlearnError(
                f"{path}: the checkpoint's state of {key} does not fit that callback "
                f"({type(e).__name__}: {first_line})"
            ) from e


def save_checkpoint(learn: Learner, path: str | Path, extra: dict | None = None) -> Path:
    """Write `learn`'s checkpoint to the file `path` atomically; `extra` (JSON data) goes with it."""
    tensors: dict[str, torch.Tensor] = {}
    for k, v in learn.raw_model.state_dict().items():
        tensors[f"model.{k}"] = v.detach().to("cpu", copy=True).contiguous()
    state = {
        "format": FORMAT,
        "epoch": learn.epochs_done,
        "n_epoch": learn.n_epoch,
        "opt": _split(learn.opt.state_dict(), tensors, "opt") if learn.opt is not None else None,
        "rng": _split(_rng_state(learn), tensors, "rng"),
        "callbacks": _split(_callback_states(learn), tensors, "cb"),
        "extra": extra or {},
    }
    # NaN (an epoch not validated) is kept as JSON's NaN: read back by Python, it is NaN again
    text = json.dumps(state)
    progress = {"epoch": str(learn.epochs_done), "n_epoch": str(learn.n_epoch)}  # runs.unfinished reads these
    metadata = {CHECKPOINT_KEY: text, CHECKSUM_KEY: checksum(text, tensors), **progress}
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(save(tensors, metadata))
    return path


def read_checkpoint(path: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(state, tensors) of a checkpoint file: the JSON part with tensors referenced by name, its
    checksum and fields checked (see `checkpoint_check`); a damaged file is called damaged."""
    try:
        with safe_open(Path(path), "pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
    except (SafetensorError, OSError) as e:
        raise DigitlearnError(f"{path}: the checkpoint is damaged: it cannot be read ({e})") from None
    text = meta.get(CHECKPOINT_KEY)
    if not isinstance(text, str) or f'"format": "{FORMAT}"' not in text:
        raise DigitlearnError(f"{path}: not a digitlearn checkpoint (expected format {FORMAT!r})")
    if meta.get(CHECKSUM_KEY) != checksum(text, tensors):
        raise DigitlearnError(f"{path}: the checkpoint is damaged: its checksum does not match its contents")
    try:
        state = read_json(text.encode(), max_depth=64, constants=True)
    except JSONError as e:
        raise DigitlearnError(f"{path}: the checkpoint is damaged: {e}") from None
    check_state(state, path)
    check_references(state, tensors, path)
    if state["format"] != FORMAT:
        raise DigitlearnError(f"{path}: not a digitlearn checkpoint (expected format {FORMAT!r})")
    return state, tensors


def load_checkpoint(learn: Learner, path: str | Path) -> dict:
    """Put the model's and optimizer's state back now; return the rest, which `fit` restores once
    its callbacks have started (their `before_fit` resets what the checkpoint holds). Everything
    is checked first (`checkpoint_check`): nothing is restored from a damaged file."""
    state, tensors = read_checkpoint(path)
    joined = {
        "model": {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")},
        "opt": _join(state["opt"], tensors) if state["opt"] is not None else None,
        "rng": _join(state["rng"], tensors),
        "callbacks": _join(state["callbacks"], tensors),
        "epoch": state["epoch"],
    }
    check_restorable(joined, learn, path)
    with torch.no_grad():
        learn.raw_model.load_state_dict(joined["model"])
    if joined["opt"] is not None:
        opt = learn._optimizer(learn.lr)
        for p, s in zip(opt.params, joined["opt"]["state"], strict=True):
            s.update({k: v.to(p.device) for k, v in s.items() if isinstance(v, torch.Tensor)})
        opt.load_state_dict(joined["opt"])
    return {
        "epoch": state["epoch"],
        "rng": joined["rng"],
        "callbacks": joined["callbacks"],
        "extra": state["extra"],
        "path": path,
    }


def restore(learn: Learner, resume: dict) -> None:
    """What `load_checkpoint` left for the start of `fit`: callbacks' states, then the generators."""
    _set_callback_states(learn, resume["callbacks"], resume["path"])
    _set_rng_state(learn, resume["rng"])  # last: nothing may draw between this and the first batch
