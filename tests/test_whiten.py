"""The whitened first convolution: filters from the images' patches, frozen, and what freezing saves."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from digitlearn import DigitlearnError
from digitlearn.training.whiten import whiten_first_conv


def strokes(n: int = 300, size: int = 16, seed: int = 0) -> torch.Tensor:
    """(n, 1, size, size) images of random bright bars and blobs on a dark background."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 1, size, size)
    for i in range(n):
        r, c = torch.randint(2, size - 6, (2,), generator=g).tolist()
        if i % 2:
            x[i, 0, r : r + 5, c : c + 2] = 1.0
        else:
            x[i, 0, r : r + 2, c : c + 5] = 1.0
    return x + 0.05 * torch.randn(x.shape, generator=g)


def output_cov(x: torch.Tensor, w: torch.Tensor, stride: int = 1) -> np.ndarray:
    """The covariance of a convolution's outputs over every image and position (numpy's)."""
    out = F.conv2d(x, w, stride=stride).permute(0, 2, 3, 1).reshape(-1, len(w)).double().numpy()
    return np.cov(out, rowvar=False, bias=True)


def patch_pca(x: torch.Tensor, k: int = 5, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues and eigenvectors of the k x k patches' covariance, largest first (numpy's)."""
    patches = F.unfold(x, k, stride=stride).transpose(1, 2).reshape(-1, k * k).double().numpy()
    values, vectors = np.linalg.eigh(np.cov(patches, rowvar=False, bias=True))
    return values[::-1], vectors[:, ::-1]


def test_outputs_are_uncorrelated_with_unit_variance_in_pairs_of_opposite_sign():
    x = strokes(600)  # more than the 500 images read at a time
    model = nn.Sequential(nn.Conv2d(1, 8, 5), nn.ReLU(), nn.Flatten(), nn.LazyLinear(3))
    conv = whiten_first_conv(model, x, eps=0)
    w = conv.weight.detach()
    torch.testing.assert_close(w[4:], -w[:4])
    assert torch.equal(conv.bias, torch.zeros(8))
    np.testing.assert_allclose(output_cov(x, w[:4]), np.eye(4), atol=1e-5)
    # and the filters are the patches' top principal components, largest first
    _, vectors = patch_pca(x)
    unit = w[:4].reshape(4, 25).double().numpy()
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    np.testing.assert_allclose(np.abs(np.diag(unit @ vectors[:, :4])), np.ones(4), atol=1e-5)


def test_eps_scales_each_component_to_its_share_of_variance():
    x = strokes(100)
    values, _ = patch_pca(x)
    conv = whiten_first_conv(nn.Conv2d(1, 6, 5), x)  # the default eps, 0.01
    expected = values[:3] / (values[:3] + 0.01)
    np.testing.assert_allclose(np.diag(output_cov(x, conv.weight.detach()[:3])), expected, rtol=1e-4)
    assert expected.min() < 0.99  # the smallest component is visibly shrunk


def test_a_strided_convolution_is_whitened_for_the_patches_it_sees():
    x = strokes(100)
    conv = whiten_first_conv(nn.Conv2d(1, 8, 5, stride=3), x, eps=0)
    np.testing.assert_allclose(output_cov(x, conv.weight.detach()[:4], stride=3), np.eye(4), atol=1e-5)


def test_the_first_convolution_is_frozen_and_training_leaves_it_alone():
    x, y = strokes(64), torch.randint(0, 3, (64,))
    model = nn.Sequential(
        nn.Conv2d(1, 8, 5), nn.MaxPool2d(2), nn.ReLU(), nn.Conv2d(8, 4, 3), nn.Flatten(), nn.LazyLinear(3)
    )
    model(x[:1])
    conv = whiten_first_conv(model, x)
    before, later = conv.weight.clone(), model[3].weight.clone()
    assert not conv.weight.requires_grad and not conv.bias.requires_grad
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    F.cross_entropy(model(x), y).backward()
    opt.step()
    assert conv.weight.grad is None and torch.equal(conv.weight, before)
    assert not torch.equal(model[3].weight, later)  # the rest still learns


def test_what_it_refuses():
    x = strokes(8)
    with pytest.raises(
        DigitlearnError, match="whitening needs a model with a convolution, and Sequential has none"
    ):
        whiten_first_conv(nn.Sequential(nn.Flatten(), nn.Linear(256, 2)), x)
    with pytest.raises(
        DigitlearnError, match=r"at most 18 for a 3x3 kernel over 1 channel; this first convolution has 20"
    ):
        whiten_first_conv(nn.Conv2d(1, 20, 3), x)
    whiten_first_conv(nn.Conv2d(1, 18, 3), x)  # 9 components and their negatives: as many as there are
    with pytest.raises(
        DigitlearnError, match=r"at most 36 for a 3x3 kernel over 2 channels; this first convolution has 38"
    ):
        whiten_first_conv(nn.Conv2d(2, 38, 3), x.repeat(1, 2, 1, 1))
    with pytest.raises(DigitlearnError, match=r"an even number of filters.* has 7"):
        whiten_first_conv(nn.Conv2d(1, 7, 3), x)
    with pytest.raises(DigitlearnError, match=r"needs images shaped \(N, 1, H, W\), not \(8, 16, 16\)"):
        whiten_first_conv(nn.Conv2d(1, 4, 3), x[:, 0])
    with pytest.raises(DigitlearnError, match=r"needs images shaped \(N, 1, H, W\), not \(8, 3, 16, 16\)"):
        whiten_first_conv(nn.Conv2d(1, 4, 3), x.repeat(1, 3, 1, 1))
