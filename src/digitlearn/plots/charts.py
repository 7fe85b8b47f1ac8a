"""Ways to look at images: as a grid of numbers (the chapter's tensor slice) or as figures.

Figures are built with matplotlib's object API (no pyplot state, so nothing accumulates over
many calls), as InlineFigure: a Figure that Jupyter shows inline as a cell's value, without
`%matplotlib inline`, and that a script saves with `.savefig(path)` or `save_figure`.
"""

import io
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..errors import DigitlearnError
from ..files import atomic_path


class InlineFigure(Figure):
    """A Figure that shows itself in Jupyter: IPython asks a cell's value for `_repr_png_`.

    Once pyplot is imported with the inline backend, IPython registers its own PNG printer for
    every Figure, which then answers instead of `_repr_png_`: still one image, never two, and
    these figures are not pyplot's, so the backend does not show them again at the cell's end.
    """

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png")  # a canvas-less Figure renders PNG through FigureCanvasAgg
        return buf.getvalue()

    def __repr__(self) -> str:
        # the text shown where images are not: matplotlib's "<Figure size ...>" reads like a failure
        width, height = self.bbox.size
        return f"<{type(self).__name__} {width:.0f}x{height:.0f} px, {len(self.axes)} axes>"


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


def grid_columns(n: int, most: int = 6) -> int:
    """Columns for `n` panels: at least as many as rows, at most `most`, leaving the fewest empty
    cells in the last row (16 -> 4x4, 9 -> 3x3, 10 -> 5x2, 17 -> 6+6+5), the narrowest on a tie."""
    if n <= 1:
        return 1
    widest = min(n, most)
    narrowest = min(math.ceil(math.sqrt(n)), widest)
    return min(range(narrowest, widest + 1), key=lambda c: (math.ceil(n / c) * c - n, c))


def image_grid(
    images: torch.Tensor,
    titles: list[str] | None = None,
    ncols: int | None = None,
    cmap: str = "Greys",
    size: float = 1.6,
    fontsize: float = 9,
) -> Figure:
    """A figure with one panel per image (N, H, W), dark ink on light paper as in the book."""
    n = len(images)
    ncols = ncols or grid_columns(n, most=8)
    nrows = math.ceil(n / ncols)
    # room for the titles: a line of `fontsize` points in each panel's height
    title_room = 1 + 0.15 * fontsize / 9 if titles else 1
    fig = InlineFigure(figsize=(ncols * size, nrows * size * title_room), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).flatten()
    for k, ax in enumerate(axes):
        ax.set_axis_off()
        if k < n:
            img = images[k]
            vmax = 255 if img.dtype == torch.uint8 else 1.0
            ax.imshow(img.float().numpy(), cmap=cmap, vmin=0, vmax=vmax)
            if titles:
                ax.set_title(titles[k], fontsize=fontsize)
    return fig


def _pixels(img: Any) -> Any:
    """An image as an array matplotlib draws: (H, W) gray, or (H, W, 3|4) color. A Pillow image
    becomes RGB on white paper, so it looks as in an image viewer."""
    import numpy as np
    from PIL import Image

    if isinstance(img, Image.Image):
        return np.asarray(on_white(img))
    if isinstance(img, torch.Tensor):
        img = img.detach().cpu()
        img = img.float() if img.is_floating_point() else img  # numpy has no bfloat16
        if img.ndim == 3 and img.shape[0] in (1, 3, 4):  # channels first, as torch keeps them
            img = img.permute(1, 2, 0)
        img = img.numpy()
    a = np.asarray(img)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    return a.astype(np.float32) if a.dtype == bool else a


def on_white(img: Any) -> Any:
    """A Pillow image as RGB, any transparent parts laid on white paper: dropping the alpha
    channel instead would draw black ink on a transparent background as a black square."""
    from PIL import Image

    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")
    return img.convert("RGB")


def _white_level(a: Any) -> float | None:
    """The value drawn darkest: 255 for bytes, 1 for floats in 0-1 (`floats()`); None (the
    image's own range) for anything else, a normalized image say."""
    if a.dtype.kind == "u" and a.dtype.itemsize == 1:
        return 255
    return 1.0 if a.size and 0 <= a.min() <= a.max() <= 1 else None


def show_image(img: Any, title: str | None = None, ax: Axes | None = None, size: float = 2.5) -> Figure:
    """One image (a tensor, an array or a Pillow image) as fastai's `show_image` draws it: gray
    pixels as dark ink on light paper, as the book shows MNIST (high values dark), color as it
    is. On `ax` if given (its figure is returned), else on a new `size`-inch figure."""
    if ax is None:
        ax = InlineFigure(figsize=(size, size * (1.12 if title else 1)), layout="constrained").subplots()
    a = _pixels(img)
    if a.ndim == 3:
        ax.imshow(a)
    else:
        vmax = _white_level(a)
        ax.imshow(a, cmap="Greys", vmin=0 if vmax else None, vmax=vmax)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return ax.figure


def show_images(
    imgs: Sequence[Any] | torch.Tensor,
    titles: Sequence[str] | None = None,
    nrows: int | None = None,
    size: float = 2.0,
) -> Figure:
    """Several images (a list, or a tensor batch) in a grid of `nrows` rows, or as square as they
    fit, each drawn as `show_image` draws it and titled by `titles`."""
    n = len(imgs)
    if n == 0:
        raise DigitlearnError("show_images: no images to show")
    ncols = math.ceil(n / nrows) if nrows else math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    fig = InlineFigure(figsize=(ncols * size, nrows * size * (1.12 if titles else 1)), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).flatten()
    for k, ax in enumerate(axes):
        if k < n:
            show_image(imgs[k], titles[k] if titles else None, ax=ax)
        else:
            ax.set_axis_off()  # the empty end of the last row
    return fig


def png_bytes(fig: Figure, dpi: int = 100) -> bytes:
    """A figure as PNG bytes, at `dpi` (the report's pictures: 100)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


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


def _epochs_axis(ax: Axes, epochs: list[int]) -> None:
    """Epochs numbered from 0, as the printed epoch table and the history files number them."""
    ax.set_xlabel("epoch")
    if len(epochs) == 1:  # one tick: the locator would fill the axis with -0.4, -0.2...
        ax.set_xticks(epochs)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if epochs:
        ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)


def _one_point(ax: Axes, history: list[dict], metrics: list[str]) -> None:
    """One epoch draws one dot per metric: write each value beside its dot, and show a share
    (accuracy, say) from 0.9 or lower up to 1, not on an axis a hair around the dot."""
    values = [history[0][key] for key in metrics if history[0][key] is not None]
    for value in values:
        ax.annotate(f"{value:.4f}", (history[0]["epoch"], value), xytext=(8, 0),
                    textcoords="offset points", va="center", fontsize=9)  # fmt: skip
    if values and all(0 <= v <= 1 for v in values):
        ax.set_ylim(max(0.0, min(0.9, min(values) - 0.02)), 1.0)


def _metric_panel(ax: Axes, history: list[dict], metrics: list[str]) -> None:
    """Each validation metric after each epoch, its last value written in the corner."""
    epochs = [r["epoch"] for r in history]
    for key in metrics:
        ax.plot(epochs, [r[key] for r in history], "o-", markersize=3, label=key)
    if len(history) == 1:
        _one_point(ax, history, metrics)
    elif history and metrics:
        # Bottom right: accuracy curves rise, so that corner is empty and the label hides nothing.
        final = ", ".join(f"{history[-1][key]:.4f}" for key in metrics)
        ax.text(0.97, 0.04, f"final {final}", transform=ax.transAxes, ha="right", va="bottom", fontsize=9)
    ax.set_ylabel(f"{metrics[0]} (validation)" if len(metrics) == 1 else "metric (validation)")
    if len(metrics) > 1:
        ax.legend(fontsize=8)
    _epochs_axis(ax, epochs)


def plot_loss(recorder, skip_start: int = 5, with_valid: bool = True) -> Figure:
    """Training loss per batch, with the validation loss at the end of each epoch."""
    fig = InlineFigure(figsize=(6, 4), layout="constrained")
    _loss_panel(fig.subplots(), recorder.losses, recorder.history, skip_start, with_valid)
    return fig


def plot_history(history: list[dict], metrics: list[str], title: str = "") -> Figure:
    """Two panels per run: train and valid loss by epoch, and each metric by epoch."""
    fig = InlineFigure(figsize=(10, 4), layout="constrained")
    ax_loss, ax_metric = fig.subplots(1, 2)
    epochs = [r["epoch"] for r in history]
    for key in ("train_loss", "valid_loss"):
        ax_loss.plot(epochs, [r[key] for r in history], "o-", markersize=3, label=key)
    ax_loss.set_ylabel("loss")
    ax_loss.legend()
    _epochs_axis(ax_loss, epochs)
    _metric_panel(ax_metric, history, metrics)
    if title:
        fig.suptitle(title)
    return fig


def plot_training(losses: list[float], history: list[dict], metric: str, title: str = "") -> Figure:
    """Two panels: the training loss per batch with the validation loss after each epoch, and the
    validation metric after each epoch."""
    fig = InlineFigure(figsize=(10, 3.4), layout="constrained")
    ax_loss, ax_metric = fig.subplots(1, 2)
    _loss_panel(ax_loss, losses, history)
    _metric_panel(ax_metric, history, [metric])
    if title:
        fig.suptitle(title)
    return fig


def plot_lr_find(lrs: list[float], losses: list[float], suggestion: float | None = None) -> Figure:
    """Smoothed loss against learning rate on a log axis, the suggested rate marked."""
    fig = InlineFigure(figsize=(6, 4), layout="constrained")
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


def short_name(name: str, most: int = 20) -> str:
    """`name` in at most `most` characters: its start and its end (where a number or an
    extension usually tells files apart), an ellipsis between."""
    if len(name) <= most:
        return name
    tail = (most - 1) // 2
    return f"{name[: most - 1 - tail]}…{name[-tail:]}"


def plot_predicted(files: list, results: list) -> Figure:
    """`Predictor.predict_many`'s results for `files` (paths), each file above its prepared input,
    titled with the prediction ("no result" where the file could not be read or held no digit)."""
    import numpy as np
    from PIL import Image

    from ..vision.images import open_image, to_gray

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
        f"{short_name(Path(f).name)}\n" + (f"{r.label} ({r.probability:.2f})" if ok else "no result")
        for f, r, ok in zip(files, results, found, strict=True)
    ]
    inputs = [r.input if ok else None for r, ok in zip(results, found, strict=True)]
    return plot_predictions(originals, inputs, titles)


PANEL = 2.0  # inches: one image's panel in a grid of predictions (200 px at 100 dpi)
TITLE_PT = 9  # the smallest text that reads at 100 dpi


def plot_predictions(originals: list, inputs: list[torch.Tensor | None], titles: list[str]) -> Figure:
    """Each image as given above the 28x28 input the model saw and its prediction, in a grid of
    up to six such pairs a row.

    `originals` are Pillow images (or None where a file could not be read), transparent parts
    drawn on white; `inputs` are the prepared images, light ink on black as the model takes them
    (None where there was no digit).
    """
    n = len(titles)
    ncols = grid_columns(n)
    pairs = math.ceil(n / ncols)
    # each pair is two panels high, plus a two-line title above the image and one above the input
    fig = InlineFigure(figsize=(ncols * PANEL, pairs * 2 * PANEL * 1.15), layout="constrained")
    axes = fig.subplots(2 * pairs, ncols, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for k in range(n):
        row, col = divmod(k, ncols)
        top, bottom = axes[2 * row, col], axes[2 * row + 1, col]
        if originals[k] is not None:
            top.imshow(on_white(originals[k]))
        top.set_title(titles[k], fontsize=TITLE_PT)
        if inputs[k] is not None:
            bottom.imshow(inputs[k].numpy(), cmap="gray", vmin=0, vmax=1)
            h, w = inputs[k].shape
            bottom.set_title(f"model input ({h}x{w})", fontsize=TITLE_PT)
    return fig


def plot_pixels(image: torch.Tensor, rows: slice, cols: slice, title: str = "") -> Figure:
    """A window of an image as shaded cells with their values written in (the chapter's
    DataFrame with a background gradient)."""
    window = image[rows, cols]
    h, w = window.shape
    row_ids, col_ids = range(image.shape[0])[rows], range(image.shape[1])[cols]
    fig = InlineFigure(figsize=(0.42 * w + 1.0, 0.42 * h + 0.8), layout="constrained")
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
    fig = InlineFigure(figsize=(4.0 * len(panels), 3.2), layout="constrained")
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
    fig = InlineFigure(figsize=(3.2 * len(fits), 3.0), layout="constrained")
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
    fig = InlineFigure(figsize=(5, 3.2), layout="constrained")
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
