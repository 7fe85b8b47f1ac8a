"""Losses: the chapter's mnist_loss, and our cross-entropies checked against PyTorch's."""

import functools

import pytest
import torch
import torch.nn.functional as F

from digitlearn import DigitlearnError, bce_loss, cross_entropy, mnist_loss
from digitlearn.training.losses import KINDS, describe, kind_of, probabilities


def test_mnist_loss_is_distance_from_the_target():
    preds = torch.tensor([[0.9], [0.4], [-0.2]])
    targets = torch.tensor([[1], [0], [1]])
    s = preds.sigmoid().flatten()
    expected = ((1 - s[0]) + s[1] + (1 - s[2])) / 3
    assert torch.isclose(mnist_loss(preds, targets), expected)
    # (N,) labels against (N, 1) outputs: matched, not broadcast to (N, N)
    assert torch.isclose(mnist_loss(preds, targets.flatten()), expected)
    assert mnist_loss(torch.tensor([[100.0]]), torch.tensor([1])) < 1e-6  # confident and right costs nothing


def test_binary_losses_reject_mismatched_shapes():
    with pytest.raises(DigitlearnError, match=r"predictions \(4, 2\) do not match targets \(4,\)"):
        mnist_loss(torch.zeros(4, 2), torch.zeros(4))


def test_bce_matches_pytorch_even_for_extreme_outputs():
    logits = torch.tensor([[-200.0], [-3.0], [0.0], [2.5], [200.0]], requires_grad=True)
    targets = torch.tensor([1, 0, 1, 1, 0])
    ours = bce_loss(logits, targets)
    ref = F.binary_cross_entropy_with_logits(logits, targets.float().unsqueeze(1))
    torch.testing.assert_close(ours, ref)
    (g_ours,) = torch.autograd.grad(ours, logits)
    (g_ref,) = torch.autograd.grad(ref, logits)
    torch.testing.assert_close(g_ours, g_ref)
    assert torch.isfinite(ours)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_matches_pytorch(smoothing):
    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(32, 10, generator=g) * 5).requires_grad_()
    logits.data[0, 3] = 1e4  # exp would overflow without the max shift
    targets = torch.randint(0, 10, (32,), generator=g)
    ours = cross_entropy(logits, targets, label_smoothing=smoothing)
    ref = F.cross_entropy(logits, targets, label_smoothing=smoothing)
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(torch.autograd.grad(ours, logits)[0], torch.autograd.grad(ref, logits)[0])
    torch.testing.assert_close(cross_entropy(logits, targets.unsqueeze(1), smoothing), ref)


def test_cross_entropy_errors_say_what_is_wrong():
    with pytest.raises(DigitlearnError, match="one output per class"):
        cross_entropy(torch.zeros(4, 1), torch.zeros(4, dtype=torch.long))
    with pytest.raises(DigitlearnError, match="class indices from 0 to 9, but the model gives 2 outputs"):
        cross_entropy(torch.zeros(2, 2), torch.tensor([0, 9]))
    with pytest.raises(DigitlearnError, match="4 predictions but 3 targets"):
        cross_entropy(torch.zeros(4, 2), torch.zeros(3, dtype=torch.long))


def test_each_loss_is_described_once():
    x = torch.tensor([[0.0, 1.0]])
    assert kind_of(mnist_loss).binary and kind_of(bce_loss).binary and not kind_of(cross_entropy).binary
    assert kind_of(mnist_loss).n_out(2) == 1 and kind_of(cross_entropy).n_out(10) == 10
    smoothed = functools.partial(cross_entropy, label_smoothing=0.1)
    assert kind_of(smoothed) is KINDS["cross_entropy"] is kind_of(F.cross_entropy)
    torch.testing.assert_close(probabilities(x, smoothed), x.softmax(-1))
    one = torch.tensor([[0.0], [2.0]])
    torch.testing.assert_close(
        probabilities(one, mnist_loss), torch.cat([1 - one.sigmoid(), one.sigmoid()], 1)
    )
    assert kind_of(F.mse_loss) is None  # unknown: one output means sigmoid, more mean softmax
    torch.testing.assert_close(probabilities(x, F.mse_loss), x.softmax(-1))
    assert describe(smoothed) == {"name": "cross_entropy", "label_smoothing": 0.1}
    assert describe(mnist_loss) == {"name": "mnist_loss"}


class HingeLoss:
    """A loss that is an object, not a function: it has no __name__."""

    def __call__(self, preds, targets):
        return (1 - preds.squeeze(-1) * (2 * targets.float() - 1)).clamp(min=0).mean()


def test_losses_of_every_kind_are_described_and_decoded():
    hinge = HingeLoss()
    assert describe(hinge) == {"name": "HingeLoss"}
    assert describe(functools.partial(hinge)) == {"name": repr(hinge)}
    one = torch.tensor([[0.5], [-1.0]])  # one output, of a loss digitlearn does not know: a sigmoid
    p = one.sigmoid()
    torch.testing.assert_close(probabilities(one, hinge), torch.cat([1 - p, p], 1))
    torch.testing.assert_close(probabilities(one, None), torch.cat([1 - p, p], 1))
    with pytest.raises(DigitlearnError, match=r"a one-output model goes with mnist_loss or bce_loss$"):
        cross_entropy(torch.zeros(4, 1), torch.zeros(4, dtype=torch.long))
