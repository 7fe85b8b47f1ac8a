"""Metrics on hand-checked examples."""

import torch

from digitlearn import accuracy, batch_accuracy, error_rate


def test_batch_accuracy_thresholds_the_sigmoid_at_one_half():
    preds = torch.tensor([[2.0], [-1.0], [0.5], [-3.0]])  # sigmoid > 0.5: yes, no, yes, no
    assert batch_accuracy(preds, torch.tensor([[1], [0], [0], [0]])).item() == 0.75
    assert batch_accuracy(preds, torch.tensor([1, 0, 0, 0])).item() == 0.75  # (N,) targets line up
    assert batch_accuracy(preds, torch.tensor([0.0, 1.0, 0.0, 1.0])).item() == 0.0


def test_accuracy_and_error_rate():
    preds = torch.tensor([[0.1, 0.9, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 5.0], [1.0, 3.0, 2.0]])
    targets = torch.tensor([1, 0, 1, 2])
    assert accuracy(preds, targets).item() == 0.5
    assert error_rate(preds, targets).item() == 0.5
    assert accuracy(preds, targets.unsqueeze(1)).item() == 0.5


def test_batch_accuracy_calls_a_probability_of_exactly_a_half_class_0():
    # sigmoid(0) is 0.5: not above it, so class 0, as the chapter's `(preds > 0.5)` decides
    assert batch_accuracy(torch.zeros(2, 1), torch.tensor([0, 1])) == 0.5
    assert batch_accuracy(torch.zeros(1, 1), torch.tensor([0])) == 1.0
