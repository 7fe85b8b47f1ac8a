"""Models: the chapter's shapes and init, and configs that rebuild them."""

import pytest
import torch
from torch import nn

from digitlearn import DigitlearnError, init_params, linear1, mlp, simple_net
from digitlearn.models import build_model, cnn, lenet, resnet
from digitlearn.models.layers import MaxPool2, ResBlock, n_params
from digitlearn.training.recipes import Recipe


def test_init_params():
    torch.manual_seed(0)
    w = init_params((28 * 28, 1))
    assert w.shape == (784, 1) and w.requires_grad and w.is_leaf
    assert 0.9 < float(w.detach().std()) < 1.1
    assert float(init_params(10_000, std=0.01).detach().std()) < 0.011


def test_linear1_is_xb_at_weights_plus_bias():
    model = linear1()
    assert [p.shape for p in model.parameters()] == [(784, 1), (1,)]
    xb = torch.rand(5, 784)
    torch.testing.assert_close(model(xb), xb @ model.weights + model.bias)


def test_simple_net_is_784_30_1():
    model = simple_net()
    assert [type(m) for m in model] == [nn.Linear, nn.ReLU, nn.Linear]
    assert n_params(model) == 784 * 30 + 30 + 30 + 1
    assert model(torch.rand(3, 784)).shape == (3, 1)


def test_mlp_layers():
    model = mlp(n_in=20, hidden=[16, 8], n_out=4, dropout=0.2)
    assert [type(m).__name__ for m in model] == [
        "Linear",
        "ReLU",
        "Dropout",
        "Linear",
        "ReLU",
        "Dropout",
        "Linear",
    ]
    assert model(torch.rand(2, 20)).shape == (2, 4)


def test_config_rebuilds_the_same_architecture():
    model = mlp(n_in=20, hidden=(16, 8), n_out=4)
    assert model.config == {"arch": "mlp", "n_in": 20, "hidden": [16, 8], "n_out": 4, "dropout": 0.0}
    twin = build_model(model.config)
    assert [p.shape for p in twin.parameters()] == [p.shape for p in model.parameters()]
    assert linear1(10).config == {"arch": "linear1", "n_in": 10, "n_out": 1, "std": 1.0}


def test_build_model_errors():
    with pytest.raises(DigitlearnError, match=r"unknown model architecture 'os\.system'"):
        build_model({"arch": "os.system"})
    with pytest.raises(DigitlearnError, match="bad arguments for model 'simple_net'"):
        build_model({"arch": "simple_net", "n_layers": 3})


def test_cnn_halves_the_image_at_each_stage():
    model = cnn()
    assert model.config == {"arch": "cnn", "n_out": 10, "channels": [16, 32, 64], "in_size": [28, 28]}
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.kernel_size, c.stride, c.bias) for c in convs] == [((5, 5), (2, 2), None)] + [
        ((3, 3), (2, 2), None)
    ] * 2
    assert model[-1].in_features == 64 * 4 * 4  # 28 -> 14 -> 7 -> 4
    odd = cnn(n_out=3, channels=(4, 8), in_size=(30, 17))
    assert odd(torch.rand(2, 1, 30, 17)).shape == (2, 3) and odd[-1].in_features == 8 * 8 * 5
    twin = build_model(odd.config)
    assert [p.shape for p in twin.parameters()] == [p.shape for p in odd.parameters()]


def test_lenet_batch_norm_goes_between_each_hidden_layer_and_its_relu():
    model = lenet(channels=(4, 8), hidden=(32, 16), batch_norm=1)
    kinds = [type(m).__name__ for m in model]
    assert kinds == [
        "Conv2d", "MaxPool2", "ReLU", "Conv2d", "MaxPool2", "ReLU", "Flatten",
        "Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d", "ReLU", "Linear",
    ]  # fmt: skip
    hidden = [m for m in model if isinstance(m, nn.Linear)][:-1]
    assert [m.bias for m in hidden] == [None, None]  # the norm's shift replaces the bias
    assert model[-1].bias is not None
    norms = [m for m in model if isinstance(m, nn.BatchNorm1d)]
    assert [n.num_features for n in norms] == [32, 16]
    x = torch.rand(6, 1, 28, 28)
    model.train()
    out = model[:-2](x)  # up to the second norm: each feature of the batch has mean 0, std 1
    torch.testing.assert_close(out.mean(0), torch.zeros(16), atol=1e-5, rtol=0)
    assert build_model(model.config).state_dict().keys() == model.state_dict().keys()
    with pytest.raises(DigitlearnError, match="batch_norm must be a whole number from 0 to 1"):
        Recipe("lenet", 1, 0.1, batch_norm=2)
    # off by default: the same layers as ever
    assert [type(m) for m in lenet(batch_norm=0)] == [type(m) for m in lenet()]


def test_lenet_pools_twice_then_a_hidden_layer():
    model = lenet()
    assert model.config == {
        "arch": "lenet",
        "n_out": 10,
        "channels": [8, 24],
        "hidden": [128],
        "in_size": [28, 28],
        "batch_norm": 0,
    }
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.kernel_size, c.padding) for c in convs] == [((5, 5), (0, 0)), ((3, 3), (0, 0))]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (24 * 5 * 5, 128),
        (128, 10),
    ]  # 28-24-12-10-5
    # pooling before the ReLU is the same function as after it
    x = torch.randn(2, 8, 6, 6)
    torch.testing.assert_close(
        torch.relu(nn.functional.max_pool2d(x, 2)), nn.functional.max_pool2d(x.relu(), 2)
    )
    odd = lenet(n_out=2, channels=(4,), hidden=(16, 8), in_size=(20, 13))
    assert odd(torch.rand(2, 1, 20, 13)).shape == (2, 2) and odd[4].in_features == 4 * 8 * 4
    assert [p.shape for p in build_model(odd.config).parameters()] == [p.shape for p in odd.parameters()]
    with pytest.raises(DigitlearnError, match="too small"):
        lenet(in_size=(8, 8))


def test_resnet_blocks_start_as_their_shortcut():
    block = ResBlock(8, 16, stride=2).eval()
    x = torch.randn(2, 8, 7, 7)
    torch.testing.assert_close(block(x), torch.relu(block.shortcut(x)))  # last batch norm starts at 0
    assert block(x).shape == (2, 16, 4, 4)
    same = ResBlock(8, 8).eval()
    torch.testing.assert_close(same(x), torch.relu(x))  # identity shortcut


def test_resnet_shapes_and_any_image_size():
    model = resnet(n_out=2, channels=(8, 16), blocks=2)
    assert model.config == {"arch": "resnet", "n_out": 2, "channels": [8, 16], "blocks": 2}
    assert sum(isinstance(m, ResBlock) for m in model.modules()) == 4
    for size in (28, 20, 9):
        assert model(torch.rand(3, 1, size, size)).shape == (3, 2)
    assert 250_000 < n_params(resnet()) < 350_000


@pytest.mark.parametrize("shape", [(3, 8, 24, 24), (2, 5, 7, 9), (1, 1, 2, 2)])
def test_max_pool2_gives_max_pools_numbers_with_and_without_gradients(shape):
    torch.manual_seed(0)
    x = torch.randn(shape)
    x[0, 0, :2, :2] = 1.0  # a tied window: the gradient still goes to one input, as max_pool2d's does
    for layout in (torch.contiguous_format, torch.channels_last):
        xl = x.contiguous(memory_format=layout)
        with torch.no_grad():
            assert torch.equal(MaxPool2()(xl), nn.functional.max_pool2d(xl, 2))
        ours, theirs = xl.clone().requires_grad_(), xl.clone().requires_grad_()
        out = MaxPool2()(ours)
        assert torch.equal(out, nn.functional.max_pool2d(theirs, 2))
        weights = torch.randn(out.shape)
        (out * weights).sum().backward()
        (nn.functional.max_pool2d(theirs, 2) * weights).sum().backward()
        assert torch.equal(ours.grad, theirs.grad)


def test_max_pool2_records_the_librarys_pool_when_traced():
    """Tracing (as TorchScript and ONNX export do, without gradients) records one max_pool2d, as
    nn.MaxPool2d's model would hold, not the elementwise maxima used to score."""
    with torch.no_grad():
        traced = torch.jit.trace(nn.Sequential(MaxPool2()), torch.randn(1, 1, 4, 4))
    graph = str(traced.inlined_graph)
    assert "aten::max_pool2d" in graph and "aten::maximum" not in graph
