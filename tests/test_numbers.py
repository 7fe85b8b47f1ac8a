"""Digits photographed small, on ruled or unevenly lit paper, and numbers of several digits."""

import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from digitlearn.cli import main
from digitlearn.inference.predictor import Predictor
from digitlearn.vision.prepare import NoDigitError, clean, to_mnist
from digitlearn.vision.segment import MAX_MARKS, PARTITIONS, count_marks, marks, read_digits
from tests.conftest import draw_digit
from tests.handwriting import photographed_digit, photographed_number

SIZES = (0.03, 0.06, 0.15, 0.4, 0.9)  # the digit's height, of the page's


def page(width: int = 1600, height: int = 1200, seed: int = 0) -> np.ndarray:
    """Blank paper in a photo: white, lit unevenly, with a little noise (float, 0-255)."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(1.0, 0.7, width)[None, :] * np.linspace(1.0, 0.9, height)[:, None]
    return 240 * ramp + rng.normal(0, 3, (height, width))


def photo(a: np.ndarray) -> Image.Image:
    return Image.fromarray(np.uint8(np.clip(a, 0, 255)))


@pytest.fixture(scope="module")
def test_digits(mnist) -> tuple[np.ndarray, np.ndarray]:
    """MNIST's test split: real handwriting that the model never trained on."""
    return mnist.valid.x.numpy(), mnist.valid.y.numpy()


def test_the_issue_s_small_seven_is_found():
    """A 7 180 px tall with an 18 px stroke on a white 1600x1200 image (under 0.5% of its pixels)."""
    img = Image.new("L", (1600, 1200), 255)
    ImageDraw.Draw(img).line([(700, 500), (820, 500), (740, 680)], fill=0, width=18)
    ref = Image.new("L", (200, 240), 255)
    ImageDraw.Draw(ref).line([(40, 30), (160, 30), (80, 210)], fill=0, width=18)
    got, want = to_mnist(img), to_mnist(ref)
    assert float(np.corrcoef(got.flatten(), want.flatten())[0, 1]) > 0.9


def test_ruled_lines_are_not_ink():
    """On ruled paper (a margin line too), the digit is prepared as on plain paper."""
    plain, ruled = page(), page()
    for y in range(60, 1200, 70):
        ruled[y : y + 3] -= 70
    ruled[:, 200:203] -= 70
    digit = np.asarray(draw_digit("4", size=(1600, 1200), ink=0, paper=255, font_size=150, at=(900, 620)))
    ink = (255 - digit.astype(np.float32)) / 255
    got = to_mnist(photo(ruled * (1 - ink) + 30 * ink))
    want = to_mnist(photo(plain * (1 - ink) + 30 * ink))
    assert float(np.corrcoef(got.flatten(), want.flatten())[0, 1]) > 0.95


@pytest.mark.parametrize("what", ["blank", "dot", "noise", "smudge", "ruled-only"])
def test_what_is_not_a_digit_says_no_digit_found(what):
    a = page()
    yy, xx = np.mgrid[0:1200, 0:1600]
    if what == "dot":
        a[(yy - 600) ** 2 + (xx - 800) ** 2 < 15**2] = 20
    elif what == "noise":
        a += np.random.default_rng(1).normal(0, 8, a.shape)
    elif what == "smudge":
        a -= 12 * np.exp(-((yy - 500) ** 2 + (xx - 900) ** 2) / (2 * 60**2))
    elif what == "ruled-only":
        for y in range(60, 1200, 70):
            a[y : y + 3] -= 70
    with pytest.raises(NoDigitError, match="no digit found"):
        to_mnist(photo(a))


def test_small_handwritten_digits_on_photos_are_read(fast_run, test_digits):
    """MNIST test digits from 3% to 90% of a photographed page's height (tests/handwriting.py)."""
    x, y = test_digits
    p, rng = Predictor.load(fast_run), np.random.default_rng(0)
    picks = rng.choice(len(y), 8 * len(SIZES), replace=False)
    images = [photographed_digit(x[j], rng, SIZES[i % len(SIZES)], page=800) for i, j in enumerate(picks)]
    got = [r.label if not isinstance(r, Exception) else "-" for r in p.predict_many(images)]
    right = np.array([g == str(y[j]) for g, j in zip(got, picks, strict=True)])
    print(f"\nhandwritten digits photographed small: {right.mean():.3f} of {len(right)}")
    assert right.mean() >= 0.9


def test_numbers_are_read_digit_by_digit(fast_run, test_digits):
    """2-5 MNIST test digits side by side, some touching, at every size."""
    x, y = test_digits
    p, rng = Predictor.load(fast_run), np.random.default_rng(1)
    right = []
    for i in range(20):
        picks = rng.choice(len(y), int(rng.integers(2, 6)), replace=False)
        img = photographed_number([x[j] for j in picks], rng, SIZES[i % len(SIZES)], page=800)
        right.append(p.predict_number(img).number == "".join(str(y[j]) for j in picks))
    print(f"\nhandwritten numbers photographed small: {np.mean(right):.3f} of {len(right)}")
    assert np.mean(right) >= 0.75


def _four_and_five_in_two_strokes() -> Image.Image:
    img = Image.new("L", (600, 300), 255)
    d = ImageDraw.Draw(img)
    d.line([(120, 60), (70, 170), (170, 170)], fill=0, width=14)  # a 4: the open corner...
    d.line([(150, 80), (150, 240)], fill=0, width=14)  # ...and the stroke down, apart
    d.line([(330, 70), (420, 70)], fill=0, width=14)  # a 5: its bar, lifted off...
    d.line([(330, 70), (325, 140)], fill=0, width=14)
    d.arc([(300, 110), (430, 240)], start=200, end=140, fill=0, width=14)  # ...its belly
    return img


def test_a_digit_in_two_strokes_stays_one_digit(untrained_run):
    r = Predictor.load(untrained_run).predict_number(_four_and_five_in_two_strokes())
    assert len(r.digits) == 2
    (x0, y0, x1, y1), (u0, _, u1, _) = r.boxes
    assert 55 <= x0 <= 70 and 170 <= x1 <= 180 and 45 <= y0 <= 60 and 240 <= y1 <= 255
    assert 300 <= u0 <= 330 and 420 <= u1 <= 440


def test_number_result_and_its_json(fast_run):
    img = Image.new("L", (900, 300), 250)
    for i, ch in enumerate("4096"):
        ImageDraw.Draw(img).text((150 + 180 * i, 150), ch, fill=10, anchor="mm", font=_font())
    r = Predictor.load(fast_run).predict_number(img)
    d = r.to_dict()
    assert d["number"] == r.number == "4096"
    assert [x["label"] for x in d["digits"]] == list("4096")
    lefts = [x["box"][0] for x in d["digits"]]
    assert lefts == sorted(lefts) and all(0 <= x["probability"] <= 1 for x in d["digits"])
    json.dumps(d)


def _font(size: int = 160):
    from PIL import ImageFont

    from tests.font_digits import FONT_DIR

    return ImageFont.truetype(str(FONT_DIR / "DejaVuSans.ttf"), size)


def test_touching_digits_are_split(fast_run, test_digits):
    x, y = test_digits
    p, rng = Predictor.load(fast_run), np.random.default_rng(3)
    right = 0
    for _ in range(6):
        picks = rng.choice(len(y), 2, replace=False)
        img = photographed_number([x[j] for j in picks], rng, 0.3, page=600)
        right += p.predict_number(img).number == "".join(str(y[j]) for j in picks)
    assert right >= 4


def test_cli_reads_numbers_and_warns_about_them(fast_run, tmp_path, capsys):
    path = tmp_path / "number.png"
    img = Image.new("L", (900, 300), 250)
    for i, ch in enumerate("4096"):
        ImageDraw.Draw(img).text((150 + 180 * i, 150), ch, fill=10, anchor="mm", font=_font())
    img.save(path)
    assert main(["predict", str(fast_run), str(path), "--number", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["number"] == "4096" and len(rows[0]["digits"]) == 4
    assert main(["predict", str(fast_run), str(path)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"{path}: ") and len(out.strip().splitlines()) == 1
    assert f"digitlearn: warning: {path} holds 4 marks that look like separate digits" in err


@pytest.mark.parametrize(("text", "expected"), [("7", 1), ("42", 2), ("4096", 4), ("3 .", 1)])
def test_count_marks_counts_what_marks_finds(text, expected):
    img = Image.new("L", (240 * len(text), 300), 250)
    for i, ch in enumerate(text):
        ImageDraw.Draw(img).text((120 + 240 * i, 150), ch, fill=10, anchor="mm", font=_font())
    ink = clean(img)
    assert count_marks(ink) == len(marks(ink)) == expected  # a dot is no digit


def dots(radius: int, n: int = 6000, seed: int = 0) -> Image.Image:
    """A 1600x1200 white page with `n` random black dots (single pixels for radius 0)."""
    rng = np.random.default_rng(seed)
    img = Image.new("L", (1600, 1200), 255)
    d = ImageDraw.Draw(img)
    for x, y in zip(rng.integers(0, 1600, n), rng.integers(0, 1200, n), strict=True):
        d.ellipse([x - radius, y - radius, x + radius, y + radius], fill=0)
    return img


DOTS = [(0, 6000), (1, 6000), (2, 6000), (3, 6000), (2, 20), (3, 300), (5, 300)]  # (radius, dots)


@pytest.mark.parametrize(("radius", "n"), DOTS)
def test_a_page_of_dots_is_no_number(untrained_run, radius, n):
    """Once read as "11111111111" after ten seconds: dots are no digits, and dozens of them no
    number (how fast it says so: bench/refusals.py, under 0.5 s of CPU)."""
    with pytest.raises(NoDigitError, match=r"no (number|digit) found"):
        Predictor.load(untrained_run).predict_number(dots(radius, n))


def test_a_page_of_noise_is_no_number(untrained_run):
    noise = np.random.default_rng(0).integers(0, 256, (1200, 1600), dtype=np.uint8)
    with pytest.raises(NoDigitError, match=r"no (number|digit) found"):
        Predictor.load(untrained_run).predict_number(Image.fromarray(noise))


def digits_in_a_row(text: str) -> Image.Image:
    img = Image.new("L", (70 * len(text) + 100, 200), 250)
    for i, ch in enumerate(text):
        ImageDraw.Draw(img).text((80 + 70 * i, 100), ch, fill=10, anchor="mm", font=_font(90))
    return img


def test_more_marks_than_a_number_has_are_refused(untrained_run):
    p = Predictor.load(untrained_run)
    assert len(p.predict_number(digits_in_a_row("123456789012")).digits) == MAX_MARKS
    message = "too many marks to be a number \\(13 found, at most 12\\)"
    with pytest.raises(NoDigitError, match=message):
        p.predict_number(digits_in_a_row("1234567890123"))


class Eager:
    """A classifier keen to cut: each call more confident than the last, so every cut it reads
    beats the whole it was cut from. The worst case for the time a number takes."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        probs = torch.zeros(len(x), 10)
        probs[:, 1] = 1 - 1 / (self.calls + 1)
        return probs


# at most 2 * MAX_MARKS marks and parts are read, each trying at most PARTITIONS + 3 cuts
MOST_CALLS = 2 * MAX_MARKS * (PARTITIONS + 3 + 1)


def test_touching_digits_are_cut_into_at_most_max_marks_digits():
    """A long bar: every cut reads better to an eager model, and cutting stops at MAX_MARKS."""
    ink = np.zeros((60, 900), np.float32)
    ink[20:40, 10:890] = 1
    eager = Eager()
    assert len(read_digits(ink, eager)) == MAX_MARKS and eager.calls <= MOST_CALLS
    bars = np.zeros((60, 900), np.float32)
    for i in range(MAX_MARKS):  # as many marks as a number has, each wide: none is cut
        bars[20:40, 10 + 74 * i : 70 + 74 * i] = 1
    eager = Eager()
    assert len(read_digits(bars, eager)) == MAX_MARKS and eager.calls == MAX_MARKS


def test_a_mark_of_many_strokes_is_parted_at_a_few_gaps_only():
    """Hatching, 40 slanted strokes that overlap in one mark: 39 ways to part it, PARTITIONS tried."""
    ink = np.zeros((120, 400), np.float32)
    for i in range(40):
        top = 10 + 20 * (i % 2)  # each 70% of the mark's height: one mark, not strokes side by side
        for y in range(70):
            ink[top + y, 20 + 7 * i + y // 5] = 1
    eager = Eager()
    assert len(read_digits(ink, eager)) <= MAX_MARKS and eager.calls <= MOST_CALLS
