"""Ways to look at images: as a grid of numbers (the chapter's tensor slice) or as figures.

Figures are built with matplotlib's object API (no pyplot state), so this works the same
in a script, a test and a notebook, where a returned Figure displays itself.
"""

import math
from pathlib import Path

import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

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


def plot_loss(recorder, skip_start: int = 5, with_valid: bool = True) -> Figure:
    """Training loss per batch, with the validation loss at the end of each epoch."""
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    losses = recorder.losses
    ax.plot(range(skip_start, len(losses)), losses[skip_start:], label="train (per batch)")
    rows = recorder.history
    if with_valid and rows and losses:
        per_epoch = len(losses) / len(rows)
        ax.plot(
            [per_epoch * (i + 1) - 1 for i in range(len(rows))],
            [r["valid_loss"] for r in rows],
            "o-",
            label="valid",
        )
    ax.set_xlabel("batch")
    ax.set_ylabel("loss")
    ax.legend()
    return fig


def plot_history(history: list[dict], metrics: list[str], title: str = "") -> Figure:
    """Two panels per run: train and valid loss by epoch, and each metric by epoch."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_loss, ax_metric = fig.subplots(1, 2)
    epochs = [r["epoch"] for r in history]
    for key in ("train_loss", "valid_loss"):
        ax_loss.plot(epochs, [r[key] for r in history], "o-", markersize=3, label=key)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.legend()
    for key in metrics:
        ax_metric.plot(epochs, [r[key] for r in history], "o-", markersize=3, label=key)
    ax_metric.set_xlabel("epoch")
    ax_metric.set_ylabel("metric (validation set)")
    for ax in (ax_loss, ax_metric):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if metrics:
        ax_metric.legend()
    if title:
        fig.suptitle(title)
    return fig


def plot_lr_find(lrs: list[float], losses: list[float], suggestion: float | None = None) -> Figure:
    """Smoothed loss against learning rate on a log axis, the suggested rate marked."""
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    ax.plot(lrs, losses)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("loss (smoothed)")
    if suggestion is not None:
        k = min(range(len(lrs)), key=lambda i: abs(math.log(lrs[i] / suggestion)))
        ax.plot(lrs[k], losses[k], "ro", label=f"suggestion {suggestion:.2g}")
        ax.legend()
    return fig


def plot_predictions(originals: list, inputs: list[torch.Tensor | None], titles: list[str]) -> Figure:
    """Each image as given (top row) above the 28x28 input the model saw and its prediction.

    `originals` are Pillow images (or None where a file could not be read); `inputs` are the
    prepared images, light ink on black as the model takes them (None where there was no digit).
    """
    n = len(titles)
    fig = Figure(figsize=(max(2.2 * n, 3.0), 5.0), layout="constrained")
    axes = fig.subplots(2, n, squeeze=False)
    for k in range(n):
        top, bottom = axes[0, k], axes[1, k]
        top.set_axis_off()
        bottom.set_axis_off()
        if originals[k] is not None:
            top.imshow(originals[k].convert("RGB"))
        top.set_title(titles[k], fontsize=9)
        if inputs[k] is not None:
            bottom.imshow(inputs[k].numpy(), cmap="gray", vmin=0, vmax=1)
            h, w = inputs[k].shape
            bottom.set_title(f"model input ({h}x{w})", fontsize=8)
    return fig
