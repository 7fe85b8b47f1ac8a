"""Numbers: cleaned ink split into digits, left to right, each prepared the MNIST way.

A digit is a mark: the connected strokes of the ink, with strokes that lie above one another
merged (a 4 or a 5 is often written in two strokes, one over the other, while the digits of a
number stand side by side). Digits that touch make one mark too wide for a digit: it is cut at
the column of least ink when the two halves are read with more confidence than the whole.

What is not a digit is left out: dust and dots (a mark as tall as its strokes are wide, or one
whose strokes are all short: a column of dots) and marks far shorter than the tallest. A number
has at most MAX_MARKS digits: ink of more marks (scattered dots, text, a texture) is refused,
and marks are cut into touching digits only while the number stays within it. That bounds the
work, whatever the image: at most 2 * MAX_MARKS marks and parts are read, each trying at most
PARTITIONS + 3 cuts.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .prepare import NoDigitError, dilate, erode, fit

INK = 0.3  # the level above which a cleaned pixel is a stroke, as in vision.prepare
OVERLAP = 0.5  # strokes are one mark when their columns overlap by this much of the narrower's width
FULL_HEIGHT = 0.8  # strokes both this much of their joint height are two digits side by side
DIGIT_HEIGHT = 0.5  # a mark at least this much of the tallest one's height looks like a digit
DOT = 2.5  # a mark less than this many times as long as its strokes are wide is a dot (as in prepare)
SPAN = 0.4  # a digit has a stroke this much of its height at least; a column of dots has none
WIDE = 0.8  # a mark wider than this times its height may be digits that touch
PART_HEIGHT = 0.6  # a part of a mark is a digit of its own only if this much of the mark's height
SPLITS = 4  # at most this many cuts in one mark (five touching digits)
PARTITIONS = 3  # a mark of many strokes is parted at its widest gaps between strokes only, this many
# A number has at most this many digits. More marks than that are refused: a page of dots or text
# is no number, and reading hundreds of marks would take seconds.
MAX_MARKS = 12

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
Cut = tuple[tuple[np.ndarray, np.ndarray], torch.Tensor, torch.Tensor]  # halves, inputs, probabilities


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


@dataclass
class _Strokes:
    """The strokes of cleaned ink, labelled (8-connected) in `within`, the box around them, with
    each one's box there, and its area and outline in pixels (those beside the background), which
    give its width (see `_looks_like_digit`). `shape`: the ink's."""

    labels: np.ndarray
    within: tuple[slice, slice]
    shape: tuple[int, int]
    boxes: list[tuple[slice, slice]]
    area: np.ndarray
    outline: np.ndarray


def _strokes(ink: np.ndarray) -> _Strokes:
    from scipy import ndimage

    strokes = ink > INK
    within = _box(strokes) if strokes.any() else (slice(0, 0), slice(0, 0))
    strokes = strokes[within]  # most of the ink is background: label only around the strokes
    labels, n = ndimage.label(strokes, structure=np.ones((3, 3)))
    # strokes never touch each other, so the outline of all of them is each one's
    edge = strokes & ~erode(strokes)
    area, outline = np.bincount(labels[strokes], minlength=n + 1), np.bincount(labels[edge], minlength=n + 1)
    return _Strokes(labels, within, ink.shape, ndimage.find_objects(labels), area, outline)


def _groups(found: _Strokes) -> list[tuple[Box, list[int]]]:
    """The strokes grouped into marks (box, labels), left to right."""
    boxes = sorted(((c.start, c.stop, r.start, r.stop), i + 1) for i, (r, c) in enumerate(found.boxes))
    groups: list[tuple[Box, list[int]]] = []
    for box, label in boxes:
        # left to right, a stroke joins the last mark when it looks part of the same digit
        if groups and _same_digit(groups[-1][0], box):
            joined, members = groups[-1]
            groups[-1] = (_join(joined, box), [*members, label])
        else:
            groups.append((box, [label]))
    return groups


def _looks_like_digit(found: _Strokes, box: Box, members: list[int]) -> bool:
    """Whether a mark could be a digit: not a dot (a digit is a stroke several times longer than it
    is wide; the width is the area over half the outline) and not a column of specks or dots (one
    of a digit's strokes at least spans SPAN of its height)."""
    height = box[3] - box[2]
    width = 2.0 * found.area[members].sum() / max(int(found.outline[members].sum()), 1)
    span = max(found.boxes[i - 1][0].stop - found.boxes[i - 1][0].start for i in members)
    return max(height, box[1] - box[0]) >= DOT * width and span >= SPAN * height


def _digit_groups(groups: list[tuple[Box, list[int]]], found: _Strokes) -> list[tuple[Box, list[int]]]:
    """Of marks (see `_groups`), those that look like digits (see `_looks_like_digit`), of at
    least DIGIT_HEIGHT of the tallest one's height."""
    groups = [(b, m) for b, m in groups if _looks_like_digit(found, b, m)]
    tallest = max((b[3] - b[2] for b, _ in groups), default=0)
    return [(b, m) for b, m in groups if b[3] - b[2] >= DIGIT_HEIGHT * tallest]


def _masks(found: _Strokes, groups: list[tuple[Box, list[int]]]) -> list[np.ndarray]:
    """Each mark of `groups` as a mask of the whole ink."""
    mark_of = np.zeros(len(found.area), np.int32)  # each stroke's mark, from 1; 0: none
    for i, (_, members) in enumerate(groups):
        mark_of[members] = i + 1
    marked = mark_of[found.labels]
    masks = []
    for i in range(len(groups)):
        mask = np.zeros(found.shape, bool)
        mask[found.within] = marked == i + 1
        masks.append(mask)
    return masks


def marks(ink: np.ndarray) -> list[np.ndarray]:
    """The marks of cleaned ink (see `prepare.clean`) that look like digits (not dust, dots or
    marks far shorter than the tallest), as masks, left to right."""
    found = _strokes(ink)
    return _masks(found, _digit_groups(_groups(found), found))


def count_marks(ink: np.ndarray) -> int:
    """How many `marks` the ink holds, without making their masks (a fifth of the work)."""
    found = _strokes(ink)
    return len(_digit_groups(_groups(found), found))


def _prepare(ink: np.ndarray, mask: np.ndarray, strokes: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """One mark's ink prepared as MNIST's: its strokes with their soft edges, but not the strokes
    of other marks that the edges reach."""
    own = dilate(mask, 2) & ~(strokes & ~mask)
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
    """A mark of several strokes parted into the strokes left and right of a gap between their
    centres (a slanted 1 overlaps its neighbour and joins its mark): of the partings whose two
    sides are both tall enough to be digits, the PARTITIONS at the widest gaps."""
    from scipy import ndimage

    labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
    if n < 2:
        return []
    centres = np.array([c for _, c in ndimage.center_of_mass(mask, labels, range(1, n + 1))])
    order = np.argsort(centres, kind="stable")
    rows = ndimage.find_objects(labels)
    tops = np.array([rows[i][0].start for i in order])
    bottoms = np.array([rows[i][0].stop for i in order])
    height = bottoms.max() - tops.min()
    # the height of the strokes left of each gap, and right of it (gap i: after the i+1 leftmost)
    left = np.maximum.accumulate(bottoms) - np.minimum.accumulate(tops)
    right = (np.maximum.accumulate(bottoms[::-1]) - np.minimum.accumulate(tops[::-1]))[::-1]
    tall = (left[:-1] >= PART_HEIGHT * height) & (right[1:] >= PART_HEIGHT * height)
    gaps = np.where(tall, np.diff(centres[order]), -np.inf)
    cuts = sorted(1 + i for i in np.argsort(-gaps, kind="stable")[:PARTITIONS] if tall[i])
    return [(np.isin(labels, 1 + order[:i]), np.isin(labels, 1 + order[i:])) for i in cuts]


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


@dataclass
class _Reader:
    """Reads marks of `ink` as digits with `classify`, cutting them into touching digits while
    the number has fewer than MAX_MARKS digits: `spare` is how many more it may have."""

    ink: np.ndarray
    strokes: np.ndarray
    classify: Classify
    size: tuple[int, int]
    spare: int

    def read(
        self, mask: np.ndarray, splits: int, seen: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> list[Digit]:
        """A mark read as one digit, or as the two parts that read better (a higher geometric mean
        of their probabilities than the whole's), each read the same way. `seen` is the mark's
        input and probabilities when they were computed already, while it was a part being scored."""
        if seen is None:
            x = _prepare(self.ink, mask, self.strokes, self.size)
            seen = x, self.classify(x[None])[0]
        x, probs = seen
        rows, cols = _box(mask)
        if splits == 0 or self.spare == 0:
            return [Digit(mask, rows, cols, x, probs)]
        best = self._best_cut(mask, rows, cols, float(probs.max()))
        if best is None:
            return [Digit(mask, rows, cols, x, probs)]
        self.spare -= 1
        parts, inputs, part_probs = best
        return [
            d
            for part, x, p in zip(parts, inputs, part_probs, strict=True)
            for d in self.read(part, splits - 1, (x, p))
        ]

    def _best_cut(self, mask: np.ndarray, rows: slice, cols: slice, whole: float) -> Cut | None:
        """The mark's two parts that read with more confidence than the whole's `whole`, as
        (parts, inputs, probabilities), the most confident; None if none does."""
        height = rows.stop - rows.start
        best, best_score = None, whole
        for left, right in _partitions(mask) + _column_cuts(self.ink, mask, rows, cols):
            if not (_tall(left, height) and _tall(right, height)):
                continue
            halves = torch.stack([_prepare(self.ink, m, self.strokes, self.size) for m in (left, right)])
            halves_probs = self.classify(halves)
            score = float(halves_probs.max(1).values.prod().sqrt())  # per digit, as the whole's
            if score > best_score:
                best, best_score = ((left, right), halves, halves_probs), score
        return best


def read_digits(
    ink: np.ndarray, classify: Classify, size: tuple[int, int] = (28, 28), name: str = "the image"
) -> list[Digit]:
    """The digits of cleaned ink, left to right, each read by `classify`. Raises NoDigitError
    when the ink has more than MAX_MARKS marks, or none that looks like a digit (`name`: the
    image, as the message names it)."""
    found = _strokes(ink)
    groups = _groups(found)
    # all marks count, dots and specks too: a photo of a number has a speck or two at most, and a
    # page of scattered dots or a texture has dozens, of which a few may look like digits
    if len(groups) > MAX_MARKS:
        many = f"{len(groups)} found, at most {MAX_MARKS}"
        raise NoDigitError(f"no number found in {name}: too many marks to be a number ({many})")
    groups = _digit_groups(groups, found)
    if not groups:
        raise NoDigitError(f"no number found in {name}: only dots or specks stand out")
    reader = _Reader(ink, ink > INK, classify, size, MAX_MARKS - len(groups))
    return [d for m in _masks(found, groups) for d in reader.read(m, SPLITS)]
