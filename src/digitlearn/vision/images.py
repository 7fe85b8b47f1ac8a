"""Opening images safely and making them gray: the one way every path reads an image, whether a
dataset's file, a person's photo or an upload to the web API.

- Only PNG, JPEG, BMP, GIF, WebP and TIFF are opened. Pillow knows more formats, and some run
  other programs (EPS runs Ghostscript), so no file ever reaches those plugins, whatever its name.
- Size is checked from the header, before decoding: at most MAX_PIXELS pixels, and at most
  DECODE_BUDGET bytes for the decoded pixels. An image over WORK_SIDE a side is shrunk by a whole
  factor while it is decoded (JPEG) or right after, before any other copy, so every copy made
  from it (EXIF rotation, mode conversion, floats) is of at most WORK_SIDE x WORK_SIDE pixels.
- Everything that can fail on a strange file (decoding, the first frame of an animation, the
  EXIF rotation, the conversion to gray) happens inside one guard, and fails as an ImageError
  that names the file.
"""

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import DigitlearnError

# (cameras' MPO files open as JPEG)
FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF")
MAX_PIXELS = 50_000_000  # larger is a decompression bomb or not a digit
DECODE_BUDGET = 128 * 2**20  # bytes for an image's decoded pixels, checked before decoding
WORK_SIDE = 2048  # a larger image is shrunk to this side before any copy: a digit needs far less
# bytes per pixel of a mode, decoded (4 for the others)
_BYTES = {"1": 1, "L": 1, "P": 1, "LA": 2, "PA": 2, "La": 2, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}

ImageFile = str | os.PathLike | bytes
ORIENTATION = 0x0112  # the EXIF tag


class ImageError(DigitlearnError):
    """A file or upload that is not an image we can read."""


def describe(source: object) -> str:
    """How an error names the image: its path, or what it was."""
    if isinstance(source, str | os.PathLike):
        return str(source)
    return "the uploaded data" if isinstance(source, bytes) else "the image"


def _draft(img: Image.Image, gray: bool) -> Image.Image:
    """A JPEG can be decoded straight to 1/2, 1/4 or 1/8 of its size, and a colour one straight
    to gray (libjpeg keeps its luminance and skips the colour conversion): ask for no more than
    needed. (Pillow takes one such request per image.)"""
    if img.format != "JPEG":
        return img
    mode = "L" if gray and img.mode == "RGB" else img.mode
    size = (WORK_SIDE, WORK_SIDE) if max(img.size) > WORK_SIDE else None
    if size or mode != img.mode:
        img.draft(mode, size)
    return img


def _shrink(img: Image.Image) -> Image.Image:
    """At most WORK_SIDE pixels a side, by a whole factor (a box filter: fast, and no copy of the
    full image beyond the decoded one)."""
    factor = -(-max(img.size) // WORK_SIDE)  # ceiling division
    return img.reduce(factor) if factor > 1 else img


def open_image(source: ImageFile, gray: bool = False) -> Image.Image:
    """Open an image file (or its bytes) safely and decode it: its first frame, shrunk if huge,
    turned upright as its EXIF says. Raises ImageError naming the file. `gray`: the caller wants
    only its gray levels, which a colour JPEG decodes to faster (in mode L)."""
    name = describe(source)
    try:
        # closed by the `with` below, once the image is decoded
        fp = io.BytesIO(source) if isinstance(source, bytes) else Path(source).open("rb")  # noqa: SIM115
    except OSError as e:
        raise ImageError(f"{name}: cannot read it ({e.strerror or e})") from None
    with fp:
        Image.init()  # registers every plugin, so `formats` can name them (the first call only)
        try:
            img = Image.open(fp, formats=FORMATS)
            if img.width * img.height > MAX_PIXELS:
                raise ImageError(f"{name}: {img.width}x{img.height} pixels is too large for a digit image")
            img.seek(0)  # an animated GIF or multi-page TIFF: its first frame
            img = _draft(img, gray)
            if img.width * img.height * _BYTES.get(img.mode, 4) > DECODE_BUDGET:
                raise ImageError(
                    f"{name}: {img.width}x{img.height} pixels in mode {img.mode} is too large to decode"
                )
            img.load()  # decode now, while the file is open, so truncated files fail here
            img = _shrink(img)
            if img.getexif().get(ORIENTATION, 1) != 1:  # phones store the rotation apart
                img = ImageOps.exif_transpose(img)
        except UnidentifiedImageError:
            raise ImageError(f"{name}: not an image in a known format ({', '.join(FORMATS)})") from None
        except (OSError, SyntaxError, ValueError, TypeError, Image.DecompressionBombError) as e:
            raise ImageError(f"{name}: cannot decode the image ({e})") from None
    return img


def to_gray(img: Image.Image, background: float | None = None) -> np.ndarray:
    """Any Pillow image as float32 luminance in [0, 1].

    Transparent pixels take the shade `background`; None picks the shade that contrasts with the
    opaque pixels, so dark or white ink on a transparent canvas both survive. 16-bit images are
    scaled from their full range (or from 0-255, when no value passes 255); float images ("F")
    from 0-1 if they fit it.
    """
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):  # 16-bit and float grayscale
        a = np.asarray(img, dtype=np.float32)
        top = 1.0 if img.mode == "F" and a.max() <= 1 else 255.0 if a.max() <= 255 else 65535.0
        return np.clip(a / top, 0, 1)
    if "A" in img.getbands() or img.mode == "PA" or "transparency" in img.info:
        if "A" in img.getbands() and img.getchannel("A").getextrema()[0] == 255:
            # opaque all over, as a canvas's drawing on white: its gray alone, in one pass
            return np.divide(np.asarray(img.convert("L")), np.float32(255), dtype=np.float32)
        la = np.asarray(img.convert("LA"), dtype=np.float32) / 255
        gray, alpha = la[..., 0], la[..., 1]
        if background is None:
            opaque = alpha > 0.5
            ink_is_dark = gray[opaque].mean() < 0.5 if opaque.any() else True
            background = 1.0 if ink_is_dark else 0.0
        return gray * alpha + background * (1 - alpha)
    # in one pass, as uint8 / 255 in float32 (a conversion to float, then a division, is two)
    return np.divide(
        np.asarray(img if img.mode == "L" else img.convert("L")), np.float32(255), dtype=np.float32
    )


def read_gray(source: object, background: float | None = None) -> np.ndarray:
    """Any image a user hands over as float32 gray in [0, 1], the one way every path reads one.

    A file path or its bytes (opened with `open_image`, converted inside the same guard), a
    Pillow image, or an array or tensor (see `gray_array`). Anything else is one ImageError
    saying what was expected.
    """
    if isinstance(source, str | os.PathLike | bytes):
        img = open_image(source, gray=True)  # at most WORK_SIDE a side by now: every copy below is small
    elif isinstance(source, Image.Image):
        img = source
    elif isinstance(source, np.ndarray) or hasattr(source, "detach"):  # a torch tensor, without torch
        return gray_array(source)
    else:
        raise ImageError(
            f"cannot read an image from {type(source).__name__}: give a file path, its bytes, a PIL image, "
            "or an H x W array"
        )
    try:
        return to_gray(img, background)
    except (OSError, ValueError, TypeError) as e:
        raise ImageError(f"{describe(source)}: cannot convert the image to gray ({e})") from None


def gray_array(source: object) -> np.ndarray:
    """An array or tensor as float32 gray in [0, 1]: H x W or 1 x H x W in uint8, any integer type
    (pixels 0-255, scaled as uint8 is) or floats in [0, 1]; or H x W x 3 (RGB) or x 4 (RGBA).
    A batch, or an array of another shape or kind, is refused in one sentence."""
    a = source.detach().cpu().numpy() if hasattr(source, "detach") else np.asarray(source)
    shape = tuple(a.shape)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    elif a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    colour = a.ndim == 3 and a.shape[-1] in (3, 4)
    if a.ndim == 4 or (a.ndim == 3 and not colour):
        raise ImageError(
            f"an image is H x W, 1 x H x W or H x W x 3/4 (RGB, RGBA), not {shape}: for a batch of "
            "images, use predict_many"
        )
    if (a.ndim != 2 and not colour) or a.size == 0:
        raise ImageError(f"an image is an H x W array with pixels in it, not {shape}")
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    if a.dtype.kind in "iu":
        if a.min() < 0 or a.max() > 255:
            raise ImageError(f"integer pixels are 0 to 255, not {a.min()} to {a.max()} ({a.dtype})")
        a = a.astype(np.float32) / 255
    elif a.dtype.kind == "f":
        if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
            raise ImageError(
                f"float pixels are 0 to 1, not {a.min():g} to {a.max():g} ({a.dtype}): for 0-255, give uint8"
            )
        a = a.astype(np.float32)
    else:
        raise ImageError(f"pixels are numbers (uint8, integers 0-255 or floats 0-1), not {a.dtype}")
    if colour:  # through Pillow, so colour and transparency become gray as they do for files
        return to_gray(
            Image.fromarray(np.round(a * 255).astype(np.uint8), "RGB" if a.shape[-1] == 3 else "RGBA")
        )
    return a
