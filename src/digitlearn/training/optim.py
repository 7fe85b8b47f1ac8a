"""Optimizers: the chapter's step `p -= p.grad * lr`, then momentum, weight decay and Adam.

Each is checked against `torch.optim` in the tests. `lr` and `mom` are plain attributes, so a
schedule (one-cycle, the learning-rate finder) changes them between steps.
"""

from collections.abc import Iterable

import torch

from ..errors import DigitlearnError


def trainable(params: Iterable[torch.Tensor]) -> list[torch.Tensor]:
    """The parameters an optimizer steps: those that require gradients (not a frozen layer's)."""
    return [p for p in params if p.requires_grad]


class Optimizer:
    """Holds the parameters and per-parameter state; subclasses define `update`."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float, mom: float = 0.0, wd: float = 0.0) -> None:
        self.params = trainable(params)
        if not self.params:
            raise DigitlearnError("the optimizer got no parameters that require gradients")
        for name, value in (("lr", lr), ("mom", mom), ("wd", wd)):
            if not value >= 0:  # also catches NaN
                raise DigitlearnError(f"{name} must be >= 0, not {value!r}")
        self.lr, self.mom, self.wd = lr, mom, wd
        self.state: dict[torch.Tensor, dict] = {}

    @torch.no_grad()
    def step(self) -> None:
        for p in self.params:
            if p.grad is not None:
                self.update(p, p.grad)

    def update(self, p: torch.Tensor, grad: torch.Tensor) -> None:
        raise NotImplementedError

    def zero_grad(self) -> None:
        # dropping the gradient (rather than filling it with zeros) saves a pass over memory;
        # backward then writes a fresh one instead of adding to an old one
        for p in self.params:
            p.grad = None

    def state_dict(self) -> dict:
        """The optimizer's state by parameter position (for checkpoints and the lr finder)."""
        return {
            "lr": self.lr,
            "mom": self.mom,
            "state": [_copied(self.state.get(p, {})) for p in self.params],
        }

    def load_state_dict(self, sd: dict) -> None:
        self.lr, self.mom = sd["lr"], sd["mom"]
        self.state = {p: _copied(s) for p, s in zip(self.params, sd["state"], strict=True) if s}

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.params)
        return f"{type(self).__name__}(lr={self.lr:g}, mom={self.mom:g}, wd={self.wd:g}, {n:,} parameters)"


def _copied(state: dict) -> dict:
    return {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in state.items()}


class SGD(Optimizer):
    """Stochastic gradient descent; with `mom=0, wd=0` it is exactly the chapter's `BasicOptim`.

    Momentum and weight decay follow `torch.optim.SGD`: the decay `wd * p` is added to the
    gradient, and the step follows the running sum `buf = mom * buf + grad`.
    """

    def update(self, p: torch.Tensor, grad: torch.Tensor) -> None:
        if self.wd:
            grad = grad.add(p, alpha=self.wd)
        if self.mom:
            buf = self.state.setdefault(p, {}).get("momentum")
            if buf is None:
                buf = self.state[p]["momentum"] = grad.clone()
            else:
                buf.mul_(self.mom).add_(grad)
            grad = buf
        p.add_(grad, alpha=-self.lr)


BasicOptim = SGD  # the chapter's name for the plain step


class Adam(Optimizer):
    """Adam (Kingma and Ba), as `torch.optim.Adam`; `decouple_wd=True` gives `torch.optim.AdamW`.

    `mom` is beta1, so one-cycle schedules it as it schedules SGD's momentum.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float = 1e-3,
        mom: float = 0.9,
        sqr_mom: float = 0.999,
        eps: float = 1e-8,
        wd: float = 0.0,
        decouple_wd: bool = False,
    ) -> None:
        super().__init__(params, lr, mom, wd)
        self.sqr_mom, self.eps, self.decouple_wd = sqr_mom, eps, decouple_wd

    def update(self, p: torch.Tensor, grad: torch.Tensor) -> None:
        if self.wd:
            if self.decouple_wd:
                p.mul_(1 - self.lr * self.wd)
            else:
                grad = grad.add(p, alpha=self.wd)
        st = self.state.setdefault(p, {})
        if not st:
            st.update(step=0, avg=torch.zeros_like(p), sqr_avg=torch.zeros_like(p))
        st["step"] = step = st["step"] + 1
        st["avg"].lerp_(grad, 1 - self.mom)  # avg = mom * avg + (1 - mom) * grad
        st["sqr_avg"].mul_(self.sqr_mom).addcmul_(grad, grad, value=1 - self.sqr_mom)
        # bias corrections undo the pull towards the zeros the averages start from
        denom = (st["sqr_avg"] / (1 - self.sqr_mom**step)).sqrt_().add_(self.eps)
        p.addcdiv_(st["avg"], denom, value=-self.lr / (1 - self.mom**step))


class Adadelta(Optimizer):
    """Adadelta (Zeiler, 2012), as `torch.optim.Adadelta`: a step sized by the ratio of running
    averages of past squared steps and past squared gradients, so lr 1.0 is a sensible start.

    PyTorch's MNIST example trains with it (lr 1.0, the lr times 0.7 after each epoch).
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        wd: float = 0.0,
    ) -> None:
        super().__init__(params, lr, 0.0, wd)
        self.rho, self.eps = rho, eps

    def update(self, p: torch.Tensor, grad: torch.Tensor) -> None:
        if self.wd:
            grad = grad.add(p, alpha=self.wd)
        st = self.state.setdefault(p, {})
        if not st:
            st.update(sqr_avg=torch.zeros_like(p), delta_avg=torch.zeros_like(p))
        st["sqr_avg"].mul_(self.rho).addcmul_(grad, grad, value=1 - self.rho)
        delta = (st["delta_avg"] + self.eps).sqrt_().div_((st["sqr_avg"] + self.eps).sqrt_()).mul_(grad)
        st["delta_avg"].mul_(self.rho).addcmul_(delta, delta, value=1 - self.rho)
        p.add_(delta, alpha=-self.lr)
