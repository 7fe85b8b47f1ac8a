"""Ways to look at images: as a grid of numbers (the chapter's tensor slice) or as figures.

Figures are built with matplotlib's object API (no pyplot state), so this works the same
in a script, a test and a notebook, where a returned Figure displays itself.
"""

import math
from pathlib import Path

import torch
from matplotlib.figure import Figure

from .errors import DigitlearnError
from .files import atomic_path


def format_pixels(image: torch.Tensor, rows: slice = slice(None), cols: slice = slice(None)) -> str:
    """An image's pixel values as an aligned grid with row and column indices."""
    h, w = image.shape[-2:]
    cells = [[str(v) for v in row] for row in image[rows, cols].tolist()]
    row_ids, col_ids = range(h)[rows], range(w)[cols]
    width = 1 + max([3, *(len(str(j)) for j in col_ids), *(len(v) for row in cells for v in row)])
    lines = [" " * 4 + "".join(f"{j:>{width}}" for j in col_ids)]
    lines += [
        f"{i:>3} " + "".join(f"{v:>{width}}" for v in row) for i, row in zip(row_ids, cells, strict=True)
    ]
    return "\n".join(lines)


def image_grid(
    images: torch.Tensor,
    titles: list[str] | None = None,
    ncols: int | None = None,
    cmap: str = "Greys",
    size: float = 1.6,
) -> Figure:
    """A figure with one panel per image (N, H, W), dark ink on light paper as in the book."""
    n = len(images)
    ncols = ncols or min(n, 8)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(ncols * size, nrows * size * (1.15 if titles else 1)), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).flatten()
    for k, ax in enumerate(axes):
        ax.set_axis_off()
        if k < n:
            img = images[k]
            vmax = 255 if img.dtype == torch.uint8 else 1.0
            ax.imshow(img.float().numpy(), cmap=cmap, vmin=0, vmax=vmax)
            if titles:
                ax.set_title(titles[k], fontsize=9)
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Save a figure atomically; the format comes from the file's extension."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in fig.canvas.get_supported_filetypes():
        raise DigitlearnError(
            f"{path}: unsupported figure format {path.suffix or '(none)'!r} (use .png, .svg or .pdf)"
        )
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi)
    return path
