"""The Predictor: a saved run folder in, people's digit images in, labels and probabilities out.

It needs nothing but the run folder (weights.safetensors + config.json): the config says how to
build the model, what its classes are, how images become inputs, and which activation turns its
outputs into probabilities. No training data, no pickles, no code from the folder.
"""

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data.dataset import Dataset, InputFormat
from ..device import pick_device
from ..errors import DigitlearnError
from ..hardware import usable_cores
from ..runs.model import load_model
from ..training.losses import LOSSES, probabilities
from ..vision.images import describe, read_gray
from ..vision.prepare import ImageSource, clean, find_ink, fit

# the model that ships inside the package (tools/box_model.py makes it): what `Predictor.load()`,
# `digitlearn predict IMAGE...` and `digitlearn serve` use when no run folder is given
BOXED = Path(__file__).parent / "boxed"


BOXED_NOTE = "no run folder given: using the model that ships with digitlearn (the fast recipe's, on MNIST)"


PREPARE_IN_PARALLEL = 64  # images: fewer are prepared faster than a process pool starts
BATCH = 1024  # images through the model at once: a bounded batch, whatever the number of files


@dataclass
class Prediction:
    """One image's result: the label, every class's probability, and the 28x28 input the model saw."""

    label: str
    index: int
    probs: torch.Tensor
    classes: list[str]
    input: torch.Tensor
    marks: int = 1  # marks in the image that look like separate digits: more than 1, read a number?

    @property
    def probability(self) -> float:
        return float(self.probs[self.index])

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        """The `k` most probable classes as (label, probability), most probable first."""
        values, idx = self.probs.topk(min(k, len(self.classes)))
        return [(self.classes[i], float(v)) for v, i in zip(values, idx.tolist(), strict=True)]

    def to_dict(self, k: int = 3) -> dict:
        """JSON-ready: label, index, probability of each class (in class order), and the top `k`."""
        probs = self.probs.tolist()  # one conversion, not one tensor per class (the server's every answer)
        return {
            "label": self.label,
            "index": self.index,
            "probability": probs[self.index],
            "probabilities": dict(zip(self.classes, probs, strict=True)),
            "top": [{"label": c, "probability": p} for c, p in self.top(k)],
        }


@dataclass
class NumberPrediction:
    """A number's result: its digits left to right, each a Prediction, and each digit's box
    [x0, y0, x1, y1] in the image's pixels (x1, y1 excluded)."""

    digits: list[Prediction]
    boxes: list[list[int]]

    @property
    def number(self) -> str:
        return "".join(d.label for d in self.digits)

    @property
    def probability(self) -> float:
        """How likely every digit is read right: the product of the digits' probabilities."""
        return math.prod(d.probability for d in self.digits)

    def to_dict(self) -> dict:
        """JSON-ready: the number, and each digit's label, probability and box."""
        return {
            "number": self.number,
            "probability": self.probability,
            "digits": [
                {"label": d.label, "probability": d.probability, "box": box}
                for d, box in zip(self.digits, self.boxes, strict=True)
            ],
        }


class Predictor:
    """A trained model with what it takes to use it: `Predictor.load("runs/mnist-fast").predict("7.png")`."""

    def __init__(self, model: nn.Module, config: dict, device: str | torch.device = "cpu") -> None:
        if not isinstance(config.get("input"), dict) or not config.get("classes"):
            raise DigitlearnError(
                "the model's config has no input format or classes: it cannot predict images"
            )
        self.config = config
        self.classes = [str(c) for c in config["classes"]]
        self.input_format = InputFormat(**config["input"])
        loss = config.get("loss") or {}
        self.loss_func = LOSSES.get(loss.get("name"))
        self.device = pick_device(device)
        self.model = model.to(self.device).eval()
        self.path: Path | None = None  # the run folder, when loaded from one

    @classmethod
    def load(
        cls, run_dir: str | os.PathLike | None = None, device: str | torch.device = "cpu"
    ) -> "Predictor":
        """The model saved in `run_dir` (by `digitlearn train` or `Learner.save`), refused in one
        line if anything in the folder is wrong: `serve` then does not start. Without `run_dir`,
        the model that ships with digitlearn (`BOXED`: the fast recipe's, 99.2% on MNIST)."""
        run_dir = BOXED if run_dir is None else run_dir
        model, config = load_model(run_dir, required=("classes", "input"))
        predictor = cls(model, config, device)
        predictor.path = Path(run_dir)
        return predictor

    @property
    def size(self) -> tuple[int, int]:
        return (self.input_format.height, self.input_format.width)

    @property
    def trained_on(self) -> str | None:
        """The data the run was trained on, as `digitlearn train --data` named it (if it says)."""
        return (self.config.get("train") or {}).get("data")

    def check_data(self, ds: Dataset, name: str) -> None:
        """Refuse, in one line, data whose classes or image size are not this model's."""
        where = self.path or "the model"
        if list(ds.classes) != self.classes:
            ours, theirs = ", ".join(self.classes), ", ".join(ds.classes)
            raise DigitlearnError(f"{where} was trained on classes {ours}, but {name} has {theirs}")
        if tuple(ds.train.x.shape[1:]) != self.size:
            h, w = self.size
            got = "x".join(map(str, ds.train.x.shape[1:]))
            raise DigitlearnError(f"{name} has {got} images, the model takes {h}x{w}: add --size {h}x{w}")

    def prepare(self, source: ImageSource) -> torch.Tensor:
        """An image file, bytes or picture as the (H, W) float input in [0, 1] this model takes."""
        result = prepared(source, self.size, count_marks=False)
        if isinstance(result, DigitlearnError):
            raise result
        return result[0]

    @torch.inference_mode()
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """(N, H, W) prepared images (float in [0, 1] or uint8) -> (N, n_classes) probabilities."""
        probs = self.run_model(images)
        if not bool(probs.isfinite().all()):  # finite weights can still overflow on some image
            where = self.path or "the model"
            raise DigitlearnError(
                f"{where}: the model's outputs are not finite (NaN or infinite) for these images"
            )
        return probs

    def run_model(self, images: torch.Tensor) -> torch.Tensor:
        """The probabilities as the model gives them, unchecked: in PyTorch here, in another
        runtime in a subclass (runtime.py)."""
        x = self.input_format(images).to(self.device)
        return probabilities(self.model(x), self.loss_func).cpu()

    def _result(self, image: torch.Tensor, probs: torch.Tensor, marks: int = 1) -> Prediction:
        index = int(probs.argmax())
        return Prediction(self.classes[index], index, probs, self.classes, image, marks)

    def predict(self, source: ImageSource) -> Prediction:
        """Classify one image (a path, its bytes, a Pillow image or an H x W array of any size)."""
        result = self.predict_many([source])[0]
        if isinstance(result, DigitlearnError):
            raise result
        return result

    def classify(self, image: "torch.Tensor | np.ndarray") -> Prediction:
        """Classify one image already prepared as this model's inputs are (H x W; uint8, integers
        0-255 or floats in [0, 1]): a dataset's image, or what `prepare` made of a person's."""
        image = torch.from_numpy(read_gray(image))
        return self._result(image, self.probabilities(image[None])[0])

    def predict_number(self, source: ImageSource) -> NumberPrediction:
        """Read every digit of an image, left to right (see `segment`): a number such as 4096."""
        from ..vision.segment import read_digits

        found = find_ink(source)
        digits = read_digits(found.ink, self.probabilities, self.size, describe(source))
        return NumberPrediction(
            [self._result(d.input, d.probs) for d in digits], [found.box(d.rows, d.cols) for d in digits]
        )

    def predict_many(
        self, sources: Iterable[ImageSource], workers: int | None = None
    ) -> list[Prediction | DigitlearnError]:
        """Classify many images, the model in batches; an image that cannot be read (or holds no
        digit) gets its error in its place, and the rest are still classified.

        Preparing the images is most of the work: many are prepared in `workers` processes at
        once (default: one per core, for PREPARE_IN_PARALLEL images or more)."""
        sources = list(sources)
        workers = workers or (usable_cores() if len(sources) >= PREPARE_IN_PARALLEL else 1)
        results = _prepare_all(self.size, sources, workers)
        images = [r[0] for r in results if isinstance(r, tuple)]
        chunks = [
            self.probabilities(torch.stack(images[i : i + BATCH])) for i in range(0, len(images), BATCH)
        ]
        probs = iter(torch.cat(chunks) if chunks else [])
        return [self._result(r[0], next(probs), r[1]) if isinstance(r, tuple) else r for r in results]

    def __repr__(self) -> str:
        arch = (self.config.get("model") or {}).get("arch", "model")
        return f"Predictor({arch}, classes {', '.join(self.classes)}, on {self.device})"


Prepared = tuple[torch.Tensor, int] | DigitlearnError


def prepared(source: ImageSource, size: tuple[int, int], count_marks: bool = True) -> Prepared:
    """One image as the model's input and its count of marks (1 when not `count_marks`: counting
    them takes a tenth of a drawing's time, for the warning that `predict` prints), or the error
    that names it."""
    from ..vision.segment import count_marks as marks_in

    try:
        ink = clean(source)
        return fit(ink, size), marks_in(ink) if count_marks else 1
    except DigitlearnError as e:
        return e


def _prepare_chunk(task: tuple[tuple[int, int], list[ImageSource]]) -> list[Prepared]:
    size, sources = task
    return [prepared(s, size) for s in sources]


def _prepare_all(size: tuple[int, int], sources: list[ImageSource], workers: int) -> list[Prepared]:
    """Every source prepared, in order; in `workers` forked processes when more than one (the
    preparation is NumPy and SciPy, which a fork can run; the model stays in this process)."""
    if workers <= 1 or len(sources) < 2:
        return [prepared(s, size) for s in sources]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    per = -(-len(sources) // (4 * workers))  # a few chunks a worker: an uneven one waits less
    tasks = [(size, sources[i : i + per]) for i in range(0, len(sources), per)]
    context = multiprocessing.get_context(
        "fork" if "fork" in multiprocessing.get_all_start_methods() else None
    )
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_one_thread) as pool:
        return [r for chunk in pool.map(_prepare_chunk, tasks) for r in chunk]


def _one_thread() -> None:
    # a worker's NumPy/SciPy work is one image at a time: more threads each would only fight over
    # the cores the other workers use
    torch.set_num_threads(1)
