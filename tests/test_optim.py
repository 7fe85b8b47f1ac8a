"""Optimizers make the same updates as torch.optim on the same problem (to 1e-6)."""

import pytest
import torch
from torch import nn

from digitlearn import SGD, Adam, BasicOptim, DigitlearnError
from digitlearn.training.optim import Adadelta


def problem(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(64, 5, generator=g), torch.randn(64, 1, generator=g)
    torch.manual_seed(seed)
    return x, y, nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 1))


def train(model, opt, x, y, steps: int = 20, lrs=None):
    for i in range(steps):
        if lrs is not None:
            for group in getattr(opt, "param_groups", []):
                group["lr"] = lrs[i]
            if hasattr(opt, "params"):
                opt.lr = lrs[i]
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (lambda p: SGD(p, 0.1), lambda p: torch.optim.SGD(p, 0.1)),
        (lambda p: SGD(p, 0.05, mom=0.9), lambda p: torch.optim.SGD(p, 0.05, momentum=0.9)),
        (
            lambda p: SGD(p, 0.05, mom=0.9, wd=0.01),
            lambda p: torch.optim.SGD(p, 0.05, momentum=0.9, weight_decay=0.01),
        ),
        (lambda p: Adam(p, 0.01), lambda p: torch.optim.Adam(p, 0.01)),
        (
            lambda p: Adam(p, 0.01, mom=0.8, sqr_mom=0.99, eps=1e-6, wd=0.1),
            lambda p: torch.optim.Adam(p, 0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
        ),
        (
            lambda p: Adam(p, 0.01, wd=0.1, decouple_wd=True),
            lambda p: torch.optim.AdamW(p, 0.01, weight_decay=0.1),
        ),
        (lambda p: Adadelta(p), lambda p: torch.optim.Adadelta(p)),
        (
            lambda p: Adadelta(p, 0.5, rho=0.95, eps=1e-5, wd=0.01),
            lambda p: torch.optim.Adadelta(p, 0.5, rho=0.95, eps=1e-5, weight_decay=0.01),
        ),
    ],
)
def test_same_updates_as_torch_optim(ours, theirs):
    x, y, model = problem()
    _, _, twin = problem()
    lrs = [0.01 * (1 + i % 5) for i in range(20)]  # a changing lr, as a schedule would set it
    mine = train(model, ours(model.parameters()), x, y, lrs=lrs)
    ref = train(twin, theirs(twin.parameters()), x, y, lrs=lrs)
    for a, b in zip(mine, ref, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
    assert not torch.equal(mine[0], problem()[2][0].weight.detach())  # it did move


def test_basic_optim_is_the_chapters_step():
    w = torch.tensor([1.0, -2.0], requires_grad=True)
    opt = BasicOptim([w], lr=0.5)
    (w**2).sum().backward()  # grad 2w = [2, -4]
    opt.step()
    assert w.tolist() == [0.0, 0.0]
    opt.zero_grad()
    assert w.grad is None  # the chapter's zero_grad drops the gradient


def test_state_dict_resumes_exactly():
    x, y, model = problem()
    opt = Adam(model.parameters(), 0.01)
    train(model, opt, x, y, steps=5)
    saved_model = {k: v.clone() for k, v in model.state_dict().items()}
    saved_opt = opt.state_dict()
    straight = train(model, opt, x, y, steps=5)
    model.load_state_dict(saved_model)
    opt.load_state_dict(saved_opt)
    resumed = train(model, opt, x, y, steps=5)
    assert all(torch.equal(a, b) for a, b in zip(straight, resumed, strict=True))


def test_bad_settings():
    with pytest.raises(DigitlearnError, match="no parameters"):
        SGD([torch.zeros(2)], 0.1)
    with pytest.raises(DigitlearnError, match="lr must be >= 0, not -1"):
        SGD([torch.zeros(2, requires_grad=True)], -1)
    with pytest.raises(DigitlearnError, match="mom must be >= 0, not nan"):
        Adam([torch.zeros(2, requires_grad=True)], 0.1, mom=float("nan"))


def test_defaults_messages_repr_and_state_of_the_wrong_size():
    params = [nn.Parameter(torch.ones(2, 3)), nn.Parameter(torch.ones(3))]
    assert (Adam(params).lr, Adam(params).mom, Adam(params).wd) == (1e-3, 0.9, 0.0)
    assert (Adadelta(params).lr, Adadelta(params).mom) == (1.0, 0.0)
    assert (SGD(params, 0.1).mom, SGD(params, 0.1).wd) == (0.0, 0.0)
    assert repr(SGD(params, 0.1, mom=0.9, wd=0.01)) == "SGD(lr=0.1, mom=0.9, wd=0.01, 9 parameters)"
    with pytest.raises(DigitlearnError, match=r"^the optimizer got no parameters that require gradients$"):
        SGD([nn.Parameter(torch.ones(1), requires_grad=False)], 0.1)
    for name in ("lr", "mom", "wd"):
        with pytest.raises(DigitlearnError, match=rf"^{name} must be >= 0, not -1$"):
            SGD(params, **{"lr": 0.1, name: -1})
    state = SGD(params[:1], 0.1, mom=0.9).state_dict()  # one parameter's state for two
    with pytest.raises(ValueError):
        SGD(params, 0.1, mom=0.9).load_state_dict(state)
