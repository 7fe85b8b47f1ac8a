"""Fuzzing: mutated image, IDX, run-folder and JSON request bytes go to the readers, the
predictor's preparation, the run loader and the web API's body parsing, and random arrays of
every shape from 1x1 to long strips go to the preparation and the number reader; nothing but
digitlearn's own errors (or, from the API, a 4xx) may come out.

Hypothesis mutates valid files (bytes flipped, cut short, spliced, repeated) and keeps the
examples that fail. The examples are derandomized and bounded, so CI runs the same few hundred
every time in seconds; `HYPOTHESIS_PROFILE=deep pytest tests/test_fuzz.py` explores many more.
"""

import base64
import contextlib
import gzip
import io
import os
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image
from torch import nn

from digitlearn.data.idx import read_idx
from digitlearn.errors import DigitlearnError
from digitlearn.inference.predictor import Predictor
from digitlearn.models import mlp
from digitlearn.models.saved import save_model
from digitlearn.runs.model import load_model
from digitlearn.vision.images import read_gray
from digitlearn.vision.prepare import to_mnist
from tests.conftest import save_untrained

settings.register_profile(
    "ci", max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("deep", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def encoded(fmt: str, mode: str = "L", size: int = 24) -> bytes:
    rng = np.random.default_rng(0)
    a = np.zeros((size, size), np.uint8)
    a[4:-4, size // 2 - 2 : size // 2 + 2] = 255  # a stroke: a "1"
    a = a ^ rng.integers(0, 8, a.shape, dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).convert(mode).save(buf, fmt)
    return buf.getvalue()


SEEDS = [
    encoded("PNG"),
    encoded("PNG", "RGBA"),
    encoded("PNG", "P"),
    encoded("JPEG", "RGB"),
    encoded("GIF"),
    encoded("BMP"),
    encoded("TIFF"),
    encoded("WEBP", "RGB"),
]


@st.composite
def mutated(draw, seeds: list[bytes]) -> bytes:
    """A seed file with a few random edits: flipped bytes, a cut, a spliced run, a repeated part."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        edit = draw(st.sampled_from(["flip", "cut", "splice", "repeat", "set"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if edit == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif edit == "cut":
            del data[at:]
        elif edit == "splice":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif edit == "repeat":
            data[at:at] = data[at : at + draw(st.integers(1, 64))] * draw(st.integers(1, 8))
        else:  # a header field set to an extreme: 0 or all ones
            data[at : at + 4] = draw(
                st.sampled_from([b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff"])
            )
    return bytes(data)


@given(mutated(SEEDS))
def test_mutated_images_give_an_image_or_our_error(data):
    try:
        gray = read_gray(data)
    except DigitlearnError:
        return
    assert gray.dtype == np.float32 and gray.ndim == 2 and np.isfinite(gray).all()


@given(mutated(SEEDS))
def test_mutated_images_give_mnist_inputs_or_our_error(data):
    try:
        x = to_mnist(data)
    except DigitlearnError:
        return
    assert x.shape == (28, 28) and bool(x.isfinite().all())


SIDE = st.one_of(st.integers(1, 48), st.integers(1, 3000))  # small, or a long strip's length


@st.composite
def pictures(draw) -> np.ndarray:
    """An image of any shape from 1x1 to a 3000-pixel strip (at most 300,000 pixels, to stay fast):
    a random pattern of up to 6x6 cells (uint8, floats in [0, 1] or booleans) stretched over it."""
    h, w = draw(SIDE), draw(SIDE)
    if h * w > 300_000:
        h = max(1, 300_000 // w)
    kind = draw(st.sampled_from(["uint8", "float", "bool"]))
    elements = {
        "uint8": st.integers(0, 255),
        "float": st.floats(0, 1, width=32),
        "bool": st.booleans(),
    }[kind]
    cells = draw(hnp.arrays({"uint8": np.uint8, "float": np.float32, "bool": bool}[kind],
                            st.tuples(st.integers(1, 6), st.integers(1, 6)), elements=elements))  # fmt: skip
    rows = np.arange(h) * cells.shape[0] // h
    cols = np.arange(w) * cells.shape[1] // w
    return cells[rows][:, cols]


@given(pictures())
def test_arrays_of_any_shape_give_mnist_inputs_or_our_error(picture):
    try:
        x = to_mnist(picture)
    except DigitlearnError:
        return
    assert x.shape == (28, 28) and bool(x.isfinite().all())


@pytest.fixture(scope="module")
def predictor(tmp_path_factory) -> Predictor:
    return Predictor.load(save_untrained(tmp_path_factory.mktemp("untrained") / "run"))


@settings(max_examples=30)
@given(picture=pictures())
def test_arrays_of_any_shape_give_a_number_or_our_error(predictor, picture):
    try:
        result = predictor.predict_number(picture)
    except DigitlearnError:
        return
    assert 1 <= len(result.number) <= 12 and len(result.boxes) == len(result.digits)


def idx_file(n: int = 3, h: int = 4, w: int = 4) -> bytes:
    header = struct.pack(">IIII", 2051, n, h, w)
    return header + bytes(range(n * h * w))


@given(mutated([idx_file(), gzip.compress(idx_file())]))
def test_mutated_idx_files_give_images_or_our_error(tmp_path_factory, data):
    name = "x-idx3-ubyte.gz" if data[:2] == b"\x1f\x8b" else "x-idx3-ubyte"
    path = tmp_path_factory.mktemp("idx") / name
    path.write_bytes(data)
    try:
        x = read_idx(path, "images")
    except DigitlearnError:
        return
    assert x.ndim == 3 and min(x.shape) > 0


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("run")
    model = mlp(n_in=16, hidden=(8,), n_out=2)
    config = {
        "classes": ["a", "b"],
        "input": {"height": 4, "width": 4, "flat": True, "mean": 0.0, "std": 1.0},
        "loss": {"name": "cross_entropy"},
        "metrics": ["accuracy"],
        "model": model.config,
    }
    save_model(path, model, config)
    return path


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_run_folders_load_or_give_our_error(run_folder, tmp_path_factory, data):
    which = data.draw(st.sampled_from(["config.json", "weights.safetensors"]))
    folder = tmp_path_factory.mktemp("mutated")
    for name in ("config.json", "weights.safetensors"):
        original = (run_folder / name).read_bytes()
        (folder / name).write_bytes(data.draw(mutated([original])) if name == which else original)
    try:
        model, config = load_model(folder)
    except DigitlearnError:
        return
    assert isinstance(model, nn.Module) and isinstance(config, dict)


def test_the_mutator_changes_files():
    # a property test that never mutates would pass whatever the readers do
    seen = set()

    @settings(max_examples=30, derandomize=True)
    @given(mutated(SEEDS[:1]))
    def collect(data):
        seen.add(data)

    collect()
    assert len(seen) > 20 and len({len(s) for s in seen}) > 5


def json_body(image: bytes) -> bytes:
    return b'{"image": "data:image/png;base64,' + base64.b64encode(image) + b'"}'


JSON_SEEDS = [
    json_body(SEEDS[0]),
    b'{"image": "' + base64.b64encode(SEEDS[3]) + b'"}',
    b"[[[{}]]]",
]


@given(mutated(JSON_SEEDS))
def test_mutated_json_requests_give_an_image_or_a_4xx(data):
    """What the web API does with a JSON body before the model: a 4xx HTTPException, or image
    bytes that the preparation turns into an input or refuses with our own error."""
    from fastapi import HTTPException

    from digitlearn.inference.serve import _image_bytes

    try:
        image = _image_bytes(data, "application/json")
    except HTTPException as e:
        assert 400 <= e.status_code < 500 and e.detail
        return
    with contextlib.suppress(DigitlearnError):  # "no digit", "not an image": ours, and fine
        assert to_mnist(image).shape == (28, 28)
