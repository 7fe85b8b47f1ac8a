"""The Predictor: a run folder in, people's images in, labels and probabilities out."""

import pytest
import torch

from digitlearn import ImageError, Learner, NoDigitError, naive_resize, to_mnist
from digitlearn.errors import DigitlearnError
from digitlearn.inference.predictor import Prediction, Predictor
from tests.conftest import draw_digit, encoded, save_untrained
from tests.font_digits import font_digits


def test_loads_from_the_run_folder_alone(untrained_run, tmp_path):
    p = Predictor.load(untrained_run)
    assert p.classes == list("0123456789") and p.size == (28, 28)
    path = tmp_path / "seven.png"
    draw_digit("7").save(path)
    for source in (path, str(path), path.read_bytes(), draw_digit("7")):
        r = p.predict(source)
        assert isinstance(r, Prediction) and r.label in p.classes
        assert r.probs.shape == (10,) and float(r.probs.sum()) == pytest.approx(1.0, abs=1e-5)
        assert r.label == p.classes[int(r.probs.argmax())] and r.input.shape == (28, 28)
    d = r.to_dict(k=2)
    assert list(d["probabilities"]) == p.classes and len(d["top"]) == 2
    assert d["top"][0] == {"label": r.label, "probability": pytest.approx(r.probability)}


def test_same_probabilities_as_the_model_on_the_prepared_input(untrained_run):
    p = Predictor.load(untrained_run)
    r = p.predict(draw_digit("3"))
    x = (to_mnist(draw_digit("3")) - 0.1307) / 0.3081
    with torch.no_grad():
        expected = p.model(x[None, None]).softmax(-1)[0]
    torch.testing.assert_close(r.probs, expected)


def test_one_output_models_give_two_probabilities(tmp_path):
    run = save_untrained(tmp_path / "binary", classes=("3", "7"), loss="mnist_loss")
    r = Predictor.load(run).predict(draw_digit("7"))
    assert r.probs.shape == (2,) and float(r.probs.sum()) == pytest.approx(1.0)
    assert r.label in ("3", "7")


def test_predict_many_keeps_going_past_bad_images(untrained_run, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_text("nope")
    results = Predictor.load(untrained_run).predict_many(
        [draw_digit("1"), bad, encoded(draw_digit("0", ink=255, paper=255)), draw_digit("2")]
    )
    assert isinstance(results[0], Prediction) and isinstance(results[3], Prediction)
    assert isinstance(results[1], ImageError) and "bad.png" in str(results[1])
    assert isinstance(results[2], NoDigitError)
    single = Predictor.load(untrained_run).predict(draw_digit("2"))
    torch.testing.assert_close(results[3].probs, single.probs)


def test_not_a_run_folder(tmp_path):
    with pytest.raises(DigitlearnError, match="not a saved model"):
        Predictor.load(tmp_path / "nothing")


def test_learner_predict_reads_image_files(tmp_path):
    from tests.conftest import toy_dls

    dls = toy_dls()
    dls.input_format = {"height": 28, "width": 28, "flat": True, "mean": 0.0, "std": 1.0}
    dls.classes = [str(i) for i in range(2)]
    learn = Learner(dls, torch.nn.Linear(784, 2), loss_func=torch.nn.functional.cross_entropy)
    path = tmp_path / "two.png"
    draw_digit("2").save(path)
    label, index, probs = learn.predict(path)
    with torch.no_grad():
        expected = learn.model(to_mnist(path).reshape(1, 784)).softmax(-1)[0]
    torch.testing.assert_close(probs, expected)
    assert label == dls.classes[index]


@pytest.mark.mnist
def test_font_digits_are_read_far_better_than_by_a_naive_resize(fast_run):
    """The robustness test set: 300 digits rendered from 10 fonts at random sizes, positions,
    stroke widths and colours (dark on light and light on dark), with uneven lighting, blur,
    noise, dust and JPEG compression (tests/font_digits.py). None of it is MNIST."""
    images, labels = font_digits(per_digit=30, seed=0)
    p = Predictor.load(fast_run)
    results = p.predict_many(images)
    y = torch.tensor(labels)
    got = torch.tensor([int(r.label) if isinstance(r, Prediction) else -1 for r in results])
    prepared = float((got == y).float().mean())
    naive = float(
        (p.probabilities(torch.stack([naive_resize(i) for i in images])).argmax(1) == y).float().mean()
    )
    print(f"\nfont digits ({len(labels)}): prepared the MNIST way {prepared:.4f}, naive resize {naive:.4f}")
    assert prepared >= 0.95
    assert naive <= 0.30


def inference_learner():
    from tests.conftest import toy_dls

    dls = toy_dls()
    dls.input_format = {"height": 28, "width": 28, "flat": True, "mean": 0.0, "std": 1.0}
    dls.classes = ["a", "b"]
    torch.manual_seed(0)
    return Learner(dls, torch.nn.Linear(784, 2), loss_func=torch.nn.functional.cross_entropy, progress=False)


def test_pixels_in_any_dtype_or_layout_give_the_same_answer(untrained_run):
    import numpy as np

    pixels = (torch.rand(28, 28, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    same = [
        pixels, pixels.long(), pixels.int(), pixels.numpy().astype(np.int16), pixels.float() / 255,
        pixels[None], pixels.numpy()[..., None], np.stack([pixels.numpy()] * 3, -1),  # RGB
        np.dstack([pixels.numpy()] * 3 + [np.full((28, 28), 255, np.uint8)]),  # RGBA, opaque
    ]  # fmt: skip
    learn, predictor = inference_learner(), Predictor.load(untrained_run)
    expected, by_predictor = learn.predict(pixels)[2], predictor.classify(pixels).probs
    for item in same:
        torch.testing.assert_close(learn.predict(item)[2], expected, atol=1e-6, rtol=0)
        torch.testing.assert_close(predictor.classify(item).probs, by_predictor, atol=1e-6, rtol=0)
    assert learn.predict(draw_digit("3"))[0] in ("a", "b")  # a picture: prepared first
    many = learn.predict_many([pixels, pixels.long()])
    assert len(many) == 2 and many[0][:2] == many[1][:2]
    torch.testing.assert_close(many[0][2], many[1][2])


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (torch.zeros(3, 28, 28), r"not \(3, 28, 28\): for a batch of images, use predict_many"),
        (torch.zeros(2, 1, 28, 28), r"not \(2, 1, 28, 28\): for a batch"),
        (None, "cannot read an image from NoneType: give a file path"),
        ({"x": 1}, "cannot read an image from dict"),
        (
            torch.full((28, 28), 200.0),
            r"float pixels are 0 to 1, not 200 to 200 \(float32\): for 0-255, give uint8",
        ),
        (torch.full((28, 28), 300), r"integer pixels are 0 to 255, not 300 to 300 \(int64\)"),
        (torch.full((28, 28), -1, dtype=torch.int8), "integer pixels are 0 to 255, not -1"),
        (torch.full((28, 28), float("nan")), "float pixels are 0 to 1"),
        (torch.zeros(28, 0), "not \\(28, 0\\)"),
        (torch.zeros(5, 5, dtype=torch.uint8), "images are 5x5, but the model takes 28x28"),
        (torch.zeros(28, 28, dtype=torch.complex64), "pixels are numbers .* not complex64"),
    ],
)
def test_what_predict_cannot_use_is_one_sentence(untrained_run, item, message):
    for predict in (inference_learner().predict, Predictor.load(untrained_run).classify):
        with pytest.raises(DigitlearnError, match=message):
            predict(item)


def test_fit_refuses_a_negative_number_of_epochs():
    learn = inference_learner()
    for n in (-1, 1.5, "2"):
        with pytest.raises(DigitlearnError, match="fit takes a whole number of epochs"):
            learn.fit(n)
    assert len(learn.fit(0)) == 0


def test_many_images_prepared_in_processes_give_the_same_answers(untrained_run, tmp_path):
    p = Predictor.load(untrained_run)
    sources = [draw_digit(d) for d in "0123456789"] + [b"not an image", draw_digit(" ")]
    alone, together = p.predict_many(sources, workers=1), p.predict_many(sources, workers=2)
    for a, b in zip(alone, together, strict=True):
        if isinstance(a, DigitlearnError):
            assert type(a) is type(b) and str(a) == str(b)
        else:
            assert (a.label, a.marks) == (b.label, b.marks) and torch.equal(a.input, b.input)
            torch.testing.assert_close(a.probs, b.probs)
