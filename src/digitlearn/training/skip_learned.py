"""Skipping what is learned: later epochs train only on the examples not yet mastered."""

import torch

from ..errors import DigitlearnError
from .events import Callback, CancelBatchException, Learner


class SkipLearned(Callback):
    """From epoch `start` on, trains only on the examples the model was not yet sure of.

    While training, it notes each example's probability of its true class as the model saw it
    (from the predictions the loss is computed on anyway: no extra pass). After each epoch from
    `start - 1` on, the next epoch draws only from the examples noted below `threshold`, so
    later epochs revisit the mistakes and near-misses instead of the digits already mastered:
    after one epoch of MNIST that is about a quarter of the data. Needs a DataLoader that takes
    a `subset`, as digitlearn's does.

    `first_from` (a fraction, say 0.2) starts skipping inside the first epoch: from that point of
    it on, in it and every later epoch, each batch is first scored without gradients (a third of
    a training step's work) and only its examples below `threshold` are trained on. A model a
    fifth of an epoch old is already sure of most digits, and a later epoch's subset holds many it
    has learned since it last saw them: the fast recipe does a third less work for it.

    `bs` (with `first_from`) trains on the unsure examples in batches of exactly that many:
    those of each scored batch wait, and a batch that leaves fewer than `bs` waiting makes
    no step. The epoch's last batch trains on all that wait, so none is carried into the next.
    Steps of one size are fewer, and keep both cores busy: a quarter of a 256-example batch
    keeps two threads half idle, and each new batch size costs oneDNN new kernels.
    """

    order = 56  # after the loss, before anything that ends the epoch
    in_lr_find = False

    def __init__(
        self,
        threshold: float = 0.9,
        start: int = 1,
        first_from: float | None = None,
        bs: int | None = None,
    ) -> None:
        if not 0 < threshold <= 1:
            raise DigitlearnError(f"SkipLearned's threshold is a probability in (0, 1], not {threshold!r}")
        if first_from is not None and not 0 <= first_from <= 1:
            raise DigitlearnError(f"SkipLearned's first_from is a fraction of an epoch, not {first_from!r}")
        if bs is not None and (isinstance(bs, bool) or not isinstance(bs, int) or bs < 1):
            raise DigitlearnError(f"SkipLearned's bs is a number of examples, 1 or more, not {bs!r}")
        if bs is not None and first_from is None:
            raise DigitlearnError("SkipLearned's bs needs first_from: only scored batches can wait")
        self.threshold, self.start, self.first_from, self.bs = threshold, start, first_from, bs
        self.kept: torch.Tensor | None = None  # the indices of this batch's examples trained on
        self.waiting: list[tuple[torch.Tensor, ...]] = []  # (indices, x, y): unsure, not yet trained on
        self.sure: torch.Tensor | None = None
        self.sizes: list[int] = []  # examples each epoch trained on
        self.resumed = False  # the next epoch is the first after load_state_dict

    def before_fit(self, learn: Learner) -> None:
        dl = learn.dls.train
        dl.subset = None
        self.sure = torch.zeros(dl.n, dtype=torch.bool, device=dl.device)  # none seen yet
        self.sizes, self.resumed = [], False

    def before_epoch(self, learn: Learner) -> None:
        if self.resumed and learn.epoch >= self.start:  # the subset the last epoch's end chose
            learn.dls.train.subset = torch.nonzero(~self.sure).flatten()
        self.resumed = False

    def state_dict(self) -> dict:
        return {"sure": self.sure.cpu() if self.sure is not None else None, "sizes": self.sizes}

    def load_state_dict(self, state: dict) -> None:
        # no marks: saved before any fit, so before_fit's fresh ones stand. The loader's subset is
        # not saved: the next before_epoch makes it from the marks, as the last after_train did
        if state["sure"] is not None:
            self.sure = state["sure"].to(self.sure.device if self.sure is not None else "cpu")
            self.resumed = True
        self.sizes = list(state["sizes"])

    def before_batch(self, learn: Learner) -> None:
        self.kept = None
        if not learn.training or self.first_from is None:
            return
        if learn.epoch == 0 and learn.iter < self.first_from * len(learn.dl):
            return
        learn.model.train(False)  # scored as it predicts: no dropout, no batch-norm updates
        with torch.no_grad():
            p_true = self._p_true(learn, learn.model(learn.xb))
        learn.model.train(True)
        unsure = p_true < self.threshold
        self.sure[learn.dl.indices] = ~unsure
        if self.bs is not None:
            if unsure.any():
                self.waiting.append((learn.dl.indices[unsure], learn.xb[unsure], learn.yb[unsure]))
            last = learn.iter == len(learn.dl) - 1
            if self.waiting or not last:
                self._take_waiting(learn, everything=last)
                return
        if not unsure.any():  # a step on nothing would be no step: take the least sure one
            unsure[p_true.argmin()] = True
        self.kept = learn.dl.indices[unsure]
        learn.xb, learn.yb = learn.xb[unsure], learn.yb[unsure]

    def _take_waiting(self, learn: Learner, everything: bool) -> None:
        """Make this batch a step on `bs` waiting examples (all of them if `everything`),
        or cancel it while fewer wait."""
        n = sum(len(idx) for idx, _, _ in self.waiting)
        if n < self.bs and not everything:
            raise CancelBatchException()
        indices, x, y = (torch.cat(parts) for parts in zip(*self.waiting, strict=True))
        take = n if everything else self.bs
        self.kept, learn.xb, learn.yb = indices[:take], x[:take], y[:take]
        self.waiting = [(indices[take:], x[take:], y[take:])] if take < n else []

    def after_loss(self, learn: Learner) -> None:
        if learn.training:
            p_true = self._p_true(learn, learn.preds.detach())
            self.sure[self.kept if self.kept is not None else learn.dl.indices] = p_true >= self.threshold

    @staticmethod
    def _p_true(learn: Learner, preds: torch.Tensor) -> torch.Tensor:
        """Each example's probability of its true class."""
        with torch.no_grad():
            probs = learn.probabilities(preds)
            return probs.gather(1, learn.yb.reshape(-1, 1).long()).squeeze(1)

    def after_train(self, learn: Learner) -> None:
        self.waiting = []  # none left after the last batch, unless the epoch was cut short
        dl = learn.dls.train
        self.sizes.append(dl.n_items)
        if learn.epoch + 1 >= self.start:
            dl.subset = torch.nonzero(~self.sure).flatten()

    def after_fit(self, learn: Learner) -> None:
        learn.dls.train.subset = None  # the loader is whole again for whatever comes next

    def __repr__(self) -> str:
        first = f", first_from={self.first_from}" if self.first_from is not None else ""
        step = f", bs={self.bs}" if self.bs is not None else ""
        return f"SkipLearned(threshold={self.threshold}, start={self.start}{first}{step})"
