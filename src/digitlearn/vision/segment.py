"""Numbers: cleaned ink split into digits, left to right, each prepared the MNIST way.

A digit is a mark: the connected strokes of the ink, with strokes that lie above one another
merged (a 4 or a 5 is often written in two strokes, one over the other, while the digits of a
number stand side by side). Digits that touch make one mark too wide for a digit: it is cut at
the column of least ink when the two halves are read with more confidence than the whole.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .prepare import fit

INK = 0.3  # the level above which a cleaned pixel is a stroke, as in vision.prepare
OVERLAP = 0.5  # strokes are one mark when their columns overlap by this much of the narrower's width
FULL_HEIGHT = 0.8  # strokes both this much of their joint height are two digits side by side
DIGIT_HEIGHT = 0.5  # a mark at least this much of the tallest one's height looks like a digit
WIDE = 0.8  # a mark wider than this times its height may be digits that touch
PART_HEIGHT = 0.6  # a part of a mark is a digit of its own only if this much of the mark's height
SPLITS = 4  # at most this many cuts in one mark (five touching digits)

# prepared images (N, H, W) -> their class probabilities (N, classes)
Classify = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Digit:
    """One digit of a number: its strokes (a mask of the cleaned ink), box, input and probabilities."""

    mask: np.ndarray
    rows: slice
    cols: slice
    input: torch.Tensor
    probs: torch.Tensor


def _box(mask: np.ndarray) -> tuple[slice, slice]:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


Box = tuple[int, int, int, int]  # x0, x1, y0, y1
Parts = list[tuple[np.ndarray, np.ndarray]]  # (left, right) masks of a mark's possible halves


def _same_digit(a: Box, b: Box) -> bool:
    """Whether two strokes are one digit's: their columns overlap by OVERLAP of the narrower
    one's width, and they are not both of the full height (two 1s slanted towards each other)."""
    shared = min(a[1], b[1]) - max(a[0], b[0])
    if shared < OVERLAP * min(a[1] - a[0], b[1] - b[0]):
        return False
    height = max(a[3], b[3]) - min(a[2], b[2])
    return min(a[3] - a[2], b[3] - b[2]) < FULL_HEIGHT * height


def _join(a: Box, b: Box) -> Box:
    return min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])


def marks(ink: np.ndarray) -> list[np.ndarray]:
    """The marks of cleaned ink (see `prepare.clean`) that are tall enough to be digits (not
    dust or dots), as masks, left to right."""
    from scipy import ndimage

    labels, _ = ndimage.label(ink > INK, structure=np.ones((3, 3)))
    boxes = sorted(
        ((c.start, c.stop, r.start, r.stop), i + 1)
        for i, (r, c) in enumerate(s for s in ndimage.find_objects(labels) if s)
    )
    groups: list[tuple[Box, list[int]]] = []
    for box, label in boxes:
        # left to right, a stroke joins the last mark when it looks part of the same digit
        if groups and _same_digit(groups[-1][0], box):
            joined, members = groups[-1]
            groups[-1] = (_join(joined, box), [*members, label])
        else:
            groups.append((box, [label]))
    masks = [np.isin(labels, members) for _, members in groups]
    heights = [b[3] - b[2] for b, _ in groups]
    return [m for m, h in zip(masks, heights, strict=True) if h >= DIGIT_HEIGHT * max(heights)]


def _prepare(ink: np.ndarray, mask: np.ndarray, strokes: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """One mark's ink prepared as MNIST's: its strokes with their soft edges, but not the strokes
    of other marks that the edges reach."""
    from scipy import ndimage

    own = ndimage.binary_dilation(mask, iterations=2) & ~(strokes & ~mask)
    return fit(ink * own, size)


def _cuts(ink: np.ndarray, mask: np.ndarray, cols: slice, n: int = 3) -> list[int]:
    """Up to `n` columns to cut a wide mark (spanning `cols`) at: the least inked in its middle,
    far apart."""
    width = cols.stop - cols.start
    profile = (ink * mask)[:, cols].sum(0)
    lo, hi = round(0.2 * width), round(0.8 * width)
    found: list[int] = []
    for c in lo + np.argsort(profile[lo:hi], kind="stable"):
        if all(abs(c - f) >= 0.1 * width for f in found):
            found.append(int(c))
        if len(found) == n:
            break
    return [cols.start + c for c in found]


def _largest_strokes(mask: np.ndarray) -> np.ndarray:
    """The strokes of a cut mark at least a tenth the size of its largest: the cut may leave a
    sliver of the neighbouring digit on each side."""
    from scipy import ndimage

    labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
    if n <= 1:
        return mask
    sizes = np.bincount(labels.ravel())[1:]
    return np.isin(labels, 1 + np.flatnonzero(sizes >= 0.1 * sizes.max()))


def _partitions(mask: np.ndarray) -> Parts:
    """A mark of several strokes parted into the strokes left and right of each gap between
    their centres: a slanted 1 overlaps its neighbour and joins its mark."""
    from scipy import ndimage

    labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
    if n < 2:
        return []
    centres = [c for _, c in ndimage.center_of_mass(mask, labels, range(1, n + 1))]
    order = 1 + np.argsort(centres)
    return [(np.isin(labels, order[:i]), np.isin(labels, order[i:])) for i in range(1, n)]


def _column_cuts(
    ink: np.ndarray, mask: np.ndarray, rows: slice, cols: slice
) -> list[tuple[np.ndarray, np.ndarray]]:
    """A wide mark (touching digits; its box is `rows`, `cols`) cut at each of its least inked
    middle columns."""
    if cols.stop - cols.start < WIDE * (rows.stop - rows.start):
        return []
    parts = []
    for c in _cuts(ink, mask, cols):
        left, right = mask.copy(), mask.copy()
        left[:, c:], right[:, :c] = False, False
        parts.append((_largest_strokes(left), _largest_strokes(right)))
    return parts


def _tall(part: np.ndarray, height: int) -> bool:
    """Whether a part of a mark could be a digit of it: most of its height (not a 5's bar)."""
    if not part.any():
        return False
    rows, _ = _box(part)
    return rows.stop - rows.start >= PART_HEIGHT * height


def _read(
    ink: np.ndarray,
    mask: np.ndarray,
    strokes: np.ndarray,
    classify: Classify,
    size: tuple[int, int],
    splits: int,
    seen: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> list[Digit]:
    """A mark read as one digit, or as the two parts that read better (a higher geometric mean of
    their probabilities than the whole's), each read the same way. `seen` is the mark's input and
    probabilities when they were computed already, while it was a part being scored."""
    if seen is None:
        x = _prepare(ink, mask, strokes, size)
        seen = x, classify(x[None])[0]
    x, probs = seen
    rows, cols = _box(mask)
    whole = [Digit(mask, rows, cols, x, probs)]
    if splits == 0:
        return whole
    height = rows.stop - rows.start
    best, best_score = None, float(probs.max())
    for left, right in _partitions(mask) + _column_cuts(ink, mask, rows, cols):
        if not (_tall(left, height) and _tall(right, height)):
            continue
        halves = torch.stack([_prepare(ink, m, strokes, size) for m in (left, right)])
        halves_probs = classify(halves)
        score = float(halves_probs.max(1).values.prod().sqrt())  # per digit, as the whole's
        if score > best_score:
            best, best_score = ((left, right), halves, halves_probs), score
    if best is None:
        return whole
    parts, inputs, part_probs = best
    return [
        d
        for part, x, p in zip(parts, inputs, part_probs, strict=True)
        for d in _read(ink, part, strokes, classify, size, splits - 1, (x, p))
    ]


def read_digits(ink: np.ndarray, classify: Classify, size: tuple[int, int] = (28, 28)) -> list[Digit]:
    """The digits of cleaned ink, left to right, each read by `classify`."""
    strokes = ink > INK
    return [d for m in marks(ink) for d in _read(ink, m, strokes, classify, size, SPLITS)]
