"""What `to_mnist` makes of a fixed, varied set of generated images, pinned (a characterization test).

The preparation has many tuning values (the ruled-line finder's thresholds and filter widths, the
paper's noise multiples, block sizes, the thickening disk...) whose small changes the later
stages mostly absorb, so no behavioural test can pin each one. This one pins what they make
together: each image below (drawn with NumPy alone, so the same on every machine: no font, no
JPEG) prepared to 28x28 must match `data/prepare_golden.npz` to `TOLERANCE` (`LOOSE` for a
few): that comparison is `test_preprocess.py::test_prepared_images_are_as_pinned`, in the file
the mutation run (`[tool.mutmut]` in pyproject.toml) runs for prepare.py; this file makes the
images and re-pins.

A change here is a change in what users' images become. Before re-pinning, re-measure the
number-reading benchmarks (docs/benchmarks.md) and say what moved. To re-pin:

    DIGITLEARN_REPIN=1 .venv/bin/python -m pytest tests/test_prepare_golden.py
"""

import itertools
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from digitlearn import to_mnist

GOLDEN = Path(__file__).parent / "data" / "prepare_golden.npz"
# How close each image must come to its pin, of black (0) to white (1). Float noise between
# platforms is a rounding in the last bits (NumPy's SIMD loops sum in other orders, BLAS solves
# differ): moving every input pixel by 1e-6 moves these images' results by at most 2.5e-6, so 1e-5
# keeps a margin, and pins the tuning values that move a result by less than a pixel's rounding
TOLERANCE = 1e-5
# small and noisy images, whose paper's noise comes from few pixels and sets the ink's floor: the
# same 1e-6 moves them by 4e-6 to 1.7e-4, so they are pinned to 1e-3
LOOSE = {
    "small_faint_noisy": 1e-3,
    "small_noisy_lamp": 1e-3,
    "dim_room": 1e-3,
    "ruled_thumbnail": 1e-3,
    "shaded_thumbnail_56x48": 1e-3,
    "shaded_thumbnail_50x58": 1e-3,
    "faint_slanted_thumbnail": 1e-3,
}

# digits as pen strokes: polylines in unit coordinates (x, y) of the digit's box
_t = np.linspace(0, 2 * np.pi, 40)
STROKES = {
    "0": [list(zip(0.5 + 0.32 * np.cos(_t), 0.5 + 0.45 * np.sin(_t), strict=True))],
    "2": [[(0.2, 0.25), (0.4, 0.1), (0.7, 0.12), (0.8, 0.3), (0.2, 0.9), (0.85, 0.9)]],
    "4": [[(0.65, 0.95), (0.65, 0.05), (0.12, 0.65), (0.88, 0.65)]],
    "5": [[(0.8, 0.08), (0.3, 0.08), (0.25, 0.45), (0.6, 0.42), (0.8, 0.62), (0.65, 0.9), (0.2, 0.85)]],
    "7": [[(0.15, 0.1), (0.85, 0.1), (0.4, 0.95)], [(0.35, 0.52), (0.75, 0.52)]],
}


def pen(h: int, w: int, digit: str, box: tuple[int, int, int, int], width: float) -> np.ndarray:
    """Ink coverage in [0, 1] of `digit` drawn with a round pen `width` pixels wide in `box`
    (top, left, height, width of the digit), antialiased over a pixel."""
    top, left, bh, bw = box
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    dist = np.full((h, w), np.inf)
    for line in STROKES[digit]:
        pts = np.array([(left + x * bw, top + y * bh) for x, y in line])
        for (x0, y0), (x1, y1) in itertools.pairwise(pts):
            dx, dy = x1 - x0, y1 - y0
            t = np.clip(((xx - x0) * dx + (yy - y0) * dy) / max(dx * dx + dy * dy, 1e-12), 0, 1)
            dist = np.minimum(dist, np.hypot(xx - x0 - t * dx, yy - y0 - t * dy))
    return np.clip(width / 2 + 0.5 - dist, 0, 1)


def image(gray: np.ndarray) -> Image.Image:
    """A float image in 0-255 as an 8-bit photo."""
    return Image.fromarray(np.uint8(np.clip(np.round(gray), 0, 255)))


def photo(h, w, digit, box, width, ink, paper, noise=3.0, seed=0) -> Image.Image:
    """`digit` in `ink` on `paper` (a shade or an array of them), with Gaussian noise."""
    a = pen(h, w, digit, box, width)
    gray = paper * (1 - a) + ink * a + np.random.default_rng(seed).normal(0, noise, (h, w))
    return image(gray)


def lit_page(h: int, w: int) -> np.ndarray:
    """A page lit by a lamp to one side (0-255)."""
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    return 235 * (1.0 - 0.2 * xx) * (1.0 - 0.05 * yy)


def ruled_every(
    h: int, w: int, every: int, thick: int, depth: float, margin: int | None = None
) -> np.ndarray:
    """A lit page with lines `thick` pixels thick every `every`, `depth` darker, and a vertical
    margin line at x = `margin`."""
    page = lit_page(h, w)
    for t in range(thick):
        page[every // 2 + t :: every] -= depth
        if margin is not None:
            page[:, margin + t] -= depth
    return page


def slanted(h: int, w: int, every: int, depth: float, slope: float) -> np.ndarray:
    """A lit page ruled with lines one pixel thick every `every`, `depth` darker, falling `slope`
    pixels per pixel across: stair steps, as a page photographed a little turned."""
    page = lit_page(h, w)
    cols = np.arange(w)
    for y0 in range(-int(slope * w) - every, h + every, every):
        rows = np.floor(y0 + slope * cols).astype(int)
        inside = (rows >= 0) & (rows < h)
        page[rows[inside], cols[inside]] -= depth
    return page


def cases() -> dict[str, Image.Image]:
    """The pinned images, by name: each one exercises some of the preparation's stages."""
    yy, xx = np.mgrid[0:360, 0:480] / np.array([360, 480])[:, None, None]
    lit = lit_page(360, 480)  # a lamp to one side
    lamp = 235 * (1.0 - 0.5 * yy**2 - 0.3 * xx + 0.2 * xx * yy)  # quadratic shading, to half
    shadow = 230 * (1 - 0.35 / (1 + np.exp(-(xx - 0.55) * 10)))  # a soft shadow over the right
    ruled = lit.copy()
    ruled[20::40] -= 60
    ruled[21::40] -= 60
    ruled[:, 60:62] -= 60  # a margin
    out = {
        "lit_dark_ink": photo(360, 480, "2", (70, 160, 220, 160), 14, 30, lit),
        "chalk_on_board": photo(360, 480, "7", (60, 170, 240, 150), 10, 215, 45, noise=4, seed=1),
        "quadratic_lamp": photo(360, 480, "5", (60, 170, 240, 150), 12, 30, lamp, seed=2),
        "soft_shadow": photo(360, 480, "0", (70, 180, 220, 150), 12, 35, shadow, seed=3),
        "ruled_page": photo(360, 480, "4", (50, 170, 260, 170), 9, 30, ruled, seed=4),
        "faint_pencil": photo(300, 240, "7", (40, 50, 220, 150), 8, 175, 225, noise=4, seed=5),
        "thick_marker": photo(240, 300, "4", (20, 80, 200, 140), 34, 20, 240, noise=2, seed=6),
        "small_on_big_page": photo(900, 1200, "2", (380, 560, 90, 70), 4, 40, 225, noise=5, seed=7),
        "chalk_small_on_big": photo(900, 1200, "5", (300, 700, 140, 100), 3, 220, 30, noise=5, seed=8),
        "tiny_photo": photo(56, 48, "0", (8, 10, 40, 28), 4, 20, 230, noise=3, seed=9),
    }
    # ruled pages: lines tilted (joined diagonally), close together, crossing and running along
    # thin strokes; a page as small as a thumbnail
    tilt = lit.copy()
    for y0 in range(12, 360, 22):
        for t in range(2):
            ys = np.round(y0 + t + 0.03 * (np.arange(480) - 240)).astype(int)
            ok = (ys >= 0) & (ys < 360)
            tilt[ys[ok], np.arange(480)[ok]] -= 45
    out["tilted_ruled_thin_pen"] = photo(360, 480, "7", (60, 170, 240, 150), 3, 30, tilt, seed=10)
    out["ruled_thin_two"] = photo(360, 480, "2", (50, 160, 250, 170), 3, 30, ruled, seed=11)
    out["ruled_thin_five"] = photo(360, 480, "5", (45, 165, 270, 160), 4, 40, ruled - 20, seed=12)
    # a thin pen's shallow diagonal, a portrait page with a margin, lines 18 px apart: the
    # strokes across a line are bridged over it, the line's own pixels dropped
    out["ruled_shallow_two"] = photo(
        360, 480, "2", (60, 60, 220, 360), 3, 30, ruled_every(360, 480, 40, 2, 60), seed=21
    )
    out["ruled_portrait"] = photo(
        400, 240, "7", (60, 30, 280, 180), 3, 30, ruled_every(400, 240, 30, 2, 50, 20), seed=24
    )
    out["ruled_close"] = photo(
        360, 480, "5", (40, 100, 280, 280), 3, 30, ruled_every(360, 480, 18, 2, 45), seed=25
    )
    thumb = 200 - 30 * np.mgrid[0:54, 0:72][1] / 72
    thumb[5::12] -= 50
    out["ruled_thumbnail"] = photo(54, 72, "4", (6, 22, 42, 30), 3, 20, thumb, seed=13)
    # sizes at the edges of the preparation's steps: a square photo (the background's grid step
    # exactly 4 at the working size), a page pooled by 2, a strip thinner than a pooling block
    out["square_photo"] = photo(300, 300, "2", (50, 80, 200, 140), 10, 30, 225, seed=14)
    out["page_pooled_by_2"] = photo(600, 800, "7", (150, 300, 250, 180), 5, 30, lit[0, 0], seed=15)
    out["small_on_page_pooled_by_2"] = photo(600, 800, "4", (400, 200, 70, 50), 4, 30, 220, seed=18)
    strip = np.full((2, 1400), 230.0)
    strip[:, 500:900] = 25
    out["strip"] = image(strip + np.random.default_rng(19).normal(0, 3, strip.shape))
    column = np.full((1400, 2), 230.0)
    column[600:800] = 25  # a short bar low in a tall strip: looked at again around it
    out["column"] = image(column + np.random.default_rng(20).normal(0, 3, column.shape))
    # small, faint and noisy: the paper's noise sets the ink's floor; a dim room, the paper dark
    yy, xx = np.mgrid[0:100, 0:120] / np.array([100, 120])[:, None, None]
    out["small_faint_noisy"] = photo(100, 120, "5", (15, 35, 75, 55), 6, 150, 215 - 25 * xx, noise=5, seed=16)
    # smaller still, noisier and lit from a corner: its paper's noise measured on every pixel
    yy, xx = np.mgrid[0:70, 0:80] / np.array([70, 80])[:, None, None]
    corner_lamp = 235 * (1.0 - 0.45 * yy**2 - 0.35 * xx + 0.3 * xx * yy)
    out["small_noisy_lamp"] = photo(70, 80, "2", (8, 20, 52, 40), 3, corner_lamp * 0.47, corner_lamp, 10, 63)
    yy, xx = np.mgrid[0:240, 0:320] / np.array([240, 320])[:, None, None]
    out["dim_room"] = photo(240, 320, "4", (30, 100, 180, 120), 8, 2, 30 - 18 * xx, noise=0.8, seed=17)
    # shadows the quadratic cannot follow: a sharp one at an edge the local paper's blocks do
    # not tile, and in the corner of thumbnails (blocks of the least size)
    yy, xx = np.mgrid[0:250, 0:330] / np.array([250, 330])[:, None, None]
    edge = 230 * (1 - 0.45 / (1 + np.exp(-(xx - 0.85) * 25)))
    out["shadow_at_the_edge"] = photo(250, 330, "0", (40, 99, 175, 99), 10, 35, edge, seed=3)
    for h, w in [(56, 48), (50, 58)]:
        yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
        corner = 1 / (1 + np.exp(-(xx - 0.6) * 10)) / (1 + np.exp(-(yy - 0.6) * 10))
        out[f"shaded_thumbnail_{h}x{w}"] = photo(
            h, w, "0", (6, 10, h - 14, w - 20), 4, 20, 230 * (1 - 0.35 * corner), seed=9
        )
    # faint lines a little slanted, on a page and on a thumbnail: where the line finder's
    # averaging along a row (an eighth of the width, at least 9 pixels) decides what is line
    out["faint_slanted_rules"] = photo(
        360, 480, "7", (51, 120, 257, 240), 4, 40, slanted(360, 480, 40, 20, 0.05), 2, 6
    )
    out["faint_slanted_thumbnail"] = photo(
        60, 64, "4", (7, 16, 45, 32), 2, 40, slanted(60, 64, 12, 40, 0.04), 2, 44
    )
    # where the path changes: exactly the working size with the digit low in it (not looked at
    # again), exactly FIND_SIZE (shrunk, not pooled, then looked at again around the digit), and
    # a drawing larger than the working size with the digit low in it (looked at again, as one)
    out["low_at_256"] = photo(192, 256, "2", (120, 100, 40, 30), 3, 30, 225, 3, 26)
    out["low_on_512"] = photo(384, 512, "4", (150, 200, 60, 44), 4, 35, 228, 2, 30)
    out["drawn_low_on_big_canvas"] = image(255 - 255 * pen(400, 400, "7", (280, 170, 80, 60), 3))
    for width in (1, 3, 6):  # clean drawings (one exact paper shade): thickened by a disk of each size
        out[f"drawn_width_{width}"] = image(255 - 255 * pen(280, 280, "7", (30, 50, 220, 170), width))
    return out


def prepared() -> dict[str, np.ndarray]:
    return {name: to_mnist(img).numpy() for name, img in cases().items()}


@pytest.mark.skipif(os.environ.get("DIGITLEARN_REPIN") != "1", reason="re-pins with DIGITLEARN_REPIN=1")
def test_repin():
    """Writes the golden file from the preparation as it is (see the module's docstring)."""
    GOLDEN.parent.mkdir(exist_ok=True)
    np.savez_compressed(GOLDEN, **{k: v.astype(np.float32) for k, v in prepared().items()})


def test_the_pinned_images_are_digits():
    """The pinned set is worth pinning: each one prepared is an MNIST-like digit, full ink at its
    darkest, centred, not a blank or a blot."""
    for name, x in np.load(GOLDEN).items():
        t = torch.from_numpy(x)
        assert float(t.max()) == pytest.approx(1.0), name
        assert 25 < int((t > 0.5).sum()) < 300, name
