"""Augmentation: batched random affine transforms of training images only."""

import pytest
import torch
from torch import nn

from digitlearn import DataLoader, DataLoaders, DigitlearnError, Learner, cross_entropy
from digitlearn.training import Augment, Callback, random_affine


def dot_images(n: int, size: int = 16) -> torch.Tensor:
    """(n, 1, size, size) black images with one white 2x2 square in the middle."""
    x = torch.zeros(n, 1, size, size)
    x[:, :, size // 2 - 1 : size // 2 + 1, size // 2 - 1 : size // 2 + 1] = 1.0
    return x


def centre_of_mass(x: torch.Tensor) -> torch.Tensor:
    """(n, 2) row and column of each image's centre of mass."""
    h, w = x.shape[-2:]
    mass = x.sum((-1, -2, -3))
    rows = (x.sum((1, 3)) * torch.arange(h)).sum(1) / mass
    cols = (x.sum((1, 2)) * torch.arange(w)).sum(1) / mass
    return torch.stack([rows, cols], 1)


def test_no_change_when_every_limit_is_zero():
    x = torch.rand(4, 1, 12, 10)
    torch.testing.assert_close(random_affine(x, 0, 0, 0), x)


def test_shifts_stay_within_the_limit_and_differ_per_image():
    x = dot_images(200)
    g = torch.Generator().manual_seed(0)
    moved = centre_of_mass(random_affine(x, max_rotate=0, max_shift=2, max_zoom=0, generator=g)) - 7.5
    assert moved.abs().max() <= 2.0 + 1e-4 and moved.abs().max() > 1.5  # the whole range is used
    assert moved[:, 0].std() > 0.5 and moved[:, 1].std() > 0.5  # each image its own shift
    assert abs(float(moved.mean())) < 0.2  # no drift in either direction


def test_rotation_turns_a_bar():
    x = torch.zeros(64, 1, 21, 21)
    x[:, :, 10, 2:19] = 1.0  # a horizontal bar through the centre
    out = random_affine(x, max_rotate=30, max_shift=0, max_zoom=0, generator=torch.Generator().manual_seed(1))
    rows = torch.arange(21.0).view(1, 21, 1)
    spread = ((out[:, 0] * (rows - 10) ** 2).sum((1, 2)) / out[:, 0].sum((1, 2))).sqrt()
    assert spread.max() > 1.5 and spread.min() < 0.5  # tilted bars reach other rows; some barely turn
    torch.testing.assert_close(out.sum((1, 2, 3)), x.sum((1, 2, 3)), rtol=0.1, atol=0)  # ink is kept


def test_new_borders_take_the_fill_value():
    x = torch.full((8, 1, 10, 10), -0.42)  # a blank image after normalisation
    torch.testing.assert_close(random_affine(x, 20, 3, 0.2, fill=-0.42), x)
    assert random_affine(x, 20, 3, 0.2, fill=0.0).max() > -0.4  # a zero fill shows up at the edges


def test_same_generator_same_result_and_shape_errors():
    x = torch.rand(5, 1, 8, 8)
    a = random_affine(x, generator=torch.Generator().manual_seed(3))
    b = random_affine(x, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == x.shape and a.dtype == x.dtype
    with pytest.raises(DigitlearnError, match=r"needs images shaped \(N, C, H, W\), not \(5, 64\)"):
        random_affine(x.reshape(5, 64))


class Seen(Callback):
    order = 10  # after Augment

    def __init__(self) -> None:
        self.train, self.valid = [], []

    def before_batch(self, learn) -> None:
        (self.train if learn.training else self.valid).append(learn.xb.clone())


def image_dls(flat: bool = False) -> DataLoaders:
    x = (dot_images(32) - 0.5) / 0.25  # normalised as the format below says: background -2
    y = torch.zeros(32, dtype=torch.long)
    fmt = {"height": 16, "width": 16, "flat": flat, "mean": 0.5, "std": 0.25}
    return DataLoaders(DataLoader(x, y, bs=8), DataLoader(x, y, bs=8), ["a", "b"], fmt)


def test_augment_changes_training_batches_only_and_fills_with_the_background():
    seen = Seen()
    model = nn.Sequential(nn.Flatten(), nn.Linear(256, 2))
    learn = Learner(
        image_dls(), model, loss_func=cross_entropy, cbs=[Augment(max_shift=3), seen], progress=False
    )
    learn.fit(1, 0.01)
    x = (dot_images(8) - 0.5) / 0.25
    assert len(seen.valid) == 4 and all(torch.equal(b, x) for b in seen.valid)
    assert len(seen.train) == 4 and not any(torch.equal(b, x) for b in seen.train)
    # borders brought in by a shift are filled with the normalised background, (0 - 0.5) / 0.25
    for b in seen.train:
        torch.testing.assert_close(b[:, :, :3], torch.full_like(b[:, :, :3], -2.0))
        assert float(b.min()) >= -2.0 - 1e-5 and float(b.max()) <= 2.0 + 1e-5


def test_augment_refuses_flat_inputs():
    learn = Learner(image_dls(flat=True), nn.Linear(1, 2), cbs=[Augment()], progress=False)
    with pytest.raises(
        DigitlearnError,
        match=r"^augmentation needs image-shaped inputs: make the DataLoaders with flat=False$",
    ):
        learn.fit(1)


def test_plain_ends_leave_the_first_and_last_epochs_as_they_are():
    seen = Seen()
    model = nn.Sequential(nn.Flatten(), nn.Linear(256, 2))
    learn = Learner(
        image_dls(),
        model,
        loss_func=cross_entropy,
        cbs=[Augment(max_shift=3, plain_ends=1), seen],
        progress=False,
    )
    learn.fit(4, 0.01)
    x = (dot_images(8) - 0.5) / 0.25
    plain = [all(torch.equal(b, x) for b in seen.train[i : i + 4]) for i in range(0, 16, 4)]
    changed = [not any(torch.equal(b, x) for b in seen.train[i : i + 4]) for i in range(0, 16, 4)]
    assert plain == [True, False, False, True] and changed == [False, True, True, False]
    assert [Augment(plain_ends=2).augments(e, 5) for e in range(5)] == [False, False, True, False, False]
    assert all(Augment().augments(e, 3) for e in range(3))
    assert "plain_ends=1" in repr(learn.cbs[0] if isinstance(learn.cbs[0], Augment) else learn.cbs[1])


@pytest.mark.parametrize("bad", [-1, 1.5, True, "1"])
def test_plain_ends_is_checked(bad):
    with pytest.raises(DigitlearnError, match=f"plain_ends is a number of epochs, 0 or more, not {bad!r}"):
        Augment(plain_ends=bad)


def disc(size: int = 32, radius: float = 4.0) -> torch.Tensor:
    """(1, 1, size, size): a bright disc in the middle."""
    r = torch.arange(size) - (size - 1) / 2
    return ((r[:, None] ** 2 + r[None, :] ** 2) <= radius**2).float()[None, None]


def test_rotations_and_zooms_keep_shapes_and_zoom_within_the_limit():
    x = disc().repeat(300, 1, 1, 1)
    g = torch.Generator().manual_seed(1)
    out = random_affine(x, max_rotate=90, max_shift=0, max_zoom=0.5, generator=g)
    area = out.sum((1, 2, 3)) / x[0].sum()  # a zoom by z scales the area by z squared
    assert 0.5**2 * 0.9 <= float(area.min()) <= 0.3 and 2.0 <= float(area.max()) <= 1.5**2 * 1.1
    # a disc stays a disc: no stretching along one direction (the ink's second moments stay equal)
    h = torch.arange(32.0) - 15.5
    for img in out[:50, 0]:
        m = img.sum()
        rr, cc = (img.sum(1) * h**2).sum() / m, (img.sum(0) * h**2).sum() / m
        rc = (img * h[:, None] * h[None, :]).sum() / m
        assert abs(float(rr - cc)) < 0.05 * float(rr + cc) and abs(float(rc)) < 0.05 * float(rr + cc)


def test_the_default_limits_and_the_dtype():
    assert repr(Augment()) == "Augment(max_rotate=10.0, max_shift=2.0, max_zoom=0.1)"
    x = dot_images(400, size=32)
    moved = centre_of_mass(random_affine(x, generator=torch.Generator().manual_seed(0))) - 15.5
    assert 1.6 < float(moved.abs().max()) <= 2.0 * 1.1 + 0.3  # shifts of up to 2 pixels (zoomed up to 10%)
    bar = torch.zeros(400, 1, 32, 32)
    bar[:, :, 4:28, 15:17] = 1.0
    h = torch.arange(32.0) - 15.5

    def angles(turned: torch.Tensor) -> torch.Tensor:
        """Each bar's angle from the vertical, in degrees, from its second moments."""
        m = turned.sum((1, 2, 3))
        rr = (turned[:, 0].sum(2) * h**2).sum(1) / m
        cc = (turned[:, 0].sum(1) * h**2).sum(1) / m
        rc = (turned[:, 0] * h[:, None] * h[None, :]).sum((1, 2)) / m
        return torch.rad2deg(0.5 * torch.atan2(2 * rc, rr - cc)).abs()

    g = torch.Generator().manual_seed(0)
    assert 8.0 < float(angles(random_affine(bar, max_shift=0, max_zoom=0, generator=g)).max()) <= 10.5
    # a zoom does not change the angle
    assert float(angles(random_affine(bar, max_shift=0, max_zoom=0.2, generator=g)).max()) <= 10.5
    assert random_affine(x[:2].double()).dtype == torch.float64


def test_the_generator_alone_decides_and_its_state_is_saved():
    def batches(cb: Augment) -> list[torch.Tensor]:
        seen = Seen()
        learn = Learner(
            image_dls(),
            nn.Sequential(nn.Flatten(), nn.Linear(256, 2)),
            loss_func=cross_entropy,
            cbs=[cb, seen],
            progress=False,
        )
        learn.fit(1, 0.0)
        return seen.train

    torch.manual_seed(0)
    first = batches(Augment(generator=torch.Generator().manual_seed(7)))
    torch.manual_seed(1)  # another global state: the same batches
    second = batches(Augment(generator=torch.Generator().manual_seed(7)))
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    saved = Augment(generator=torch.Generator().manual_seed(3))
    saved.generator.manual_seed(3)
    state = saved.state_dict()
    later = batches(saved)
    restored = Augment(generator=torch.Generator().manual_seed(99))
    restored.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(later, batches(restored), strict=True))
    assert Augment().state_dict() == {}


def test_an_explicit_fill_and_the_fill_without_a_format():
    def first_rows(dls: DataLoaders, cb: Augment) -> torch.Tensor:
        """The top row of every augmented training image: where a downward shift brings in the fill."""
        seen = Seen()
        learn = Learner(
            dls,
            nn.Sequential(nn.Flatten(), nn.Linear(256, 2)),
            loss_func=cross_entropy,
            cbs=[cb, seen],
            progress=False,
        )
        learn.fit(1, 0.0)
        return torch.cat(seen.train)[:, 0, 0]

    # the images' background is -2 as normalised; a fill of 0.5 comes in where they moved down
    rows = first_rows(image_dls(), Augment(max_rotate=0, max_shift=3, max_zoom=0, fill=0.5))
    assert float(rows.max()) > 0.4 and float(rows.min()) >= -2.0 - 1e-5
    x, y = dot_images(32), torch.zeros(32, dtype=torch.long)
    plain = DataLoaders(DataLoader(x, y, bs=8), DataLoader(x, y, bs=8))  # no input format: the fill is 0
    rows = first_rows(plain, Augment(max_rotate=0, max_shift=3, max_zoom=0))
    torch.testing.assert_close(rows, torch.zeros_like(rows))
