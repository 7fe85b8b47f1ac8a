"""Pixel grids as text and image grids as figures."""

import pytest
import torch
from PIL import Image

from digitlearn.errors import DigitlearnError
from digitlearn.plots import format_pixels, image_grid, save_figure


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
