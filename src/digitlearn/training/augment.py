"""Data augmentation: small random shifts, rotations and zooms of whole batches, on the device.

Each training batch gets a fresh random affine transform per image, applied with one
`affine_grid` + `grid_sample` for the whole batch: no per-image Python, no copy to the CPU.
Digits stay digits under a few pixels of shift or degrees of rotation, so the model sees new
images every epoch and learns what does not depend on exact position.
"""

import math

import torch
import torch.nn.functional as F

from ..errors import DigitlearnError
from .events import Callback, Learner


def random_affine(
    xb: torch.Tensor,
    max_rotate: float = 10.0,
    max_shift: float = 2.0,
    max_zoom: float = 0.1,
    fill: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Rotate each image of (N, C, H, W) `xb` by up to `max_rotate` degrees, shift it by up to
    `max_shift` pixels each way and zoom by a factor in [1 - max_zoom, 1 + max_zoom].

    Pixels that come in from outside the image take the value `fill` (the background).
    """
    if xb.ndim != 4:
        raise DigitlearnError(f"random_affine needs images shaped (N, C, H, W), not {tuple(xb.shape)}")
    n, _, h, w = xb.shape

    def uniform(limit: float) -> torch.Tensor:  # n values in [-limit, limit]
        return (torch.rand(n, generator=generator) * 2 - 1).mul_(limit)

    angle = uniform(math.radians(max_rotate))
    scale = 1 / (1 + uniform(max_zoom))  # the grid maps output to input: a bigger grid shrinks
    cos, sin = angle.cos() * scale, angle.sin() * scale
    # affine_grid's coordinates run from -1 to 1 across the image: one pixel is 2 / size
    tx, ty = uniform(2 * max_shift / w), uniform(2 * max_shift / h)
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    theta = theta.to(device=xb.device, dtype=torch.float32)
    grid = F.affine_grid(theta, [n, xb.shape[1], h, w], align_corners=False)
    out = F.grid_sample(xb.float() - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.add_(fill).to(xb.dtype)


class Augment(Callback):
    """Replaces each training batch's images with randomly shifted, rotated and zoomed copies.

    Validation batches are left alone. `fill` defaults to the value a blank (0) pixel has after
    the DataLoaders' normalisation, so new borders look like the background. The first
    `plain_ends` epochs and the last `plain_ends` train on the images as they are: a model learns
    the digits faster from them at the start, and ends on images like those it will be asked about.
    """

    order = 5  # before anything looks at the batch

    def __init__(
        self,
        max_rotate: float = 10.0,
        max_shift: float = 2.0,
        max_zoom: float = 0.1,
        fill: float | None = None,
        generator: torch.Generator | None = None,
        plain_ends: int = 0,
    ) -> None:
        if isinstance(plain_ends, bool) or not isinstance(plain_ends, int) or plain_ends < 0:
            raise DigitlearnError(
                f"Augment's plain_ends is a number of epochs, 0 or more, not {plain_ends!r}"
            )
        self.max_rotate, self.max_shift, self.max_zoom = max_rotate, max_shift, max_zoom
        self.fill, self.generator, self.plain_ends = fill, generator, plain_ends
        self._fill = 0.0

    def before_fit(self, learn: Learner) -> None:
        fmt = learn.dls.input_format
        if fmt is not None and fmt.flat:
            raise DigitlearnError(
                "augmentation needs image-shaped inputs: make the DataLoaders with flat=False"
            )
        blank = -fmt.mean / fmt.std if fmt is not None else 0.0  # a 0 pixel, as the model sees it
        self._fill = blank if self.fill is None else self.fill

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()} if self.generator is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if "generator" in state:
            self.generator.set_state(state["generator"])

    def augments(self, epoch: int, n_epoch: int) -> bool:
        """Whether epoch `epoch` (from 0) of `n_epoch` trains on augmented images: all but the
        first and the last `plain_ends`."""
        ends = self.plain_ends
        return not (ends and (epoch < ends or epoch >= n_epoch - ends))

    def before_batch(self, learn: Learner) -> None:
        if learn.training and self.augments(learn.epoch, learn.n_epoch):
            learn.xb = random_affine(
                learn.xb, self.max_rotate, self.max_shift, self.max_zoom, self._fill, self.generator
            )

    def __repr__(self) -> str:
        plain = f", plain_ends={self.plain_ends}" if self.plain_ends else ""
        limits = f"max_rotate={self.max_rotate}, max_shift={self.max_shift}, max_zoom={self.max_zoom}"
        return f"Augment({limits}{plain})"
