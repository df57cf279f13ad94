"""FastConv3d: the same layer as nn.Conv3d (parameters, forward, gradients), with a faster CPU backward."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mecg.model.cmclnet import CMCLConfig, CMCLNet
from mecg.model.conv3d import FastConv3d, _Conv3dFunction, conv3d_input_grad


@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "shape"),
    [
        ((3, 3, 3), (1, 1, 1), (1, 1, 1), (2, 3, 5, 6, 7)),
        ((3, 3, 3), (1, 2, 2), (1, 1, 1), (2, 3, 5, 8, 8)),  # the video branch's second layer
        ((3, 3, 3), (1, 2, 2), (1, 1, 1), (2, 3, 5, 7, 9)),  # odd sizes: the last phase row is shorter
        ((3, 3, 3), (2, 2, 2), (0, 0, 0), (1, 2, 7, 6, 5)),
        ((3, 2, 1), (2, 3, 2), (1, 0, 0), (1, 2, 6, 7, 5)),  # a stride beyond the kernel: unread inputs
    ],
)
def test_gradients_pass_gradcheck_in_float64(kernel, stride, padding, shape) -> None:
    torch.manual_seed(0)
    conv = FastConv3d(shape[1], 4, kernel, stride=stride, padding=padding).double()
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)

    def layer(a: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        # the layer's own function, with the weights as inputs so that gradcheck checks their gradients too
        return _Conv3dFunction.apply(a, w, b, tuple(conv.stride), tuple(conv.padding))

    assert conv(x).grad_fn.name() == "_Conv3dFunctionBackward"
    assert torch.autograd.gradcheck(layer, (x, conv.weight, conv.bias))


def test_input_gradient_equals_torch_on_the_video_branch_shape() -> None:
    torch.manual_seed(1)
    x = torch.randn(6, 8, 16, 8, 8, requires_grad=True)
    w = torch.randn(12, 8, 3, 3, 3)
    y = nn.functional.conv3d(x, w, None, (1, 2, 2), 1)
    g = torch.randn_like(y)
    (ref,) = torch.autograd.grad(y, x, g)
    mine = conv3d_input_grad(g, w, (1, 2, 2), (1, 1, 1), x.shape)
    assert torch.allclose(mine, ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())


def test_same_parameters_forward_and_float32_gradients_as_nn_conv3d() -> None:
    torch.manual_seed(2)
    ref = nn.Conv3d(2, 8, 3, padding=1, stride=(1, 2, 2))
    fast = FastConv3d(2, 8, 3, padding=1, stride=(1, 2, 2))
    assert fast.state_dict().keys() == ref.state_dict().keys()
    fast.load_state_dict(ref.state_dict())
    x1 = torch.randn(5, 2, 16, 8, 8, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    y1, y2 = ref(x1), fast(x2)
    assert torch.equal(y1, y2)  # the forward is nn.Conv3d's
    g = torch.randn_like(y1)
    (y1 * g).sum().backward()
    (y2 * g).sum().backward()
    for a, b in [(x1.grad, x2.grad), (ref.weight.grad, fast.weight.grad), (ref.bias.grad, fast.bias.grad)]:
        assert torch.allclose(b, a, rtol=1e-4, atol=1e-5 * a.abs().max().item())


def test_a_checkpoint_of_the_network_keeps_its_keys_and_trains_the_same_direction() -> None:
    """The small preset's video branch uses FastConv3d: the state dict is unchanged, and one
    training step's gradients match the same network built from nn.Conv3d."""
    torch.manual_seed(3)
    net = CMCLNet(CMCLConfig(mode="video"))
    cnn = net.video.cnn
    assert isinstance(cnn[0], FastConv3d) and isinstance(cnn[3], FastConv3d)
    plain = CMCLNet(CMCLConfig(mode="video"))
    for i in (0, 3):
        c = cnn[i]
        plain.video.cnn[i] = nn.Conv3d(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding)
    plain.load_state_dict(net.state_dict())  # the same keys and shapes
    batch = {"feats": torch.randn(4, 16, 12, 4), "crops": torch.randn(4, 16, 12, 2, 8, 8)}
    for m in (net, plain):
        m.train()
        torch.manual_seed(4)  # the same dropout
        logit, _ = m(batch)
        logit.sum().backward()
    w_fast, w_plain = cnn[0].weight.grad, plain.video.cnn[0].weight.grad
    assert torch.allclose(w_fast, w_plain, rtol=1e-3, atol=1e-4 * w_plain.abs().max().item())


def test_without_gradients_on_gpu_settings_or_string_padding_it_is_nn_conv3d() -> None:
    x = torch.randn(1, 2, 4, 5, 5, requires_grad=True)
    assert FastConv3d(2, 3, 3, padding="same")(x).grad_fn.name() == "ConvolutionBackward0"
    assert FastConv3d(2, 3, 3, padding=1, dilation=2)(x).grad_fn.name() == "ConvolutionBackward0"
    conv = FastConv3d(2, 3, 3, padding=1)
    with torch.no_grad():
        y = conv(x)
    assert torch.equal(y, nn.functional.conv3d(x, conv.weight, conv.bias, 1, 1))
