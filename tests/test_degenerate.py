"""Degenerate images: every shape from 1x1 to thin strips thousands of pixels long, blank, all ink,
one pixel of ink, checkerboards and noise. Each gives a prediction or one of digitlearn's own
errors (NoDigitError, ImageError), from the Python API, the command line and the web API; never
another exception, a traceback or a 500."""

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from digitlearn.cli import main
from digitlearn.errors import DigitlearnError
from digitlearn.inference.predictor import Predictor
from digitlearn.inference.serve import create_app
from digitlearn.vision.prepare import to_mnist
from tests.conftest import encoded

SHAPES = [
    (1, 1), (1, 2), (2, 1), (3, 3), (7, 7), (28, 28), (3, 40), (40, 3), (1, 600), (600, 1),
    (2, 3000), (3000, 2), (4, 4000), (4000, 4), (10, 2048), (20, 4000), (1, 5000), (5000, 1),
    (1, 50_000), (3, 20_000),
]  # fmt: skip


def pattern(kind: str, h: int, w: int) -> np.ndarray:
    """An h x w uint8 image of one kind: dark ink on white paper where there is ink."""
    rng = np.random.default_rng(h * 100_003 + w)
    a = np.full((h, w), 255, np.uint8)
    if kind == "ink":
        a[:] = 0
    elif kind == "one pixel":
        a[h // 2, w // 2] = 0
    elif kind == "corner":
        a[0, 0] = 0
    elif kind == "bar":  # across the long side: a stroke, where it fits
        a[:, w // 3 : w // 3 + max(1, w // 10)] = 0
    elif kind == "across":
        a[h // 3 : h // 3 + max(1, h // 10)] = 0
    elif kind == "checkerboard":
        a = (np.indices((h, w)).sum(0) % 2 * 255).astype(np.uint8)
    elif kind == "noise":
        a = rng.integers(0, 256, (h, w), dtype=np.uint8)
    elif kind == "dots":
        a[rng.random((h, w)) < 0.01] = 0
    return a


KINDS = ["paper", "ink", "one pixel", "corner", "bar", "across", "checkerboard", "noise", "dots"]


@pytest.fixture(scope="module")
def predictor(untrained_run) -> Predictor:
    return Predictor.load(untrained_run)


def outcome(read, image) -> str:
    """'read' or 'refused' (our error); any other exception fails the test, naming the image."""
    try:
        read(image)
    except DigitlearnError:
        return "refused"
    return "read"


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_every_shape_and_kind_is_read_or_refused_by_our_error(predictor, shape):
    for kind in KINDS:
        image = pattern(kind, *shape)
        for read in (to_mnist, predictor.predict, predictor.predict_number):
            outcome(read, image)


@pytest.mark.parametrize("shape", [(1, 600), (2, 3000), (600, 1), (1, 40_000)], ids=str)
def test_thin_strips_with_ink_are_read_or_refused_as_files(predictor, shape):
    """The issue's strips, as PNG files: a file this long is also shrunk while it is opened."""
    for kind in ("bar", "ink", "dots", "noise"):
        data = encoded(Image.fromarray(pattern(kind, *shape)))
        assert outcome(predictor.predict, data) in ("read", "refused")
        assert outcome(predictor.predict_number, data) in ("read", "refused")


def test_the_command_line_answers_a_strip_in_one_line(untrained_run, tmp_path, capsys):
    path = tmp_path / "strip.png"
    Image.fromarray(pattern("bar", 2, 3000)).save(path)
    for extra in ([], ["--number"]):
        assert main(["predict", str(untrained_run), str(path), *extra]) in (0, 1)
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err and (out + err).strip()


@pytest.mark.parametrize("query", ["", "?number=1"])
@pytest.mark.parametrize("shape", [(1, 600), (2, 3000), (1, 1), (3000, 2)], ids=str)
def test_the_web_api_answers_a_strip_with_200_or_4xx(predictor, shape, query):
    client = TestClient(create_app(predictor))
    for kind in ("bar", "ink", "checkerboard"):
        data = encoded(Image.fromarray(pattern(kind, *shape)))
        r = client.post(f"/api/predict{query}", content=data, headers={"Content-Type": "image/png"})
        assert r.status_code == 200 or (r.status_code in (415, 422) and r.json()["detail"]), (kind, r.text)
