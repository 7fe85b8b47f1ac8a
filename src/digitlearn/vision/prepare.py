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

A clean drawing (a canvas, an image made on a computer: paper of one exact shade, strokes with
antialiased edges, see `_drawing_paper`) has no shading, noise or lines, and skips their removal:
its ink is how far each pixel is from the paper.
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
NOISE_SAMPLE = 10_000  # pixels the paper's noise is measured on, at most about
NOISE_FLOOR = 1e-3  # the least noise assumed of any paper: a drawing's, exactly one shade, has none
FLAT = 0.5  # a clean drawing: at least this share of its pixels are exactly its paper's shade,
EDGE = 2  # and the others are strokes or their antialiased edges, within this many pixels of one

ImageSource = str | os.PathLike | bytes | Image.Image | np.ndarray | torch.Tensor
# scipy.ndimage is imported in the functions that use it: it takes a few tenths of a second, and only
# preparing an image needs it, not loading a model or `import digitlearn`


class NoDigitError(DigitlearnError):
    """An image with nothing that looks like ink on it."""


def _resize(a: np.ndarray, height: int, width: int) -> np.ndarray:
    """Anti-aliased resize of a float image (Pillow's Lanczos filter, which widens when shrinking).

    reducing_gap: a large shrink first averages blocks of a whole factor, then Lanczos takes the
    last factor of 3 or more. When the blocks tile the image, they are averaged here, in NumPy:
    the same numbers, quicker than Pillow on floats, and no full-size copy into Pillow."""
    k = int(a.shape[0] / height / 3)  # Pillow's factor, for each side
    if k > 1 and k == int(a.shape[1] / width / 3) and a.shape[0] % k == 0 and a.shape[1] % k == 0:
        a = _blocks(a, k, np.add) / k**2
    img = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32), mode="F")
    return np.clip(np.asarray(img.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0)), 0, 1)


def _shrink(a: np.ndarray, size: int = WORK_SIZE) -> np.ndarray:
    h, w = a.shape
    if max(h, w) <= size:
        return a
    k = size / max(h, w)
    return _resize(a, max(1, round(h * k)), max(1, round(w * k)))


def _coordinates(h: int, w: int, step: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """y (a column) and x (a row) of every `step`-th pixel of h x w, in [-0.5, 0.5]."""
    y = np.arange(0, h, step, dtype=np.float32)[:, None] / max(h - 1, 1) - 0.5
    x = np.arange(0, w, step, dtype=np.float32)[None, :] / max(w - 1, 1) - 0.5
    return y, x


def _quadratic_basis(h: int, w: int, step: int = 1) -> np.ndarray:
    """(pixels, 6): 1, x, y, x^2, xy, y^2 at every `step`-th pixel of h x w (see `_coordinates`)."""
    yy, xx = np.broadcast_arrays(*_coordinates(h, w, step))
    return np.stack([np.ones_like(xx), xx, yy, xx * xx, xx * yy, yy * yy], -1).reshape(-1, 6)


def _quadratic_surface(coef: np.ndarray, h: int, w: int) -> np.ndarray:
    """The quadratic with coefficients `coef` (of `_quadratic_basis`) drawn at every pixel, in
    float32: as rows and columns that broadcast, not a (pixels, 6) basis."""
    y, x = _coordinates(h, w)
    c = coef.astype(np.float32)
    return (c[0] + c[2] * y + c[5] * y * y) + (c[1] + c[3] * x + c[4] * y) * x


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
    paper = values <= _quantile(values, 0.5)  # ink is the minority: start from the darker half
    for _ in range(rounds):
        b = basis[paper]  # least squares by the normal equations: 6 unknowns, well conditioned
        coef = np.linalg.solve(b.T @ b + 1e-9 * np.eye(6), b.T @ values[paper])
        resid = values - basis @ coef
        noise = _noise(resid[paper])
        paper = resid < 3 * noise
    surface = _quadratic_surface(coef, h, w)
    return surface, a - surface < 3 * noise


def _stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width of a binary drawing: area over half the outline (a stroke of length L and
    width W has area L*W and an outline of about 2L)."""
    outline = mask & ~erode(mask)
    return 2.0 * mask.sum() / max(outline.sum(), 1)


# Erosion and dilation of boolean masks by a pixel's neighbours, with NumPy slices: the same results
# as scipy.ndimage's binary_erosion and binary_dilation (beyond the border is background), for the
# two small neighbourhoods used here, in a tenth of their time (mostly their overhead per call).


def erode(mask: np.ndarray) -> np.ndarray:
    """The pixels of `mask` whose four neighbours (up, down, left, right) are all in it."""
    out = mask.copy()
    out[1:] &= mask[:-1]
    out[:-1] &= mask[1:]
    out[:, 1:] &= mask[:, :-1]
    out[:, :-1] &= mask[:, 1:]
    out[[0, -1]] = False  # beyond the border is background
    out[:, [0, -1]] = False
    return out


def dilate(mask: np.ndarray, iterations: int = 1, square: bool = False) -> np.ndarray:
    """`mask` grown by `iterations` pixels: to the four neighbours of each pixel, or with `square`
    to all eight (a square of side 2 * iterations + 1)."""
    for _ in range(iterations):
        out = mask.copy()
        out[1:] |= mask[:-1]
        out[:-1] |= mask[1:]
        if square:  # rows first, then columns of the grown rows: the diagonals too
            mask = out.copy()
        out[:, 1:] |= mask[:, :-1]
        out[:, :-1] |= mask[:, 1:]
        mask = out
    return mask


def _disk(radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    return (r[:, None] ** 2 + r[None, :] ** 2) <= radius**2 + radius


def _border_shade(a: np.ndarray) -> float:
    """The median shade of the image's border (5% of its shorter side): mostly paper."""
    m = max(1, round(0.05 * min(a.shape)))
    border = np.concatenate([a[:m].ravel(), a[-m:].ravel(), a[:, :m].ravel(), a[:, -m:].ravel()])
    return float(_quantile(border, 0.5))


def _polarity(a: np.ndarray, name: str) -> tuple[np.ndarray, bool]:
    """`a` turned light ink on dark paper, and whether it was inverted to get there (the border
    is mostly paper: see `_ink_is_dark`)."""
    inverted = _ink_is_dark(a, _border_shade(a), name)
    return (1 - a if inverted else a), inverted


def _ink_is_dark(a: np.ndarray, paper: float, name: str) -> bool:
    """Whether the ink is darker than the paper, of shade `paper` (see `_darker_side`). Raises
    NoDigitError when nothing lies far from it."""
    if max(paper - float(a.min()), float(a.max()) - paper) < 0.05:
        raise NoDigitError(f"no digit found in {name}: the image is one flat shade")
    return _darker_side(a, paper)


def _darker_side(a: np.ndarray, paper: float) -> bool:
    """Whether what lies furthest from the paper's shade `paper` is darker than it: the ink's side
    (extremes, not percentiles: a small digit may be under 1% of the pixels)."""
    return paper - float(a.min()) > float(a.max()) - paper


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
    grid = _quantile(padded.reshape(gh, b, gw, b).transpose(0, 2, 1, 3).reshape(gh, gw, -1), 0.25)
    grid = ndimage.grey_opening(grid, size=(5, 5), mode="nearest") + 0.674 * noise
    return _stretch(grid.astype(np.float32), h, w)


def _stretch(grid: np.ndarray, h: int, w: int) -> np.ndarray:
    """`grid` drawn at h x w pixels spanning the same extent: linear between its cells' centres
    (cell i's at pixel (i + 0.5) * h / cells - 0.5), each edge cell's value held beyond its centre.
    As ndimage.zoom(order=1, mode="nearest", grid_mode=True), in a few array operations; not a
    matrix product, which BLAS may spread over threads that wait on a busy machine."""
    for axis, n in ((0, h), (1, w)):
        cells = grid.shape[axis]
        at = np.clip((np.arange(n, dtype=np.float32) + 0.5) * cells / n - 0.5, 0, cells - 1)
        floor = np.floor(at)
        low = floor.astype(np.intp)
        step = (at - floor).reshape((-1, 1) if axis == 0 else (1, -1))
        below, above = np.take(grid, low, axis), np.take(grid, np.minimum(low + 1, cells - 1), axis)
        grid = below + (above - below) * step
    return grid


def _noise(values: np.ndarray) -> float:
    """A robust standard deviation (the median absolute deviation, scaled), at least NOISE_FLOOR."""
    return 1.4826 * float(_quantile(np.abs(values - _quantile(values, 0.5)), 0.5)) + NOISE_FLOOR


def _quantile(a: np.ndarray, q: float) -> np.ndarray:
    """The q-quantile of `a` along its last axis, as np.quantile's (linear between the two nearest
    values; NaN when empty), from one partition: asked for both of those values, NumPy partitions
    several times slower, and so does np.median for an even count."""
    n = a.shape[-1]
    if n == 0:
        return np.full(a.shape[:-1], np.nan, np.float32)
    pos = q * (n - 1)
    lo = int(pos)
    part = np.partition(a, lo, axis=-1)
    low = part[..., lo]
    if pos == lo:
        return low
    return low + (part[..., lo + 1 :].min(axis=-1) - low) * (pos - lo)  # the next value up


def _paper_noise(a: np.ndarray, is_paper: np.ndarray) -> float:
    """The noise (see `_noise`) of the paper pixels of `a`, from a grid of about NOISE_SAMPLE of
    them: a median of more costs time, not accuracy."""
    step = max(1, round(np.sqrt(a.size / NOISE_SAMPLE)))
    return _noise(a[::step, ::step][is_paper[::step, ::step]])


def _contrast(a: np.ndarray, name: str) -> tuple[np.ndarray, float]:
    """How far each pixel stands out from its local paper (light ink positive), and the
    paper's noise. Paper = a quadratic surface (lighting) plus a block-wise correction (shadows)."""
    a, inverted = _polarity(_smooth(a), name)
    surface, is_paper = _background(a)
    resid = a - surface
    surface = surface + _local_paper(resid, _paper_noise(resid, is_paper))
    ink = a - surface
    if inverted:
        # light falls on paper and ink alike: in shadow the ink is as dark but the paper is not as
        # light, so divide by the paper's brightness to read the same stroke in light and shadow
        ink = ink / np.clip(1 - surface, 0.1, None)
    return ink, _paper_noise(ink, is_paper)


def _smooth(a: np.ndarray, longer: int | None = None) -> np.ndarray:
    """Light smoothing (about one pixel at the working size): it spreads single noisy pixels thin.
    `longer`: the longer side of the image `a` is cut from, when it is a part of one."""
    from scipy import ndimage

    return ndimage.gaussian_filter(a, sigma=0.6 * min(longer or max(a.shape), WORK_SIZE) / WORK_SIZE)


def _drawing_paper(a: np.ndarray) -> float | None:
    """The paper's shade when `a` is a clean drawing (a canvas, an image made on a computer), else
    None: most pixels (FLAT) exactly one shade, its paper, and every other one a stroke (at least
    half as far from the paper as the farthest pixel) or a stroke's antialiased edge, within EDGE
    pixels of one. It has no noise, shading or ruled lines: none of a photo's corrections is needed."""
    sample = a[::8, ::8]  # a photo fails here, at a 64th of the cost
    paper = _border_shade(sample)
    if np.count_nonzero(sample == paper) < FLAT * sample.size:
        return None
    on_paper = a == paper
    if np.count_nonzero(on_paper) < FLAT * a.size:
        return None
    far = np.abs(a - paper)
    strokes = far >= 0.5 * float(far.max())
    near = dilate(strokes, EDGE, square=True)
    return None if np.any(~on_paper & ~near) else paper


def _drawn_contrast(a: np.ndarray, paper: float, name: str) -> np.ndarray:
    """How far each pixel of a clean drawing stands out from its paper, of one shade `paper`
    (light ink positive; dark ink's divided by the paper's brightness, as in `_contrast`)."""
    return (paper - a) / max(paper, 0.1) if _ink_is_dark(a, paper, name) else a - paper


def _line_pixels(ink: np.ndarray, level: float) -> np.ndarray:
    """The pixels of ruled lines: thin horizontal structures across the image.

    Averaged along a row over 1/8 of the width, a line (even faint, or broken by noise) stays
    above `level` while noise averages away; what does is joined into structures, and one that
    spans nine tenths of the width holds a line (a digit's stroke spans less): its long runs
    across the width, except where they are thick, across: there a digit's stroke lies along it."""
    from scipy import ndimage

    h, w = ink.shape
    along = ndimage.uniform_filter1d(ink, size=max(9, w // 8), axis=1) > level
    candidates = along & (ink > level)
    if np.count_nonzero(candidates.any(0)) < 0.9 * w:  # nothing spans the width: no line (most images)
        return np.zeros(ink.shape, bool)
    lines = _across(candidates)
    if not lines.any():
        return lines
    # A thin stroke that touches a line joins its structure, and a flat part of it (a 7's bar,
    # away from the line) would pass for line. The line itself is made of long horizontal runs:
    # the structure's pixels in runs of 11 once it is thickened a row each way (a slanted line's
    # steps then run on into each other; a steep stroke stays short), joined corner to corner.
    # Runs so joined that span the width, and the pixels next to them, are the line; the rest
    # is strokes
    band = ndimage.binary_dilation(lines, structure=np.ones((3, 1), bool))
    # a faint line's dashes closed up (by hand: SciPy's closing would erode the line's ends away)
    bar = np.ones((1, 5), bool)
    band = ndimage.binary_erosion(ndimage.binary_dilation(band, bar), bar, border_value=1)
    runs = ndimage.binary_opening(band, structure=np.ones((1, 11), bool)) & lines
    lines &= dilate(_across(runs), square=True)
    thick = ndimage.binary_opening(lines, structure=np.ones((max(4, round(0.02 * h)) + 1, 1), bool))
    return lines & ~thick


def _across(mask: np.ndarray) -> np.ndarray:
    """The parts of `mask`, its pixels joined side by side or corner to corner, that span nine
    tenths of its width or more."""
    from scipy import ndimage

    labels, _ = ndimage.label(mask, structure=np.ones((3, 3)))
    spans = ndimage.find_objects(labels)
    w = mask.shape[1]
    return np.isin(labels, [i + 1 for i, s in enumerate(spans) if s and s[1].stop - s[1].start >= 0.9 * w])


def _without_lines(mask: np.ndarray, ink: np.ndarray, level: float) -> np.ndarray:
    """`mask` without horizontal and vertical ruled lines (see `_line_pixels`), and a pixel's
    margin, their soft edges, keeping the strokes that cross them: a removed pixel with ink just
    above and below it (left and right for a vertical line) stays."""
    from scipy import ndimage

    out = mask
    for axis in (0, 1):
        m, a = (out, ink) if axis == 0 else (out.T, ink.T)
        lines = _line_pixels(a, level)
        if lines.any():
            line = ndimage.binary_dilation(lines, structure=np.ones((3, 1), bool))
            gap = 2 * max(4, round(0.02 * m.shape[0])) + 3
            rest = m & ~line
            bridged = ndimage.binary_closing(rest, structure=np.ones((gap, 1), bool))
            m = rest | (m & line & bridged)
        out = m if axis == 0 else m.T
    return out


def _clean(a: np.ndarray, name: str, paper: float | None = None) -> np.ndarray:
    """`clean` on one grayscale array; `paper`: its shade when it is a clean drawing (see
    `_drawing_paper`), which needs no photo's corrections."""
    if paper is not None:
        return _clean_drawing(a, name, paper)
    ink, noise = _contrast(a, name)
    # ink is what stands out from its local paper by well over the paper's noise
    mask = _without_lines(ink > max(4 * noise, MIN_CONTRAST / 2), ink, 1.5 * noise)
    return _kept_strokes(ink, mask, noise, name)


def _clean_drawing(a: np.ndarray, name: str, paper: float) -> np.ndarray:
    """`_clean` for a clean drawing: its ink is how far each pixel is from the paper (smoothed as a
    photo's, for the same strokes), and it has no ruled lines (a long stroke in it is a stroke).
    Worked out in the box around what is not paper only, and a margin: the rest is paper."""
    drawn = a != paper
    rows, cols = np.flatnonzero(drawn.any(1)), np.flatnonzero(drawn.any(0))
    if not rows.size:
        raise NoDigitError(f"no digit found in {name}: the image is one flat shade")
    m = 6  # the smoothing's reach (2 pixels), the soft edges `_kept_strokes` adds (2), and paper
    box = slice(max(0, rows[0] - m), rows[-1] + 1 + m), slice(max(0, cols[0] - m), cols[-1] + 1 + m)
    ink = _drawn_contrast(_smooth(a[box], max(a.shape)), paper, name)
    out = np.zeros(a.shape, np.float32)
    out[box] = _kept_strokes(ink, ink > max(4 * NOISE_FLOOR, MIN_CONTRAST / 2), NOISE_FLOOR, name)
    return out


def _kept_strokes(ink: np.ndarray, mask: np.ndarray, noise: float, name: str) -> np.ndarray:
    """The strokes (see `_strokes`) among the blobs of `mask`, their ink scaled so that their inkiest
    tenth is full ink and what is fainter than a fifth of it (or 4 noise deviations) none, with
    their soft edges."""
    from scipy import ndimage

    labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
    if n == 0:
        raise NoDigitError(f"no digit found in {name}: nothing stands out from the background")
    keep = _strokes(ink, labels, n)
    top = float(_quantile(ink[keep], 0.9))
    if top < MIN_CONTRAST or top < 8 * noise:
        raise NoDigitError(f"no digit found in {name}: nothing stands out from the background")
    floor = max(4 * noise, 0.2 * top)
    ink = np.clip((ink - floor) / (top - floor), 0, 1)
    return ink * dilate(keep, 2)  # the strokes with their soft edges


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
    if height < max(4, MIN_HEIGHT * min(ink.shape)) or height < 2.5 * _stroke_width(mask[rows, cols]):
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


def _pooled(a: np.ndarray, size: int = FIND_SIZE) -> np.ndarray:
    """`a` shrunk by a whole factor to at most `size` a side, each block by its inkiest pixel: a
    thin stroke keeps its full contrast, where averaging would fade it into the paper."""
    k = -(-max(a.shape) // size)  # ceiling division
    if k == 1:
        return a
    if min(a.shape) < k:  # a thin strip: its short side repeated up to one block, not cut to nothing
        a = np.pad(a, [(0, max(0, k - n)) for n in a.shape], mode="edge")
    a = a[: a.shape[0] // k * k, : a.shape[1] // k * k]
    # the ink's side, from the blocks' means. Whether anything stands out at all is for the pooled
    # page to say (no flat limit here): a stroke thinner than a block keeps its contrast there
    means = _blocks(a, k, np.add) / k**2
    inverted = _darker_side(means, _border_shade(means))
    return _blocks(a, k, np.minimum if inverted else np.maximum)


def _blocks(a: np.ndarray, k: int, combine: np.ufunc) -> np.ndarray:
    """`a` (a multiple of k >= 2 a side) reduced over each k x k block by `combine` (np.add, np.minimum):
    k - 1 steps over whole rows, then over columns, each one vectorised operation (NumPy reduces
    a short last axis, k long, many times slower)."""
    h, w = a.shape[0] // k, a.shape[1] // k
    rows = a.reshape(h, k, w * k)
    out = combine(rows[:, 0], rows[:, 1])
    for i in range(2, k):
        combine(out, rows[:, i], out=out)
    cols = out.reshape(h, w, k)
    out = combine(cols[..., 0], cols[..., 1])
    for i in range(2, k):
        combine(out, cols[..., i], out=out)
    return out


def find_ink(source: ImageSource) -> Ink:
    """The image's ink, cleaned (see `clean`), with its place in the image.

    Ink is looked for in the image shrunk to FIND_SIZE, then cleaned again at WORK_SIZE (see
    `_around`). An image no larger than FIND_SIZE (a drawing, a scan of one digit) is looked at
    shrunk to WORK_SIZE at once (a clean drawing, see `_drawing_paper`, as it is: it is cheap to
    clean, and a resampling would only blur it), and cleaned again only when its ink is small in it."""
    name = images.describe(source)
    full = images.read_gray(source)
    paper = _drawing_paper(full)
    small = max(full.shape) <= FIND_SIZE
    first = (full if paper is not None else _shrink(full)) if small else _pooled(full)
    ink = _clean(first, name, paper)
    found = Ink(ink, (0, 0), max(full.shape) / max(first.shape))
    if max(full.shape) > WORK_SIZE and not (small and not _is_low(ink)):
        found = _around(full, ink, name, paper)
    _check_shape(found.ink, name)  # at full resolution: a small digit's pooled strokes look thick
    return found


def _is_low(ink: np.ndarray) -> bool:
    """Whether the ink is under a quarter of the image's height: worth a second, closer look."""
    rows, _ = _ink_box(ink)
    return rows.stop - rows.start < ink.shape[0] / 4


def _around(full: np.ndarray, ink: np.ndarray, name: str, paper: float | None) -> Ink:
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
    return Ink(_clean(shrunk, name, paper), (y0, x0), max(crop.shape) / max(shrunk.shape))


def clean(source: ImageSource) -> np.ndarray:
    """The image as light ink on a black background in [0, 1], at most WORK_SIZE a side (a clean
    drawing: FIND_SIZE), with paper shading, ruled lines, noise and small specks removed. Raises
    NoDigitError when no ink that could be a digit is left."""
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
    cy, cx = _centre_of_mass(small)
    top = int(np.clip(round(CENTRE - cy), 0, SIZE - nh))
    left = int(np.clip(round(CENTRE - cx), 0, SIZE - nw))
    out = np.zeros((SIZE, SIZE), dtype=np.float32)
    out[top : top + nh, left : left + nw] = small
    if tuple(size) != (SIZE, SIZE):
        out = _resize(out, *size)
    return torch.from_numpy(out)


def _centre_of_mass(a: np.ndarray) -> tuple[float, float]:
    """(row, column) of a non-blank image's centre of mass (as ndimage.center_of_mass, without its
    overhead, which is most of its time on a 20x20 image)."""
    rows, cols = a.sum(1, dtype=np.float64), a.sum(0, dtype=np.float64)
    total = rows.sum()
    return float(rows @ np.arange(len(rows))) / total, float(cols @ np.arange(len(cols))) / total


def naive_resize(source: ImageSource) -> torch.Tensor:
    """What skipping the preparation gives: grayscale squashed to 28x28, nothing else (for comparison)."""
    return torch.from_numpy(_resize(images.read_gray(source), SIZE, SIZE).astype(np.float32))
