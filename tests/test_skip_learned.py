"""SkipLearned's choice inside the first epoch (`first_from`); its later epochs are tested in
test_callbacks.py."""

import pytest
import torch
from torch import nn

from digitlearn import (
    Callback,
    CancelTrainException,
    DataLoader,
    DataLoaders,
    Learner,
    SkipLearned,
    accuracy,
    cross_entropy,
)
from digitlearn.errors import DigitlearnError

from .conftest import toy_dls


class Watch(Callback):
    """What each training batch of the first epoch held, and the model's view of the whole batch
    just before SkipLearned chose from it."""

    order = 50  # before SkipLearned (56)

    def __init__(self) -> None:
        self.offered, self.trained, self.p_true, self.steps_at = [], [], [], []

    def before_batch(self, learn: Learner) -> None:
        if learn.training and learn.epoch == 0:
            self.offered.append(learn.dl.indices.clone())
            with torch.no_grad():
                probs = torch.softmax(learn.model(learn.xb), 1)
            self.p_true.append(probs.gather(1, learn.yb.view(-1, 1)).squeeze(1))

    def after_pred(self, learn: Learner) -> None:
        if learn.training and learn.epoch == 0:
            self.trained.append((learn.xb.clone(), learn.yb.clone()))
            self.steps_at.append(learn.iter)

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


def fit_in_batches(
    bs: int, threshold: float = 0.8, stop_at: int | None = None
) -> tuple[SkipLearned, Watch, Learner]:
    """As `fit`, skipping from the start of the first epoch, with the unsure examples trained `bs` at
    a time; `stop_at` cuts each epoch short at that batch."""

    class Stop(Callback):
        def before_batch(self, learn: Learner) -> None:
            if learn.training and learn.iter == stop_at:
                raise CancelTrainException()

    torch.manual_seed(0)
    dls = toy_dls(n=1024, bs=64, n_classes=3)  # 12 training batches
    learn = Learner(dls, nn.Linear(8, 3), loss_func=cross_entropy, metrics=accuracy, progress=False)
    skip, watch = SkipLearned(threshold, first_from=0.0, bs=bs), Watch()
    learn.fit(2, 0.5, cbs=[skip, watch, *([Stop()] if stop_at is not None else [])])
    return skip, watch, learn


def test_bs_trains_each_unsure_example_once_in_batches_of_that_size():
    skip, watch, learn = fit_in_batches(bs=16)
    x, y = learn.dls.train.fields
    unsure = torch.cat([o[p < 0.8] for o, p in zip(watch.offered, watch.p_true, strict=True)])
    expected, waiting = [], 0  # a step as soon as 16 wait; the epoch's last batch takes what is left
    for i, p_true in enumerate(watch.p_true):
        waiting += int((p_true < 0.8).sum())
        if i == len(watch.p_true) - 1 or waiting >= 16:
            expected.append(min(waiting, 16) if i < len(watch.p_true) - 1 else waiting)
            waiting -= expected[-1]
    assert len(unsure) > 3 * 16 and [len(yb) for _, yb in watch.trained] == expected
    assert expected[-1] != 16 and skip.waiting == []
    xb, yb = (torch.cat(field) for field in zip(*watch.trained, strict=True))
    assert torch.equal(xb, x[unsure]) and torch.equal(yb, y[unsure])  # in the order they were met


def test_a_step_is_made_as_soon_as_bs_examples_wait():
    _, first, _ = fit_in_batches(bs=16)
    k = int((first.p_true[0] < 0.8).sum())  # unsure in the first batch, scored before any step
    _, watch, _ = fit_in_batches(bs=k)
    assert torch.equal(watch.p_true[0], first.p_true[0]) and 0 < k < 1000
    assert watch.steps_at[0] == 0 and len(watch.trained[0][1]) == k  # the very batch they filled


def test_with_bs_a_batch_it_is_sure_of_makes_no_step_until_the_last():
    _, watch, learn = fit_in_batches(bs=16, threshold=1e-6)  # sure of everything at once
    x, _ = learn.dls.train.fields
    assert len(watch.trained) == 1  # the epoch's last batch still makes a step on its least sure
    assert torch.equal(watch.trained[0][0], x[watch.offered[-1][watch.p_true[-1].argmin()]].view(1, -1))


def test_what_waits_when_an_epoch_is_cut_short_is_dropped():
    skip, watch, _ = fit_in_batches(bs=1000, stop_at=5)  # never enough to make a step
    assert watch.trained == [] and skip.waiting == []


@pytest.mark.parametrize("bs", [0, -3, 2.5, True])
def test_bs_is_a_number_of_examples(bs):
    with pytest.raises(DigitlearnError, match="bs is a number of examples"):
        SkipLearned(first_from=0.2, bs=bs)


def test_bs_needs_first_from():
    with pytest.raises(DigitlearnError, match="bs needs first_from"):
        SkipLearned(bs=128)


def test_the_limits_of_its_settings_and_what_it_shows():
    for ok in (dict(threshold=1.0), dict(first_from=1.0), dict(first_from=0.0, bs=1)):
        SkipLearned(**ok)
    with pytest.raises(DigitlearnError, match=r"threshold is a probability in \(0, 1\], not 0"):
        SkipLearned(0)
    with pytest.raises(
        DigitlearnError, match=r"^SkipLearned's bs needs first_from: only scored batches can wait$"
    ):
        SkipLearned(bs=128)
    assert repr(SkipLearned()) == "SkipLearned(threshold=0.9, start=1)"
    assert repr(SkipLearned(0.85, first_from=0.2, bs=128)) == (
        "SkipLearned(threshold=0.85, start=1, first_from=0.2, bs=128)"
    )


def certain_dls() -> DataLoaders:
    """12 examples in batches of 4, all of class 0; the model below is certain (p = 1.0 exactly)
    of the last 4 and unsure (p = 0.5) of the rest."""
    x = torch.zeros(12, 2)
    x[8:, 0] = 200.0
    y = torch.zeros(12, dtype=torch.long)
    return DataLoaders(DataLoader(x, y, bs=4), DataLoader(x, y, bs=4))


def certain_model() -> nn.Module:
    model = nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
        model.bias.zero_()
    return model


class Sizes(Callback):
    order = 60  # after SkipLearned chose

    def __init__(self) -> None:
        self.trained = []

    def after_pred(self, learn: Learner) -> None:
        if learn.training:
            self.trained.append((learn.epoch, len(learn.yb)))


def test_a_probability_of_exactly_the_threshold_counts_as_sure():
    # threshold 1.0: only p = 1.0 is sure; the 4 certain examples are skipped from the next epoch on
    skip, sizes = SkipLearned(1.0), Sizes()
    Learner(certain_dls(), certain_model(), loss_func=cross_entropy, progress=False).fit(
        2, 0.0, cbs=[skip, sizes]
    )
    assert skip.sizes == [12, 8]
    # and scored inside an epoch, a batch all at the threshold trains on its least sure example only
    skip, sizes = SkipLearned(1.0, first_from=0.0, bs=4), Sizes()
    Learner(certain_dls(), certain_model(), loss_func=cross_entropy, progress=False).fit(
        1, 0.0, cbs=[skip, sizes]
    )
    assert sizes.trained == [(0, 4), (0, 4), (0, 1)]  # nothing left waiting: no step on nothing


def test_scoring_sees_the_model_as_it_predicts_and_training_as_it_trains():
    class Modes(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear, self.seen = certain_model(), []

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.seen.append(self.training)
            return self.linear(x)

    model = Modes()
    learn = Learner(certain_dls(), model, loss_func=cross_entropy, progress=False)
    learn.fit(1, 0.0, cbs=[SkipLearned(0.9, first_from=0.0)])
    assert model.seen == [False, True] * 3 + [False] * 3  # scored, trained; then validated


def test_start_is_the_first_epoch_that_skips():
    skip = SkipLearned(1.0, start=2)
    Learner(certain_dls(), certain_model(), loss_func=cross_entropy, progress=False).fit(3, 0.0, cbs=[skip])
    assert skip.sizes == [12, 12, 8]


def test_a_fit_resumed_at_the_start_epoch_skips_as_the_whole_one_did(tmp_path):
    class SaveAfterFirst(Callback):
        order = 70

        def after_epoch(self, learn: Learner) -> None:
            if learn.epoch == 0:
                learn.save_checkpoint(tmp_path / "ckpt.safetensors")

    whole = SkipLearned(1.0)
    Learner(certain_dls(), certain_model(), loss_func=cross_entropy, progress=False).fit(
        3, 0.0, cbs=[whole, SaveAfterFirst()]
    )
    resumed = SkipLearned(1.0)
    learn = Learner(certain_dls(), certain_model(), loss_func=cross_entropy, cbs=[resumed], progress=False)
    learn.load_checkpoint(tmp_path / "ckpt.safetensors")
    learn.fit(3, 0.0, start_epoch=1)
    assert whole.sizes == [12, 8, 8] and resumed.sizes == whole.sizes
