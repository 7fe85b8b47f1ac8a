"""Pixel grids as text, image grids and training curves as figures."""

from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from digitlearn.errors import DigitlearnError
from digitlearn.plots import (
    format_pixels,
    image_grid,
    plot_history,
    plot_loss,
    plot_pixels,
    plot_training,
    save_figure,
)


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
    assert list(metric_ax.get_lines()[0].get_xdata()) == [1, 2, 3] and metric_ax.get_xlabel() == "epochs done"
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
