"""Real handwriting photographed small: MNIST test digits put on photo-like pages.

MNIST's digits are real handwriting, so its test split (never seen in training) makes a fair
test of reading people's digits. Each digit (or a number of 2-5 of them side by side, some
touching) is upscaled to a given fraction of the page's height, drawn as ink at a random place
on a large page with paper colour and texture, uneven lighting, sometimes ruled lines, camera
blur and noise, and sometimes JPEG compression; a fifth of the pages are light ink on a dark
board. Everything is drawn from one seeded generator.
"""

import io

import numpy as np
from PIL import Image
from scipy import ndimage


def _stroke(digit: np.ndarray, height: int, rng: np.random.Generator) -> np.ndarray:
    """An MNIST digit (28x28 uint8) as a pen stroke mask in [0, 1], cropped to its ink and
    upscaled to `height` pixels tall; a higher threshold draws a thinner pen."""
    rows, cols = np.nonzero(digit > 40)
    a = digit[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].astype(np.float32) / 255
    k = height / a.shape[0]
    width = max(1, round(a.shape[1] * k))
    up = np.asarray(Image.fromarray(a, mode="F").resize((width, height), Image.Resampling.BICUBIC))
    level = rng.uniform(0.25, 0.55)
    edge = min(max(0.05, 1.5 / k), level)  # about a pixel and a half of soft edge at the final size
    return np.clip((up - level) / edge + 0.5, 0, 1)


def _number(digits: list[np.ndarray], height: int, rng: np.random.Generator) -> np.ndarray:
    """Digits side by side, with gaps from a slight overlap (touching) to a third of the height."""
    strokes = [_stroke(d, height, rng) for d in digits]
    gaps = [int(rng.uniform(-0.08, 0.35) * height) for _ in strokes[1:]]
    lift = [int(rng.uniform(-0.05, 0.05) * height) for _ in strokes]
    width = sum(s.shape[1] for s in strokes) + sum(gaps) + 2
    out = np.zeros((height + 2 * max(map(abs, lift)) + 2, max(width, 1)), np.float32)
    x = 0
    for s, g, dy in zip(strokes, [0, *gaps], lift, strict=True):
        x = max(0, x + g)
        y = max(map(abs, lift)) + dy
        region = out[y : y + s.shape[0], x : x + s.shape[1]]
        np.maximum(region, s[: region.shape[0], : region.shape[1]], out=region)
        x += s.shape[1]
    return out


def _paper(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Paper brightness: uneven lighting (a gradient and a soft spot) and a faint texture."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * xx / width + np.sin(angle) * yy / height
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    light = 1 - rng.uniform(0, 0.45) * ramp
    cy, cx = rng.uniform(0, height), rng.uniform(0, width)
    spot = np.exp(-(((yy - cy) / height) ** 2 + ((xx - cx) / width) ** 2) / rng.uniform(0.05, 0.5))
    light = light * (1 - rng.uniform(0, 0.25) * (1 - spot))
    texture = rng.normal(0, 1, (height // 16 + 2, width // 16 + 2)).astype(np.float32)
    texture = Image.fromarray(texture, mode="F").resize((width, height), Image.Resampling.BILINEAR)
    texture = np.asarray(texture)
    return light * (1 + rng.uniform(0, 0.04) * texture)


def _ruled(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Ruled lines (and sometimes a margin line) as a mask in [0, 1], slightly tilted."""
    out = np.zeros((height, width), np.float32)
    spacing = rng.uniform(0.04, 0.09) * height
    thick = max(1, round(rng.uniform(0.001, 0.003) * height))
    tilt = rng.uniform(-0.02, 0.02)
    xs = np.arange(width)
    for y0 in np.arange(rng.uniform(0, spacing), height, spacing):
        ys = np.round(y0 + tilt * (xs - width / 2)).astype(int)
        for t in range(thick):
            ok = (ys + t >= 0) & (ys + t < height)
            out[ys[ok] + t, xs[ok]] = 1
    if rng.random() < 0.4:
        x0 = int(rng.uniform(0.05, 0.2) * width)
        out[:, x0 : x0 + thick] = 1
    return out


def _photo(mark: np.ndarray, rng: np.random.Generator, fraction: float) -> Image.Image:
    """`mark` (an ink mask whose height is `fraction` of the page's) drawn on a photographed page."""
    h = max(mark.shape[0], int(mark.shape[0] / fraction))
    height = max(h, 60)
    width = max(mark.shape[1] + 8, int(height * rng.uniform(1.0, 1.45)))
    y = int(rng.integers(0, max(1, height - mark.shape[0] + 1)))
    x = int(rng.integers(0, max(1, width - mark.shape[1] + 1)))
    alpha = np.zeros((height, width), np.float32)
    alpha[y : y + mark.shape[0], x : x + mark.shape[1]] = mark[: height - y, : width - x]
    dark_on_light = rng.random() < 0.8
    paper_shade = rng.uniform(0.75, 0.97) if dark_on_light else rng.uniform(0.1, 0.3)
    ink_shade = rng.uniform(0.05, 0.4) if dark_on_light else rng.uniform(0.75, 0.95)
    gray = paper_shade + (ink_shade - paper_shade) * alpha
    if dark_on_light and rng.random() < 0.4:
        line = _ruled(rng, height, width) * rng.uniform(0.1, 0.3) * (1 - alpha)
        gray = gray - line
    gray = gray * _paper(rng, height, width)
    tint = 1 + rng.uniform(-0.08, 0.08, 3)
    rgb = np.clip(gray[..., None] * tint, 0, 1)
    blur = rng.uniform(0, 1.2) * max(1.0, height / 1000)
    if blur > 0.3:
        rgb = ndimage.gaussian_filter(rgb, (blur, blur, 0))
    rgb = rgb + rng.normal(0, rng.uniform(0.005, 0.03), (height, width))[..., None]
    img = Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8))
    if rng.random() < 0.5:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=int(rng.integers(60, 92)))
        img = Image.open(io.BytesIO(buf.getvalue()))
    return img


def photographed_digit(digit: np.ndarray, rng: np.random.Generator, fraction: float, page: int = 1200):
    """One MNIST digit `fraction` of the page's height tall, on a page about `page` pixels high."""
    return _photo(_stroke(digit, max(8, round(fraction * page)), rng), rng, fraction)


def photographed_number(
    digits: list[np.ndarray], rng: np.random.Generator, fraction: float, page: int = 1200
) -> Image.Image:
    """MNIST digits side by side as one number, `fraction` of the page's height tall."""
    return _photo(_number(digits, max(8, round(fraction * page)), rng), rng, fraction)
