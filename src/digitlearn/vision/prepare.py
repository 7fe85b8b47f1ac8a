"""People's digit images, prepared the way MNIST's were.

MNIST digits are light ink on black, scaled to fit a 20x20 box (keeping their aspect ratio,
anti-aliased) and placed in 28x28 with their centre of mass at the centre. A photo or a drawing
is none of that, and a model trained on MNIST sees only what it was trained on, so `to_mnist`
rebuilds those conditions step by step:

  read (any mode, alpha flattened) -> grayscale in [0, 1] -> ink looked for at FIND_SIZE
  -> polarity (dark ink on light paper is inverted) -> paper shading removed (a quadratic
  surface and a block-wise local correction) -> ink = what stands out from its local paper by
  well over the paper's noise (not a share of the pixels: a small digit is under 0.5% of a photo)
  -> ruled lines and specks dropped -> the same again at WORK_SIZE around the ink (a small digit
  at full resolution) -> thin strokes thickened -> crop to the ink -> fit 20x20 -> centre of mass
  at (14, 14) in 28x28.
"""

import os
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ..errors import DigitlearnError
from . import images

WORK_SIZE = 256  # pixels on the longer side; a digit needs no more to be read, and it bounds the time
FIND_SIZE = 512  # pixels on the longer side where ink is looked for: a digit 3% of the height is 11 px
MIN_CONTRAST = 0.08  # ink differs from its paper by at least this much (of black to white)
MIN_HEIGHT = 0.02  # of the image's shorter side: ink smaller than this is a speck
BOX, SIZE = 20, 28  # MNIST: fitted into 20x20, placed in 28x28
CENTRE = 14.0  # MNIST's mean centre of mass, in pixel indices, is (14.0, 14.0) to 0.01
STROKE = 2.0  # thinnest stroke, in 28x28 pixels, MNIST's digits have about 2 to 3

ImageSource = str | os.PathLike | bytes | Image.Image | np.ndarray | torch.Tensor
# scipy.ndimage is imported in the functions that use it: it takes a few tenths of a second, and only
# preparing an image needs it, not loading a model or `import digitlearn`


class NoDigitError(DigitlearnError):
    """An image with nothing that looks like ink on it."""


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
        b = basis[paper]  # least squares by the normal equations: 6 unknowns, well conditioned
        coef = np.linalg.solve(b.T @ b + 1e-9 * np.eye(6), b.T @ values[paper])
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


def _polarity(a: np.ndarray, name: str) -> tuple[np.ndarray, bool]:
    """`a` turned light ink on dark paper, and whether it was inverted to get there.

    The border is mostly paper, and the ink is what lies furthest from it, on whichever side
    (extremes, not percentiles: a small digit may be under 1% of the pixels)."""
    m = max(1, round(0.05 * min(a.shape)))
    border = np.concatenate([a[:m].ravel(), a[-m:].ravel(), a[:, :m].ravel(), a[:, -m:].ravel()])
    paper = float(np.median(border))
    darker, lighter = paper - float(a.min()), float(a.max()) - paper
    if max(darker, lighter) < 0.05:
        raise NoDigitError(f"no digit found in {name}: the image is one flat shade")
    inverted = darker > lighter
    return (1 - a if inverted else a), inverted


def _local_paper(resid: np.ndarray, noise: float, blocks: int = 12) -> np.ndarray:
    """What the quadratic surface missed of the paper (a shadow, a fold), block by block.

    Each block's paper is its 25th percentile (ink is the brighter minority of a block; the
    percentile lies 0.674 noise deviations below the paper's middle, which is added back), and a
    grey opening over 5x5 blocks takes away what is narrower than five blocks, i.e. strokes,
    while a shadow, wider, stays. Blocks make it cheap and keep it blind to thin strokes."""
    from scipy import ndimage

    h, w = resid.shape
    b = max(4, max(h, w) // blocks)
    gh, gw = -(-h // b), -(-w // b)
    padded = np.pad(resid, ((0, gh * b - h), (0, gw * b - w)), mode="edge")
    grid = np.percentile(padded.reshape(gh, b, gw, b).transpose(0, 2, 1, 3).reshape(gh, gw, -1), 25, axis=2)
    grid = ndimage.grey_opening(grid, size=(5, 5), mode="nearest") + 0.674 * noise
    return ndimage.zoom(grid, (h / gh, w / gw), order=1, mode="nearest", grid_mode=True)[:h, :w]


def _noise(values: np.ndarray) -> float:
    """A robust standard deviation (the median absolute deviation, scaled)."""
    return 1.4826 * float(np.median(np.abs(values - np.median(values)))) + 1e-3


def _contrast(a: np.ndarray, name: str) -> tuple[np.ndarray, float]:
    """How far each pixel stands out from its local paper (light ink positive), and the
    paper's noise. Paper = a quadratic surface (lighting) plus a block-wise correction (shadows)."""
    from scipy import ndimage

    # light smoothing (about one pixel at the working size) spreads single noisy pixels thin
    a = ndimage.gaussian_filter(a, sigma=0.6 * min(max(a.shape), WORK_SIZE) / WORK_SIZE)
    a, inverted = _polarity(a, name)
    surface, is_paper = _background(a)
    surface = surface + _local_paper(a - surface, _noise((a - surface)[is_paper]))
    ink = a - surface
    if inverted:
        # light falls on paper and ink alike: in shadow the ink is as dark but the paper is not as
        # light, so divide by the paper's brightness to read the same stroke in light and shadow
        ink = ink / np.clip(1 - surface, 0.1, None)
    return ink, _noise(ink[is_paper])


def _line_pixels(ink: np.ndarray, level: float) -> np.ndarray:
    """The pixels of ruled lines: thin horizontal structures across the image.

    Averaged along a row over 1/8 of the width, a line (even faint, or broken by noise) stays
    above `level` while noise averages away; what does is joined into structures, and one that
    spans nine tenths of the width is a line (a digit's stroke spans less), except where it is
    thick, across: there a digit's stroke lies along it."""
    from scipy import ndimage

    h, w = ink.shape
    along = ndimage.uniform_filter1d(ink, size=max(9, w // 8), axis=1) > level
    labels, _ = ndimage.label(along & (ink > level), structure=np.ones((3, 3)))
    spans = ndimage.find_objects(labels)
    long = [i + 1 for i, s in enumerate(spans) if s and s[1].stop - s[1].start >= 0.9 * w]
    lines = np.isin(labels, long)
    thick = ndimage.binary_opening(lines, structure=np.ones((max(4, round(0.02 * h)) + 1, 1), bool))
    return lines & ~thick


def _without_lines(mask: np.ndarray, ink: np.ndarray, level: float) -> np.ndarray:
    """`mask` without horizontal and vertical ruled lines (see `_line_pixels`), and a pixel's
    margin, their soft edges, keeping the strokes that cross them: a removed pixel with ink just
    above and below it (left and right for a vertical line) stays."""
    from scipy import ndimage

    out = mask
    for axis in (0, 1):
        m, a = (out, ink) if axis == 0 else (out.T, ink.T)
        line = ndimage.binary_dilation(_line_pixels(a, level), structure=np.ones((3, 1), bool))
        if line.any():
            gap = 2 * max(4, round(0.02 * m.shape[0])) + 3
            rest = m & ~line
            bridged = ndimage.binary_closing(rest, structure=np.ones((gap, 1), bool))
            m = rest | (m & line & bridged)
        out = m if axis == 0 else m.T
    return out


def _clean(a: np.ndarray, name: str) -> np.ndarray:
    """`clean` on one grayscale array."""
    from scipy import ndimage

    ink, noise = _contrast(a, name)
    # ink is what stands out from its local paper by well over the paper's noise
    mask = _without_lines(ink > max(4 * noise, MIN_CONTRAST / 2), ink, 1.5 * noise)
    labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
    if n == 0:
        raise NoDigitError(f"no digit found in {name}: nothing stands out from the background")
    keep = _strokes(ink, labels, n)
    top = float(np.percentile(ink[keep], 90))
    if top < MIN_CONTRAST or top < 8 * noise:
        raise NoDigitError(f"no digit found in {name}: nothing stands out from the background")
    floor = max(4 * noise, 0.2 * top)
    ink = np.clip((ink - floor) / (top - floor), 0, 1)
    return ink * ndimage.binary_dilation(keep, iterations=2)  # the strokes with their soft edges


def _strokes(ink: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    """The mask of the blobs that are strokes: the darkest (paper texture, shadows and lines are
    fainter than ink), and of those the large ones, at least a tenth the size of the largest."""
    blob = labels > 0
    peaks = np.zeros(n + 1, np.float32)
    np.maximum.at(peaks, labels[blob], ink[blob])
    sizes = np.bincount(labels[blob], minlength=n + 1) * (peaks >= 0.5 * peaks.max())
    return np.isin(labels, np.flatnonzero(sizes >= 0.1 * sizes.max()))


def _check_shape(ink: np.ndarray, name: str) -> None:
    """Refuse ink that cannot be a digit: too small for the image, or a blot (a digit is a stroke
    several times longer than it is wide; a dot is as tall as its stroke is wide)."""
    mask = ink > 0.3
    if not mask.any():
        raise NoDigitError(f"no digit found in {name}")
    rows, cols = _ink_box(ink)
    height = max(rows.stop - rows.start, cols.stop - cols.start)
    if height < max(4, MIN_HEIGHT * min(ink.shape)) or height < 2.5 * _stroke_width(mask):
        raise NoDigitError(f"no digit found in {name}: only a speck or a blot stands out")


def _ink_box(ink: np.ndarray) -> tuple[slice, slice]:
    rows, cols = np.flatnonzero((ink > 0.3).any(1)), np.flatnonzero((ink > 0.3).any(0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


@dataclass
class Ink:
    """Cleaned ink (light on black, [0, 1]) and where it lies in the image as read: image pixel
    (y, x) = offset + scale * ink pixel."""

    ink: np.ndarray
    offset: tuple[int, int]
    scale: float

    def box(self, rows: slice, cols: slice) -> list[int]:
        """[x0, y0, x1, y1] in the image's pixels of an ink-pixel box."""
        (oy, ox), k = self.offset, self.scale
        return [
            round(ox + k * cols.start),
            round(oy + k * rows.start),
            round(ox + k * cols.stop),
            round(oy + k * rows.stop),
        ]


def _pooled(a: np.ndarray, name: str, size: int = FIND_SIZE) -> np.ndarray:
    """`a` shrunk by a whole factor to at most `size` a side, each block by its inkiest pixel: a
    thin stroke keeps its full contrast, where averaging would fade it into the paper."""
    k = -(-max(a.shape) // size)  # ceiling division
    if k == 1:
        return a
    if min(a.shape) < k:  # a thin strip: its short side repeated up to one block, not cut to nothing
        a = np.pad(a, [(0, max(0, k - n)) for n in a.shape], mode="edge")
    h, w = a.shape[0] // k, a.shape[1] // k
    rows = a[: h * k, : w * k].reshape(h, k, w * k)  # reduced rows first, then columns: contiguous
    _, inverted = _polarity(rows.mean(1).reshape(h, w, k).mean(2), name)
    pick = np.min if inverted else np.max
    return pick(pick(rows, axis=1).reshape(h, w, k), axis=2)


def find_ink(source: ImageSource) -> Ink:
    """The image's ink, cleaned (see `clean`), with its place in the image.

    Ink is looked for in the image shrunk to FIND_SIZE, then cleaned again at WORK_SIZE (see
    `_around`). An image no larger than FIND_SIZE (a drawing, a scan of one digit) is looked at
    shrunk to WORK_SIZE at once, and cleaned again only when its ink is small in it."""
    name = images.describe(source)
    full = images.read_gray(source)
    small = max(full.shape) <= FIND_SIZE
    first = _shrink(full) if small else _pooled(full, name)
    ink = _clean(first, name)
    found = Ink(ink, (0, 0), max(full.shape) / max(first.shape))
    if max(full.shape) > WORK_SIZE and not (small and not _is_low(ink)):
        found = _around(full, ink, name)
    _check_shape(found.ink, name)  # at full resolution: a small digit's pooled strokes look thick
    return found


def _is_low(ink: np.ndarray) -> bool:
    """Whether the ink is under a quarter of the image's height: worth a second, closer look."""
    rows, _ = _ink_box(ink)
    return rows.stop - rows.start < ink.shape[0] / 4


def _around(full: np.ndarray, ink: np.ndarray, name: str) -> Ink:
    """The ink found in the shrunk image cleaned again at WORK_SIZE: the whole image, or when the
    ink is low in it, the full image around the ink, as much again as its height on every side
    (some paper; a number's digits keep their size, where the whole width would shrink them)."""
    rows, cols = _ink_box(ink)
    m = rows.stop - rows.start
    y0 = x0 = 0
    crop = full
    if _is_low(ink):
        k = max(full.shape) / max(ink.shape)  # how much the image was shrunk
        y0, x0 = int(k * max(0, rows.start - m)), int(k * max(0, cols.start - m))
        crop = full[y0 : int(k * (rows.stop + m)), x0 : int(k * (cols.stop + m))]
    shrunk = _shrink(crop)
    return Ink(_clean(shrunk, name), (y0, x0), max(crop.shape) / max(shrunk.shape))


def clean(source: ImageSource) -> np.ndarray:
    """The image as light ink on a black background in [0, 1], at most WORK_SIZE a side, with
    paper shading, ruled lines, noise and small specks removed. Raises NoDigitError when no ink
    that could be a digit is left."""
    return find_ink(source).ink


def to_mnist(source: ImageSource, size: tuple[int, int] = (SIZE, SIZE)) -> torch.Tensor:
    """A 28x28 float image in [0, 1] prepared as MNIST's were (see the module's description).

    A model trained on resized MNIST takes another `size` (height, width): the 28x28 result is
    resized to it, as its training images were.
    """
    return fit(clean(source), size)


def fit(ink: np.ndarray, size: tuple[int, int] = (SIZE, SIZE)) -> torch.Tensor:
    """Cleaned ink (see `clean`) cropped, its strokes thickened to MNIST's width if thinner, fitted
    into 20x20 and placed by its centre of mass in 28x28 (then resized to `size`)."""
    from scipy import ndimage

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
    return torch.from_numpy(_resize(images.read_gray(source), SIZE, SIZE).astype(np.float32))
