"""Pixel similarity: broadcasting on synthetic data, the chapter's exact figures on real data."""

import pytest
import torch

from digitlearn import PixelSimilarity, mnist_distance, rmse_distance
from digitlearn.data.dataset import Split
from digitlearn.errors import DigitlearnError


def test_distances_broadcast_like_a_loop():
    g = torch.Generator().manual_seed(0)
    x, means = torch.rand(5, 4, 4, generator=g), torch.rand(3, 4, 4, generator=g)
    for dist in (mnist_distance, rmse_distance):
        table = dist(x[:, None], means[None])
        loop = torch.tensor([[float(dist(a, m)) for m in means] for a in x])
        assert table.shape == (5, 3) and torch.allclose(table, loop)
    assert float(mnist_distance(torch.zeros(2, 2), torch.ones(2, 2))) == 1.0
    assert float(rmse_distance(torch.zeros(2, 2), torch.full((2, 2), 3.0))) == 3.0


def test_nearest_mean_on_synthetic_classes():
    x = torch.tensor([[[0, 0]], [[10, 10]], [[200, 200]], [[250, 250]]], dtype=torch.uint8)
    y = torch.tensor([0, 0, 1, 1])
    for distance in ("l1", "rmse"):
        model = PixelSimilarity(distance, chunk=1).fit(x, y)
        assert torch.allclose(model.means, torch.tensor([[[5.0, 5.0]], [[225.0, 225.0]]]) / 255)
        assert model.predict(torch.tensor([[[20, 0]], [[180, 255]]], dtype=torch.uint8)).tolist() == [0, 1]
        report = model.evaluate(Split(x, torch.tensor([0, 1, 1, 1]), list("abcd")), ["a", "b"])
        assert (report.counts, report.correct) == ([1, 3], [1, 2])
        assert report.accuracy == 0.75 and report.mean_class_accuracy == pytest.approx((1 + 2 / 3) / 2)


def test_baseline_errors():
    with pytest.raises(DigitlearnError, match="unknown distance 'l2'"):
        PixelSimilarity("l2")
    with pytest.raises(DigitlearnError, match="not fitted"):
        PixelSimilarity().predict(torch.zeros(1, 2, 2))
    with pytest.raises(DigitlearnError, match="no training images of class index 1"):
        PixelSimilarity().fit(torch.zeros(2, 2, 2), torch.tensor([0, 2]))


def test_chapter_figures_on_mnist_sample(sample):
    """fastbook ch. 4: accuracy on valid 3s 0.9168, 7s 0.9854, average 0.9511 (L1)."""
    report = PixelSimilarity("l1").fit(sample.train.x, sample.train.y).evaluate(sample.valid, sample.classes)
    assert [f"{a:.4f}" for a in report.class_accuracy] == ["0.9168", "0.9854"]
    assert f"{report.mean_class_accuracy:.4f}" == "0.9511"
    assert report.counts == [1010, 1028]
    rmse = PixelSimilarity("rmse").fit(sample.train.x, sample.train.y).evaluate(sample.valid, sample.classes)
    assert rmse.accuracy > report.accuracy  # squared differences punish the big misses more


def test_chapter_example_three(sample):
    """The chapter's threes[1] (train/3/10000.png): distances 0.1114/0.2021 and 0.1586/0.3021."""
    threes = sample.train.of_class(sample.class_index("3"))
    assert threes.names[1] == "3/10000.png"
    means = PixelSimilarity().fit(sample.train.x, sample.train.y).means
    a3 = threes.floats()[1]
    got = [f"{float(d(a3, m)):.4f}" for m in means for d in (mnist_distance, rmse_distance)]
    assert got == ["0.1114", "0.2021", "0.1586", "0.3021"]
    assert threes.x[1, 4:10, 4:10].tolist()[3] == [0, 93, 244, 249, 253, 187]


def test_ten_classes_on_full_mnist(mnist):
    report = PixelSimilarity("rmse").fit(mnist.train.x, mnist.train.y).evaluate(mnist.valid, mnist.classes)
    assert len(report.counts) == 10 and sum(report.counts) == 10_000
    assert 0.80 < report.accuracy < 0.84  # the nearest-mean baseline's known level on MNIST


def test_the_distance_is_the_mean_of_absolute_differences():
    # not the absolute value of the mean difference: +1 and -1 pixels must not cancel out
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    assert float(mnist_distance(a, b)) == 1.0
    assert float(rmse_distance(a, b)) == 1.0
    assert float(mnist_distance(a, a)) == 0.0
