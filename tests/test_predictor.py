"""The Predictor: a run folder in, people's images in, labels and probabilities out."""

import pytest
import torch

from digitlearn import Learner
from digitlearn.errors import DigitlearnError
from digitlearn.inference.predictor import Prediction, Predictor
from digitlearn.vision.prepare import ImageError, NoDigitError, naive_resize, to_mnist
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
