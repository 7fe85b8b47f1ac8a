"""A digit test set that is not MNIST: digits rendered from fonts, the way people's images vary.

Each image draws one digit from one of the fonts matplotlib ships (so the set is the same on
every machine), at a random size and position on a canvas of random shape, in dark-on-light or
light-on-dark colours, bolder or thinner, slightly turned, with uneven lighting, blur, noise and
sometimes JPEG compression. Everything is drawn from one seeded generator.
"""

import io
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Italic.ttf",
    "STIXGeneral.ttf",
    "STIXGeneralItalic.ttf",
    "cmr10.ttf",
    "cmss10.ttf",
)
FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def _colour(rng: np.random.Generator, lo: float, hi: float) -> tuple[int, int, int]:
    """A tinted colour whose brightness lies in [lo, hi]."""
    level = rng.uniform(lo, hi)
    tint = rng.uniform(-0.12, 0.12, 3)
    return tuple(int(255 * np.clip(level + t, 0, 1)) for t in tint)


def render_digit(digit: int, rng: np.random.Generator) -> Image.Image:
    """One RGB image of `digit`, with every variation drawn from `rng`."""
    width, height = (int(v) for v in rng.integers(48, 360, 2))
    dark_on_light = rng.random() < 0.5
    paper = _colour(rng, 0.7, 1.0) if dark_on_light else _colour(rng, 0.0, 0.3)
    ink = _colour(rng, 0.0, 0.3) if dark_on_light else _colour(rng, 0.7, 1.0)
    side = min(width, height)
    size = int(side * rng.uniform(0.45, 1.0))
    font = ImageFont.truetype(str(FONT_DIR / FONTS[rng.integers(len(FONTS))]), size)
    stroke = int(rng.choice([0, 0, 1, 2, 3]) * size / 60)
    # draw on a square larger than the glyph, turn it, then paste it somewhere on the canvas
    glyph = Image.new("L", (2 * size, 2 * size), 0)
    ImageDraw.Draw(glyph).text(
        (size, size), str(digit), font=font, fill=255, anchor="mm", stroke_width=stroke, stroke_fill=255
    )
    glyph = glyph.rotate(rng.uniform(-8, 8), resample=Image.Resampling.BICUBIC)
    glyph = glyph.crop(glyph.getbbox())
    if glyph.width > width - 4 or glyph.height > height - 4:  # keep the whole digit on the canvas
        k = min((width - 4) / glyph.width, (height - 4) / glyph.height)
        glyph = glyph.resize((max(1, int(glyph.width * k)), max(1, int(glyph.height * k))))
    x = int(rng.integers(2, width - glyph.width - 1))
    y = int(rng.integers(2, height - glyph.height - 1))
    mask = Image.new("L", (width, height), 0)
    mask.paste(glyph, (x, y))
    img = Image.composite(
        Image.new("RGB", (width, height), ink), Image.new("RGB", (width, height), paper), mask
    )
    a = np.asarray(img, dtype=np.float32) / 255
    if rng.random() < 0.5:  # uneven lighting: the page darkens by up to half towards one side
        angle = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:height, 0:width]
        ramp = np.cos(angle) * xx + np.sin(angle) * yy
        ramp = (ramp - ramp.min()) / max(np.ptp(ramp), 1)
        a = a * (1 - rng.uniform(0.2, 0.5) * ramp)[..., None]
    if rng.random() < 0.3:  # dust: a few specks of ink colour
        for _ in range(int(rng.integers(1, 6))):
            cy, cx, r = rng.integers(0, height), rng.integers(0, width), max(1, side // 150)
            a[max(0, cy - r) : cy + r, max(0, cx - r) : cx + r] = np.asarray(ink) / 255
    img = Image.fromarray((np.clip(a, 0, 1) * 255).astype(np.uint8))
    if rng.random() < 0.5:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.5) * side / 100))
    a = np.asarray(img, dtype=np.float32) / 255
    a = a + rng.normal(0, rng.uniform(0, 0.06), a.shape[:2])[..., None]
    img = Image.fromarray((np.clip(a, 0, 1) * 255).astype(np.uint8))
    if rng.random() < 0.3:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=int(rng.integers(50, 90)))
        img = Image.open(io.BytesIO(buf.getvalue()))
    return img


def font_digits(per_digit: int = 40, seed: int = 0) -> tuple[list[Image.Image], list[int]]:
    """`per_digit` rendered images of each digit 0-9, and their labels."""
    rng = np.random.default_rng(seed)
    labels = [d for _ in range(per_digit) for d in range(10)]
    return [render_digit(d, rng) for d in labels], labels
