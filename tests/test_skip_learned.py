"""SkipLearned's choice inside the first epoch (`first_from`); its later epochs are tested in
test_callbacks.py."""

import pytest
import torch
from torch import nn

from digitlearn import Callback, Learner, SkipLearned, accuracy, cross_entropy
from digitlearn.errors import DigitlearnError

from .conftest import toy_dls


class Watch(Callback):
    """What each training batch of the first epoch held, and the model's view of the whole batch
    just before SkipLearned chose from it."""

    order = 50  # before SkipLearned (56)

    def __init__(self) -> None:
        self.offered, self.trained, self.p_true = [], [], []

    def before_batch(self, learn: Learner) -> None:
        if learn.training and learn.epoch == 0:
            self.offered.append(learn.dl.indices.clone())
            with torch.no_grad():
                probs = torch.softmax(learn.model(learn.xb), 1)
            self.p_true.append(probs.gather(1, learn.yb.view(-1, 1)).squeeze(1))

    def after_pred(self, learn: Learner) -> None:
        if learn.training and learn.epoch == 0:
            self.trained.append((learn.xb.clone(), learn.yb.clone()))

    def after_train(self, learn: Learner) -> None:
        if learn.epoch == 0:
            self.sure = next(cb for cb in learn.cbs if isinstance(cb, SkipLearned)).sure.clone()


def fit(first_from: float | None, threshold: float = 0.8) -> tuple[SkipLearned, Watch, Learner]:
    torch.manual_seed(0)
    dls = toy_dls(n=1024, bs=64, n_classes=3)  # 12 training batches
    learn = Learner(dls, nn.Linear(8, 3), loss_func=cross_entropy, metrics=accuracy, progress=False)
    skip, watch = SkipLearned(threshold, first_from=first_from), Watch()
    learn.fit(2, 0.5, cbs=[skip, watch])
    return skip, watch, learn


def test_first_from_trains_the_rest_of_the_first_epoch_on_unsure_examples_only():
    skip, watch, learn = fit(first_from=0.5)
    x, y = learn.dls.train.fields
    sizes = [len(yb) for _, yb in watch.trained]
    assert sizes[:6] == [64] * 6  # the first half of the epoch: every example
    assert sum(sizes[6:]) < 6 * 64  # then only some
    for offered, p_true, (xb, yb) in list(zip(watch.offered, watch.p_true, watch.trained, strict=True))[6:]:
        unsure = offered[p_true < 0.8]
        expected = unsure if len(unsure) else offered[p_true.argmin()].view(1)
        assert torch.equal(xb, x[expected]) and torch.equal(yb, y[expected])
        assert not watch.sure[unsure].any()  # the next epoch revisits them...
        assert watch.sure[offered[p_true >= 0.8]].all()  # ...and skips the others
    assert skip.sizes[1] == int((~watch.sure).sum())


def test_later_epochs_score_their_batches_too():
    class Later(Callback):
        order = 60  # after SkipLearned chose

        def before_fit(self, learn: Learner) -> None:
            self.offered, self.trained = 0, 0

        def after_pred(self, learn: Learner) -> None:
            if learn.training and learn.epoch == 1:
                self.offered += len(learn.dl.indices)
                self.trained += len(learn.yb)

    torch.manual_seed(0)
    dls = toy_dls(n=1024, bs=64, n_classes=3)
    learn = Learner(dls, nn.Linear(8, 3), loss_func=cross_entropy, progress=False)
    later = Later()
    learn.fit(2, 0.5, cbs=[SkipLearned(0.8, first_from=0.5), later])
    # the second epoch draws the examples unsure when last seen, and trains on those still unsure
    assert 0 < later.trained < later.offered


def test_without_first_from_the_first_epoch_trains_on_everything():
    _, watch, learn = fit(first_from=None)
    assert [len(yb) for _, yb in watch.trained] == [64] * 12
    assert learn.recorder.history[-1]["accuracy"] > 0.8


def test_a_batch_it_is_sure_of_still_makes_a_step_on_its_least_sure_example():
    _, watch, learn = fit(first_from=0.0, threshold=1e-6)  # sure of everything at once
    x, _ = learn.dls.train.fields
    for offered, p_true, (xb, _) in zip(watch.offered, watch.p_true, watch.trained, strict=True):
        assert torch.equal(xb, x[offered[p_true.argmin()]].view(1, -1))


@pytest.mark.parametrize("first_from", [-0.1, 1.5])
def test_first_from_is_a_fraction_of_an_epoch(first_from):
    with pytest.raises(DigitlearnError, match="first_from"):
        SkipLearned(first_from=first_from)
