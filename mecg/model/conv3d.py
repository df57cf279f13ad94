"""A 3D convolution with a faster CPU backward pass for few channels (CMCL-Net's flow-crop CNN).

PyTorch's CPU backward of ``Conv3d`` (oneDNN) is slow for the small channel counts of the
``small`` preset's video branch (2 -> 8 -> 12 channels over 8 x 8 flow crops): it took about three
quarters of a training step. :class:`FastConv3d` is an ``nn.Conv3d`` (same parameters, same
state-dict keys, same forward) whose backward on the CPU computes

* the **weight and bias gradients** with the same ATen routine on channels-last copies of the
  input and the output gradient (about ten times faster there), and
* the **input gradient** as one stride-1 convolution per stride phase: input positions
  ``i = s * m + r`` receive the output gradient through the kernel taps ``k = (r + p) mod s, + s, ...``
  only, so each phase is a plain correlation of the output gradient with those taps reversed
  (``s_t * s_h * s_w`` small forward convolutions instead of one transposed convolution).

Gradients equal PyTorch's to float rounding (``tests/test_conv3d.py`` checks them against
``torch.autograd.gradcheck`` in float64 and against ``nn.Conv3d`` in float32). On CUDA, with
dilation or groups, or with string padding it is ``nn.Conv3d`` unchanged.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F


def conv3d_input_grad(
    grad: torch.Tensor, weight: torch.Tensor, stride: tuple[int, ...], padding: tuple[int, ...], shape: torch.Size
) -> torch.Tensor:
    """Gradient of ``conv3d(x, weight, stride=stride, padding=padding)`` with respect to ``x`` (of ``shape``).

    ``grad`` is the output gradient ``(N, C_out, To, Ho, Wo)``; dilation 1, one group.
    """
    out = grad.new_zeros(shape)
    wt = weight.transpose(0, 1)  # (C_in, C_out, kt, kh, kw): the input's channels come out
    for phase in itertools.product(*(range(s) for s in stride)):
        taps, pads, dst = [], [], []
        for d, (r, s, p, k, size) in enumerate(zip(phase, stride, padding, weight.shape[2:], shape[2:], strict=True)):
            k0 = (r + p) % s  # the first kernel tap that reaches inputs of this phase
            n_taps = len(range(k0, k, s))
            n_in = len(range(r, size, s))
            if n_taps == 0 or n_in == 0:
                break  # no tap reaches this phase: its gradient stays zero
            q = (r + p - k0) // s  # input r + s*m reads output m + q - j through tap k0 + s*j
            taps.append(slice(k0, k, s))
            # pad (or crop, when negative) the output gradient so that a valid correlation yields n_in values
            pads.append((n_taps - 1 - q, n_in - 1 + q - (grad.shape[2 + d] - 1)))
            dst.append(slice(r, size, s))
        else:
            kernel = wt[(slice(None), slice(None), *taps)].flip(2, 3, 4)
            flat = [v for lr in reversed(pads) for v in lr]  # F.pad: last dimension first
            out[(slice(None), slice(None), *dst)] = F.conv3d(F.pad(grad, flat), kernel)
    return out


class _Conv3dFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        stride: tuple[int, ...],
        padding: tuple[int, ...],
    ) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding, ctx.has_bias = stride, padding, bias is not None
        return F.conv3d(x, weight, bias, stride, padding)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        gx = gw = gb = None
        want_w, want_b = ctx.needs_input_grad[1], ctx.has_bias and ctx.needs_input_grad[2]
        if want_w or want_b:
            cl = torch.channels_last_3d
            _, gw, gb = torch.ops.aten.convolution_backward(
                grad.contiguous(memory_format=cl),
                x.contiguous(memory_format=cl),
                weight,
                [weight.shape[0]] if ctx.has_bias else None,
                ctx.stride,
                ctx.padding,
                (1, 1, 1),
                False,
                (0, 0, 0),
                1,
                (False, want_w, want_b),
            )
            gw = gw.contiguous() if want_w else None
            gb = gb if want_b else None
        if ctx.needs_input_grad[0]:
            gx = conv3d_input_grad(grad.contiguous(), weight, ctx.stride, ctx.padding, x.shape)
        return gx, gw, gb, None, None


class FastConv3d(nn.Conv3d):
    """``nn.Conv3d`` with the faster CPU backward of this module (same parameters and forward)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        plain = (
            x.device.type != "cpu"
            or not torch.is_grad_enabled()
            or isinstance(self.padding, str)
            or self.padding_mode != "zeros"
            or self.groups != 1
            or any(d != 1 for d in self.dilation)
        )
        if plain:
            return super().forward(x)
        return _Conv3dFunction.apply(x, self.weight, self.bias, tuple(self.stride), tuple(self.padding))
