"""A first convolution that is not trained: its filters come from the training images' patches.

The first layer of a digit CNN learns to respond to strokes and edges: the directions in which
small patches of the images vary most. Those directions can be read off the data before training,
as the eigenvectors of the patches' covariance (principal components). Each one scaled by one over
the square root of its eigenvalue gives outputs of variance 1 that do not correlate (whitening),
and each comes with its negative, so the ReLU after it keeps both signs of a stroke.

Frozen, the layer costs no gradient: backward stops at the second convolution, which then needs
no gradient for its input either, and the first pool runs without noting which input won. An
epoch of the best recipe takes about 60% of its time. Fast CIFAR-10 training (Keller Jordan's
airbench) freezes a whitened first layer for the same reason.
"""

import torch
from torch import nn

from ..errors import DigitlearnError

# patches of 10,000 images for the covariance (2,000 give nearly the same filters, but the recipe
# was chosen with these), read 500 at a time: the unfolded patches then take 30 MB, not the 3.5 GB
# of all 60,000 MNIST images. About half a second.
N_IMAGES, CHUNK = 10_000, 500


def first_conv(model: nn.Module) -> nn.Conv2d:
    """The first 2-D convolution in `model`, in the order its modules were registered."""
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        raise DigitlearnError(
            f"whitening needs a model with a convolution, and {type(model).__name__} has none"
        )
    return conv


def whiten_first_conv(model: nn.Module, images: torch.Tensor, eps: float = 0.01) -> nn.Conv2d:
    """Set `model`'s first convolution to whitening filters made from `images` and freeze it.

    `images` are model inputs, (N, C, H, W), prepared as training prepares them. The layer's
    filters become the top principal components of the patches its kernel sees, each scaled to
    give outputs of variance 1 (`eps` keeps the scale finite) and paired with its negative; its
    bias becomes 0. Neither is trained any more. Returns the convolution.
    """
    conv = first_conv(model)
    c_out, c_in, kh, kw = conv.weight.shape
    dims = c_in * kh * kw
    if images.ndim != 4 or images.shape[1] != c_in:
        raise DigitlearnError(f"whitening needs images shaped (N, {c_in}, H, W), not {tuple(images.shape)}")
    if c_out % 2 or c_out // 2 > dims:
        raise DigitlearnError(
            f"whitening gives an even number of filters, at most {2 * dims} for a {kh}x{kw} kernel "
            f"over {c_in} channel{'s' if c_in != 1 else ''}; this first convolution has {c_out}"
        )
    conv_args = {"stride": conv.stride, "dilation": conv.dilation}
    total, sum_x, n = torch.zeros(dims, dims, dtype=torch.float64), torch.zeros(dims, dtype=torch.float64), 0
    for part in images[:N_IMAGES].split(CHUNK):
        patches = nn.functional.unfold(part.float(), (kh, kw), **conv_args)  # (N, dims, positions)
        total += torch.bmm(patches, patches.transpose(1, 2)).sum(0, dtype=torch.float64)
        sum_x += patches.sum((0, 2), dtype=torch.float64)
        n += patches.shape[0] * patches.shape[2]
    mean = sum_x / n
    values, vectors = torch.linalg.eigh(total / n - torch.outer(mean, mean))  # ascending order
    top = c_out // 2
    values, vectors = values.flip(0)[:top], vectors.flip(1)[:, :top]
    filters = (vectors / (values.clamp(min=0) + eps).sqrt()).T.reshape(top, c_in, kh, kw)
    with torch.no_grad():
        conv.weight.copy_(torch.cat([filters, -filters]).to(conv.weight.dtype))
        if conv.bias is not None:
            conv.bias.zero_()
    conv.requires_grad_(False)
    return conv
