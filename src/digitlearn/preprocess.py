"""People's digit images, prepared the way MNIST's were.

MNIST digits are light ink on black, scaled to fit a 20x20 box (keeping their aspect ratio,
anti-aliased) and placed in 28x28 with their centre of mass at the centre. A photo or a drawing
is none of that, and a model trained on MNIST sees only what it was trained on, so `to_mnist`
rebuilds those conditions step by step:

  read (any mode, alpha flattened) -> grayscale in [0, 1] -> at most WORK_SIZE pixels a side
  -> polarity (dark ink on light paper is inverted) -> paper shading and noise removed
  -> specks dropped -> thin strokes thickened -> crop to the ink -> fit 20x20 -> centre of mass
  at (14, 14) in 28x28.
"""

import os

import numpy as np
import torch
from PIL import Image

from . import images
from .errors import DigitlearnError
from .images import ImageError

WORK_SIZE = 256  # pixels on the longer side; a digit needs no more to be read, and it bounds the time
BOX, SIZE = 20, 28  # MNIST: fitted into 20x20, placed in 28x28
CENTRE = 14.0  # MNIST's mean centre of mass, in pixel indices, is (14.0, 14.0) to 0.01
STROKE = 2.0  # thinnest stroke, in 28x28 pixels, MNIST's digits have about 2 to 3

ImageSource = str | os.PathLike | bytes | Image.Image | np.ndarray | torch.Tensor
# scipy.ndimage is imported in the functions that use it: it takes a few tenths of a second, and only
# preparing an image needs it, not loading a model or `import digitlearn`


class NoDigitError(DigitlearnError):
    """An image with nothing that looks like ink on it."""


def read_gray(source: ImageSource) -> np.ndarray:
    """An image from a path, bytes, a Pillow image, or an array/tensor (H x W, uint8 or float in [0, 1])."""
    if isinstance(source, str | os.PathLike | bytes):
        return images.read_gray(source)
    if isinstance(source, Image.Image):
        return images.to_gray(source)
    a = source.detach().cpu().numpy() if isinstance(source, torch.Tensor) else np.asarray(source)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2 or a.size == 0:
        raise ImageError(f"an image array must be H x W, not {tuple(a.shape)}")
    return (a / 255 if a.dtype == np.uint8 else np.clip(a, 0, 1)).astype(np.float32)


def _resize(a: np.ndarray, height: int, width: int) -> np.ndarray:
    """Anti-aliased resize of a float image (Pillow's Lanczos filter, which widens when shrinking)."""
    img = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32), mode="F")
    # reducing_gap: large shrinks go by whole factors with a box filter first, then Lanczos
    return np.clip(np.asarray(img.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0)), 0, 1)


def _shrink(a: np.ndarray, size: int = WORK_SIZE) -> np.ndarray:
    h, w = a.shape
    if max(h, w) <= size:
        return a
    k = size / max(h, w)
    return _resize(a, max(1, round(h * k)), max(1, round(w * k)))


def _quadratic_basis(h: int, w: int, step: int = 1) -> np.ndarray:
    """(pixels, 6): 1, x, y, x^2, xy, y^2 at every `step`-th pixel of h x w, x and y in [-0.5, 0.5]."""
    yy, xx = np.mgrid[0:h:step, 0:w:step].astype(np.float32)
    yy, xx = yy / max(h - 1, 1) - 0.5, xx / max(w - 1, 1) - 0.5
    return np.stack([np.ones_like(xx), xx, yy, xx * xx, xx * yy, yy * yy], -1).reshape(-1, 6)


def _background(a: np.ndarray, rounds: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """The paper (the darker side of `a`), as a smooth quadratic surface fitted to the pixels
    that are not ink, and the mask of those pixels.

    A quadratic follows lighting gradients and vignetting but cannot follow a stroke, however
    wide, which a morphological background estimate (an opening) would eat into. Six numbers
    need few pixels: the fit uses a grid of about 4,000, and the surface is then drawn everywhere.
    """
    h, w = a.shape
    step = max(1, int(np.sqrt(h * w / 4096)))
    basis, values = _quadratic_basis(h, w, step), a[::step, ::step].reshape(-1)
    paper = values <= np.median(values)  # ink is the minority: start from the darker half
    for _ in range(rounds):
        coef, *_ = np.linalg.lstsq(basis[paper], values[paper], rcond=None)
        resid = values - basis @ coef
        noise = 1.4826 * float(np.median(np.abs(resid[paper] - np.median(resid[paper])))) + 1e-3
        paper = resid < 3 * noise
    surface = (_quadratic_basis(h, w) @ coef).reshape(h, w)
    return surface, a - surface < 3 * noise


def _stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width of a binary drawing: area over half the outline (a stroke of length L and
    width W has area L*W and an outline of about 2L)."""
    from scipy import ndimage

    outline = mask & ~ndimage.binary_erosion(mask)
    return 2.0 * mask.sum() / max(outline.sum(), 1)


def _disk(radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    return (r[:, None] ** 2 + r[None, :] ** 2) <= radius**2 + radius


def _clean(a: np.ndarray, name: str) -> np.ndarray:
    """`clean` on one grayscale array."""
    from scipy import ndimage

    # light smoothing (about one pixel at the working size) spreads single noisy pixels thin
    a = ndimage.gaussian_filter(a, sigma=0.6 * max(a.shape) / WORK_SIZE)
    # polarity: the border is mostly paper, and the ink is what lies furthest from it, on
    # whichever side (extremes, not percentiles: a small digit may be under 1% of the pixels)
    m = max(1, round(0.05 * min(a.shape)))
    border = np.concatenate([a[:m].ravel(), a[-m:].ravel(), a[:, :m].ravel(), a[:, -m:].ravel()])
    paper = float(np.median(border))
    darker, lighter = paper - float(a.min()), float(a.max()) - paper
    if max(darker, lighter) < 0.05:
        raise NoDigitError(f"no digit found in {name}: the image is one flat shade")
    inverted = darker > lighter
    if inverted:
        a = 1 - a
    surface, is_paper = _background(a)
    ink = a - surface
    if inverted:
        # light falls on paper and ink alike: in shadow the ink is as dark but the paper is not as
        # light, so divide by the paper's brightness to read the same stroke in light and shadow
        ink = ink / np.clip(1 - surface, 0.1, None)
    noise = 1.4826 * float(np.median(np.abs(ink[is_paper] - np.median(ink[is_paper])))) + 1e-3
    top = float(np.percentile(ink, 99.5))
    floor = max(4 * noise, 0.2 * top)
    if top < 0.08 or top < 8 * noise:
        raise NoDigitError(f"no digit found in {name}: nothing stands out from the background")
    ink = np.clip((ink - floor) / (top - floor), 0, 1)
    # specks: keep the strokes, i.e. every connected blob at least a tenth the size of the largest
    labels, n = ndimage.label(ink > 0.3, structure=np.ones((3, 3)))
    if n == 0:
        raise NoDigitError(f"no digit found in {name}")
    sizes = np.bincount(labels.ravel())[1:]
    keep = np.isin(labels, 1 + np.flatnonzero(sizes >= 0.1 * sizes.max()))
    return ink * ndimage.binary_dilation(keep, iterations=2)  # with their soft edges


def _ink_box(ink: np.ndarray) -> tuple[slice, slice]:
    rows, cols = np.flatnonzero((ink > 0.3).any(1)), np.flatnonzero((ink > 0.3).any(0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def clean(source: ImageSource) -> np.ndarray:
    """The image as light ink on a black background in [0, 1], at most WORK_SIZE a side, with
    paper shading, noise and small specks removed. Raises NoDigitError when no ink is left."""
    name = images.describe(source)
    full = read_gray(source)
    ink = _clean(_shrink(full), name)
    rows, cols = _ink_box(ink)
    k = max(full.shape) / max(ink.shape)  # how much the image was shrunk
    if k > 1 and max(rows.stop - rows.start, cols.stop - cols.start) < WORK_SIZE / 4:
        # a small digit in a large picture: look again at its surroundings at full resolution
        h, w = rows.stop - rows.start, cols.stop - cols.start
        y0, y1 = int(k * max(0, rows.start - h)), int(k * (rows.stop + h))
        x0, x1 = int(k * max(0, cols.start - w)), int(k * (cols.stop + w))
        ink = _clean(_shrink(full[y0:y1, x0:x1]), name)
    return ink


def to_mnist(source: ImageSource, size: tuple[int, int] = (SIZE, SIZE)) -> torch.Tensor:
    """A 28x28 float image in [0, 1] prepared as MNIST's were (see the module's description).

    A model trained on resized MNIST takes another `size` (height, width): the 28x28 result is
    resized to it, as its training images were.
    """
    from scipy import ndimage

    ink = clean(source)
    box = _ink_box(ink)
    ink, mask = ink[box], ink[box] > 0.3
    # a thin pen line shrunk to 20 pixels would be a faint hair; MNIST's strokes are about 2-3 px
    scale = BOX / max(ink.shape)
    r = round((STROKE - _stroke_width(mask) * scale) / scale / 2)
    if r >= 1:
        ink = ndimage.grey_dilation(np.pad(ink, r), footprint=_disk(r))
    h, w = ink.shape
    scale = BOX / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    small = _resize(ink, nh, nw)
    small = small / max(float(small.max()), 1e-6)  # the darkest stroke is full ink, as in MNIST
    # place the box, then move it so its centre of mass is at MNIST's, without cutting ink off
    cy, cx = ndimage.center_of_mass(small)
    top = int(np.clip(round(CENTRE - cy), 0, SIZE - nh))
    left = int(np.clip(round(CENTRE - cx), 0, SIZE - nw))
    out = np.zeros((SIZE, SIZE), dtype=np.float32)
    out[top : top + nh, left : left + nw] = small
    if tuple(size) != (SIZE, SIZE):
        out = _resize(out, *size)
    return torch.from_numpy(out)


def naive_resize(source: ImageSource) -> torch.Tensor:
    """What skipping the preparation gives: grayscale squashed to 28x28, nothing else (for comparison)."""
    return torch.from_numpy(_resize(read_gray(source), SIZE, SIZE).astype(np.float32))
