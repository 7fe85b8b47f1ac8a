"""Shared fixtures: an isolated cache home, synthetic datasets, and the real MNIST mirror."""

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

MIRROR_REASON = (
    "DIGITLEARN_MIRROR is not set: tests on the real MNIST data read it from a local "
    "mirror folder (CI uses ../shared/datasets)"
)


def pytest_configure(config: pytest.Config) -> None:
    # Every test run gets its own cache home, so nothing depends on (or pollutes) ~/.cache.
    config._digitlearn_home = tempfile.mkdtemp(prefix="digitlearn-test-home-")
    os.environ["DIGITLEARN_HOME"] = config._digitlearn_home
    if hasattr(config, "workerinput"):
        # one of pytest-xdist's workers (`make test` starts one per core): one thread each, and
        # for the programs it starts, or the workers' threads outnumber the cores and OpenMP's
        # waiting threads slow every one of them many times over
        import torch

        torch.set_num_threads(1)
        os.environ["OMP_NUM_THREADS"] = os.environ["DIGITLEARN_THREADS"] = "1"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # tests on the real data are marked, so `pytest -m "not mnist"` runs the rest quickly
    for item in items:
        if {"mirror", "sample", "mnist"} & set(getattr(item, "fixturenames", ())):
            item.add_marker("mnist")


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(getattr(config, "_digitlearn_home", ""), ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def workers_in_process_under_mutation():
    """Under mutation testing (mutmut sets MUTANT_UNDER_TEST; docs/architecture.md, "Testing"),
    the server's image work runs in the test process, as a worker runs it: the call and its answer
    pickled. mutmut sees only this process, so a worker's code would go untested; and it forks a
    process per mutant, which cannot use a fork server its parent started (os.waitpid fails)."""
    if "MUTANT_UNDER_TEST" not in os.environ:
        yield
        return
    import pickle

    from digitlearn.inference import serve

    class WorkersInProcess:
        """`Workers`' public face, its work done here: the processes' count kept as theirs is."""

        def __init__(self, count: int, preload=()) -> None:
            self.count, self.preload, self.running = count, list(preload), 0

        def start(self) -> None:
            self.running = self.count

        async def run(self, fn, *args):
            self.running = self.running or 1  # a first call starts a worker when none has been
            fn, args = pickle.loads(pickle.dumps((fn, args)))
            return pickle.loads(pickle.dumps(fn(*args)))

        def close(self) -> None:
            self.running = 0

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(serve, "Workers", WorkersInProcess)
        yield


@pytest.fixture
def fresh_home(tmp_path, monkeypatch) -> Path:
    """An empty cache home for tests that watch what gets written there."""
    home = tmp_path / "home"
    monkeypatch.setenv("DIGITLEARN_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def mirror() -> Path:
    if not os.environ.get("DIGITLEARN_MIRROR"):
        pytest.skip(MIRROR_REASON)
    return Path(os.environ["DIGITLEARN_MIRROR"])


@pytest.fixture(scope="session")
def sample(mirror):
    from digitlearn import load_dataset

    return load_dataset("mnist_sample")


@pytest.fixture(scope="session")
def mnist(mirror):
    from digitlearn import load_dataset

    return load_dataset("mnist")


def digit_image(value: int, size: int = 8, seed: int = 0) -> np.ndarray:
    """A small uint8 image whose pixels identify it: a `value` block on random noise."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 30, (size, size), dtype=np.uint8)
    a[2:-2, 2:-2] = value
    return a


def make_folder(root: Path, layout=("train", "valid"), classes=("3", "7"), n: int = 3, size: int = 8) -> Path:
    """A fastai-layout dataset of PNGs: pixel value 40*(class index + 1), noise per image."""
    for split in layout:
        for ci, c in enumerate(classes):
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for k in range(n):
                Image.fromarray(digit_image(40 * (ci + 1), size, seed=k)).save(d / f"{k}.png")
    return root


def toy_dls(n: int = 256, d: int = 8, bs: int = 32, n_classes: int = 2, seed: int = 0, shuffle: bool = False):
    """Separable synthetic data: the class is the argmax of a fixed linear map of the inputs."""
    import torch

    from digitlearn import DataLoader, DataLoaders

    g = torch.Generator().manual_seed(seed)
    w = torch.randn(d, n_classes, generator=g)
    x = torch.randn(n, d, generator=g)
    y = (x @ w).argmax(1)
    split = n * 3 // 4
    return DataLoaders(
        DataLoader(x[:split], y[:split], bs=bs, shuffle=shuffle),
        DataLoader(x[split:], y[split:], bs=bs),
        classes=[f"c{i}" for i in range(n_classes)],
    )


@pytest.fixture(scope="session")
def fast_run(mnist, tmp_path_factory) -> Path:
    """The run folder a user gets from `digitlearn train --data mnist --recipe fast` (seed 42).

    Trained by the command's `main` in this process: a child process would import torch and read
    MNIST again, and tests/test_cli.py runs the command as a program where that is the point."""
    import contextlib
    import io

    from digitlearn.cli import main

    out = tmp_path_factory.mktemp("runs") / "mnist-fast"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main(["train", "--data", "mnist", "--recipe", "fast", "--out", str(out)])
    assert status == 0, printed.getvalue()
    return out


def save_untrained(path: Path, classes=tuple("0123456789"), loss: str = "cross_entropy") -> Path:
    """A run folder with a freshly initialised CNN: for testing the plumbing around a model
    (loading, serving, errors) without training one."""
    import torch

    from digitlearn.models import cnn
    from digitlearn.models.saved import save_model

    torch.manual_seed(0)
    n_out = 1 if loss == "mnist_loss" else len(classes)
    model = cnn(n_out=n_out)
    config = {
        "model": model.config,
        "classes": list(classes),
        "input": {"height": 28, "width": 28, "flat": False, "mean": 0.1307, "std": 0.3081},
        "loss": {"name": loss},
    }
    return save_model(path, model, config)


@pytest.fixture(scope="session")
def untrained_run(tmp_path_factory) -> Path:
    return save_untrained(tmp_path_factory.mktemp("runs") / "untrained")


def encoded(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    """An image's file contents in `fmt`, in memory."""
    import io

    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def draw_digit(
    text: str = "7",
    size: tuple[int, int] = (200, 160),
    ink: int | tuple = 20,
    paper: int | tuple = 235,
    mode: str = "L",
    font_size: int = 120,
    at: tuple[int, int] | None = None,
) -> Image.Image:
    """A digit drawn with a font matplotlib ships, `ink` on `paper`, centred (or its centre `at`)."""
    from PIL import ImageDraw, ImageFont

    from tests.font_digits import FONT_DIR

    img = Image.new(mode, size, paper)
    font = ImageFont.truetype(str(FONT_DIR / "DejaVuSans.ttf"), font_size)
    where = at or (size[0] // 2, size[1] // 2)
    ImageDraw.Draw(img).text(where, text, font=font, fill=ink, anchor="mm")
    return img
