"""Ways to look at images: as a grid of numbers (the chapter's tensor slice) or as figures.

Figures are built with matplotlib's object API (no pyplot state), so this works the same
in a script, a test and a notebook, where a returned Figure displays itself.
"""

import math
from collections.abc import Callable
from pathlib import Path

import torch
from matplotlib.axes import Axes
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


def _loss_panel(ax: Axes, losses: list[float], history: list[dict], skip_start: int = 0,
                with_valid: bool = True) -> None:  # fmt: skip
    """Training loss per batch, with the validation loss at the end of each epoch."""
    ax.plot(range(skip_start, len(losses)), losses[skip_start:], lw=0.8, label="train (per batch)")
    if with_valid and history and losses:
        per_epoch = len(losses) / len(history)
        ends = [per_epoch * (i + 1) - 1 for i in range(len(history))]
        ax.plot(ends, [r["valid_loss"] for r in history], "o-", markersize=3, label="valid (per epoch)")
    ax.set_xlabel("batch")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)


def _epochs_axis(ax: Axes, n: int) -> None:
    ax.set_xlabel("epochs done")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if n:
        ax.set_xlim(0.5, n + 0.5)


def _metric_panel(ax: Axes, history: list[dict], metrics: list[str]) -> None:
    """Each validation metric after each epoch, its last value written in the corner."""
    epochs = [r["epoch"] + 1 for r in history]
    for key in metrics:
        ax.plot(epochs, [r[key] for r in history], "o-", markersize=3, label=key)
    if history and metrics:
        # Bottom right: accuracy curves rise, so that corner is empty and the label hides nothing.
        final = ", ".join(f"{history[-1][key]:.4f}" for key in metrics)
        ax.text(0.97, 0.04, f"final {final}", transform=ax.transAxes, ha="right", va="bottom", fontsize=9)
    ax.set_ylabel(f"{metrics[0]} (validation)" if len(metrics) == 1 else "metric (validation)")
    if len(metrics) > 1:
        ax.legend(fontsize=8)
    _epochs_axis(ax, len(history))


def plot_loss(recorder, skip_start: int = 5, with_valid: bool = True) -> Figure:
    """Training loss per batch, with the validation loss at the end of each epoch."""
    fig = Figure(figsize=(6, 4), layout="constrained")
    _loss_panel(fig.subplots(), recorder.losses, recorder.history, skip_start, with_valid)
    return fig


def plot_history(history: list[dict], metrics: list[str], title: str = "") -> Figure:
    """Two panels per run: train and valid loss by epoch, and each metric by epoch."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_loss, ax_metric = fig.subplots(1, 2)
    for key in ("train_loss", "valid_loss"):
        ax_loss.plot(
            [r["epoch"] + 1 for r in history], [r[key] for r in history], "o-", markersize=3, label=key
        )
    ax_loss.set_ylabel("loss")
    ax_loss.legend()
    _epochs_axis(ax_loss, len(history))
    _metric_panel(ax_metric, history, metrics)
    if title:
        fig.suptitle(title)
    return fig


def plot_training(losses: list[float], history: list[dict], metric: str, title: str = "") -> Figure:
    """Two panels: the training loss per batch with the validation loss after each epoch, and the
    validation metric after each epoch."""
    fig = Figure(figsize=(10, 3.4), layout="constrained")
    ax_loss, ax_metric = fig.subplots(1, 2)
    _loss_panel(ax_loss, losses, history)
    _metric_panel(ax_metric, history, [metric])
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


def plot_predicted(files: list, results: list) -> Figure:
    """`Predictor.predict_many`'s results for `files` (paths), each file above its prepared input,
    titled with the prediction ("no result" where the file could not be read or held no digit)."""
    import numpy as np
    from PIL import Image

    from .images import open_image, to_gray

    viewable = ("1", "L", "LA", "P", "PA", "RGB", "RGBA")  # Pillow modes matplotlib draws as they are
    originals = []
    for file in files:
        try:
            img = open_image(file)
        except DigitlearnError:
            originals.append(None)
            continue
        # 16-bit and float images have no RGB view of their own: show their gray levels
        originals.append(img if img.mode in viewable else Image.fromarray(np.uint8(255 * to_gray(img))))
    found = [not isinstance(r, DigitlearnError) for r in results]
    titles = [
        f"{Path(f).name}\n" + (f"{r.label} ({r.probability:.2f})" if ok else "no result")
        for f, r, ok in zip(files, results, found, strict=True)
    ]
    inputs = [r.input if ok else None for r, ok in zip(results, found, strict=True)]
    return plot_predictions(originals, inputs, titles)


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


def plot_pixels(image: torch.Tensor, rows: slice, cols: slice, title: str = "") -> Figure:
    """A window of an image as shaded cells with their values written in (the chapter's
    DataFrame with a background gradient)."""
    window = image[rows, cols]
    h, w = window.shape
    row_ids, col_ids = range(image.shape[0])[rows], range(image.shape[1])[cols]
    fig = Figure(figsize=(0.42 * w + 1.0, 0.42 * h + 0.8), layout="constrained")
    ax = fig.subplots()
    ax.imshow(window.numpy(), cmap="Greys", vmin=0, vmax=255)
    for i in range(h):
        for j in range(w):
            v = int(window[i, j])
            ax.text(j, i, str(v), ha="center", va="center", fontsize=6.5,
                    color="white" if v > 127 else "black")  # fmt: skip
    ax.set_xticks(range(w), col_ids, fontsize=7)
    ax.set_yticks(range(h), row_ids, fontsize=7)
    ax.tick_params(length=0)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def plot_functions(panels: list[tuple[str, Callable[[torch.Tensor], torch.Tensor], float, float]]) -> Figure:
    """One panel per (title, function, low, high): the function drawn from low to high."""
    fig = Figure(figsize=(4.0 * len(panels), 3.2), layout="constrained")
    for ax, (title, fn, lo, hi) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels, strict=True):
        x = torch.linspace(lo, hi, 200)
        ax.plot(x.numpy(), fn(x).numpy())
        ax.axhline(0, color="grey", lw=0.5)
        ax.axvline(0, color="grey", lw=0.5)
        ax.set_title(title)
        ax.set_xlabel("x")
    return fig


def plot_fits(x: torch.Tensor, y: torch.Tensor, fits: list[tuple[str, torch.Tensor]]) -> Figure:
    """The measurements (x, y) as dots, once per (title, predictions) panel, with the predictions
    drawn over them: how a fit improves from step to step."""
    fig = Figure(figsize=(3.2 * len(fits), 3.0), layout="constrained")
    axes = fig.subplots(1, len(fits), squeeze=False, sharey=True)[0]
    for ax, (title, preds) in zip(axes, fits, strict=True):
        ax.scatter(x.numpy(), y.numpy(), s=12, label="measured")
        ax.plot(x.numpy(), preds.numpy(), color="red", label="model")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("time")
    axes[0].set_ylabel("speed")
    axes[0].legend(fontsize=8)
    return fig


def plot_curve(values: list[float], xlabel: str, ylabel: str, title: str = "", log: bool = False) -> Figure:
    """One curve of values by step (a loss falling, say), optionally on a log scale."""
    fig = Figure(figsize=(5, 3.2), layout="constrained")
    ax = fig.subplots()
    ax.plot(range(len(values)), values, "o-", markersize=3)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        ax.set_title(title)
    return fig
