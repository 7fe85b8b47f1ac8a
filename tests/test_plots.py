"""Pixel grids as text, image grids and training curves as figures."""

import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from digitlearn.errors import DigitlearnError
from digitlearn.plots.charts import (
    InlineFigure,
    format_pixels,
    image_grid,
    plot_curve,
    plot_fits,
    plot_functions,
    plot_history,
    plot_loss,
    plot_lr_find,
    plot_pixels,
    plot_predictions,
    plot_training,
    save_figure,
    show_image,
    show_images,
)

from .kernel import kernel  # noqa: F401 (the fixture)


def test_format_pixels_slice_with_indices():
    img = torch.arange(36, dtype=torch.uint8).reshape(6, 6) * 7
    text = format_pixels(img, slice(1, 3), slice(4, None))
    assert text.splitlines() == ["       4   5", "  1   70  77", "  2  112 119"]
    assert len(format_pixels(img).splitlines()) == 7


def test_image_grid_saves_png(tmp_path):
    fig = image_grid(torch.randint(0, 255, (5, 8, 8), dtype=torch.uint8), list("abcde"), ncols=3)
    path = save_figure(fig, tmp_path / "sub" / "grid.png")
    with Image.open(path) as im:
        assert im.format == "PNG" and im.width > im.height
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["grid.png"]


def test_unsupported_format_writes_nothing(tmp_path):
    with pytest.raises(DigitlearnError, match=r"grid\.xyz: unsupported figure format '\.xyz'"):
        save_figure(image_grid(torch.zeros(1, 4, 4)), tmp_path / "grid.xyz")
    assert list(tmp_path.iterdir()) == []


HISTORY = [{"epoch": e, "train_loss": 1 / (e + 1), "valid_loss": 1 / (e + 2), "accuracy": 0.9 + e / 100}
           for e in range(3)]  # fmt: skip


def texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


def test_training_curves_share_their_panels():
    losses = [1.0 / (k + 1) for k in range(12)]  # 4 batches an epoch
    loss_ax, metric_ax = plot_training(losses, HISTORY, "accuracy", "a run").axes
    train, valid = loss_ax.get_lines()
    assert len(train.get_xdata()) == 12 and list(valid.get_xdata()) == [3, 7, 11]  # each epoch's last batch
    assert list(metric_ax.get_lines()[0].get_xdata()) == [0, 1, 2] and metric_ax.get_xlabel() == "epoch"
    assert texts(metric_ax) == ["final 0.9200"] and metric_ax.get_ylabel() == "accuracy (validation)"
    _, both = plot_history(HISTORY, ["accuracy", "valid_loss"]).axes
    assert texts(both) == ["final 0.9200, 0.2500"] and both.get_legend() is not None

    (ax,) = plot_loss(SimpleNamespace(losses=losses, history=HISTORY), skip_start=5).axes
    assert len(ax.get_lines()[0].get_xdata()) == 7


def test_pixel_window_writes_each_value():
    img = torch.arange(100, dtype=torch.uint8).reshape(10, 10)
    (ax,) = plot_pixels(img, slice(2, 4), slice(5, 8)).axes
    assert texts(ax) == ["25", "26", "27", "35", "36", "37"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["5", "6", "7"]


PNG = b"\x89PNG\r\n\x1a\n"


def every_plot() -> list:
    """A figure from each plotting function."""
    recorder = SimpleNamespace(losses=[1.0, 0.5, 0.25], history=HISTORY[:1])
    img = torch.arange(16, dtype=torch.uint8).reshape(4, 4)
    return [
        image_grid(img[None]),
        plot_loss(recorder, skip_start=0),
        plot_history(HISTORY, ["accuracy"]),
        plot_training([1.0, 0.5, 0.25], HISTORY, "accuracy"),
        plot_lr_find([1e-3, 1e-2, 1e-1], [1.0, 0.5, 2.0], suggestion=1e-2),
        plot_predictions([Image.new("L", (8, 8))], [torch.zeros(4, 4)], ["7"]),
        plot_pixels(img, slice(0, 2), slice(0, 2)),
        plot_functions([("relu", torch.relu, -1.0, 1.0)]),
        plot_fits(torch.arange(3.0), torch.arange(3.0), [("step 0", torch.zeros(3))]),
        plot_curve([3.0, 2.0, 1.0], "step", "loss"),
        show_image(img),
        show_images([img, img]),
    ]


def test_every_figure_shows_itself_as_png():
    for fig in every_plot():
        assert isinstance(fig, InlineFigure)
        assert fig._repr_png_().startswith(PNG)  # what Jupyter shows as the cell's value
        assert re.fullmatch(r"<InlineFigure \d+x\d+ px, \d+ axes>", repr(fig))  # not "<Figure size ..."


def test_show_image_draws_like_the_book():
    (ax,) = show_image(torch.full((28, 28), 255, dtype=torch.uint8), title="a 3").axes
    (drawn,) = ax.get_images()
    assert drawn.get_cmap().name == "Greys" and drawn.get_clim() == (0, 255) and ax.get_title() == "a 3"
    floats = show_image(torch.rand(1, 5, 5)).axes[0].get_images()[0]  # channels first: one channel
    assert floats.get_array().shape == (5, 5) and floats.get_clim() == (0, 1)
    normalized = show_image(np.array([[-1.0, 2.0]])).axes[0].get_images()[0]
    assert normalized.get_clim() == (-1.0, 2.0)  # outside 0-1: the image's own range
    color = show_image(torch.rand(3, 5, 6)).axes[0].get_images()[0]
    assert color.get_array().shape == (5, 6, 3)
    pil = show_image(Image.new("L", (6, 5), 255)).axes[0].get_images()[0]
    assert pil.get_array().shape == (5, 6, 3)  # a Pillow image as it looks: white paper stays white


def test_show_image_on_given_axes():
    fig = InlineFigure()
    ax1, ax2 = fig.subplots(1, 2)
    assert show_image(torch.zeros(4, 4), "left", ax=ax1) is fig and ax1.get_title() == "left"
    assert not ax2.get_images()


def test_show_images_grid():
    def visible(fig) -> list:
        return [ax for ax in fig.axes if ax.get_images()]

    imgs = torch.zeros(5, 4, 4)
    fig = show_images(imgs, titles=list("abcde"))
    assert len(fig.axes) == 6 and len(visible(fig)) == 5  # as square as they fit: 2 rows of 3
    assert [ax.get_title() for ax in visible(fig)] == list("abcde")
    row = show_images(list(imgs), nrows=1)
    assert len(row.axes) == 5 and {ax.get_subplotspec().rowspan.start for ax in row.axes} == {0}
    with pytest.raises(DigitlearnError, match="no images"):
        show_images([])


SETUP = "import sys\nimport torch\nfrom digitlearn.plots import charts as plots"
CURVE = "plots.plot_curve([3.0, 2.0, 1.0], 'step', 'loss')"


def only_an_image(outputs) -> bool:
    """One output, the cell's value, shown as a PNG."""
    return [(o.type, "image/png" in o.data) for o in outputs] == [("execute_result", True)]


def test_jupyter_shows_figures_without_pyplot(kernel):  # noqa: F811 (the fixture imported above)
    kernel.run(SETUP)
    assert only_an_image(kernel.run(CURVE))
    assert only_an_image(kernel.run("plots.show_image(torch.zeros(28, 28))"))
    assert kernel.run(f"fig = {CURVE}") == []  # not the cell's value: not shown
    many = kernel.run(f"for _ in range(30):\n    {CURVE}\n'matplotlib.pyplot' in sys.modules")
    assert many[0].data["text/plain"] == "False"  # nothing went through pyplot


def test_jupyter_shows_each_figure_once_with_pyplot_inline(kernel):  # noqa: F811
    kernel.run(f"{SETUP}\n%matplotlib inline\nimport matplotlib.pyplot as plt")
    # with the inline backend IPython draws Figures itself, and shows pyplot's figures at the end
    assert only_an_image(kernel.run(CURVE))
    assert kernel.run(f"fig = {CURVE}") == []
    many = kernel.run(f"for _ in range(30):\n    {CURVE}\nplt.get_fignums()")
    assert many[0].data["text/plain"] == "[]"  # no figure left open in pyplot
