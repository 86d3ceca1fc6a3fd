"""∇ₓ f for the ConvNet family, written out by hand for the chain's CPU fast path (oneDNN).

The chain needs ∇ₓ f(x_k) K times with θ fixed, and never f itself. Autograd pays for three
things it does not know are unnecessary here (benchmarks/RESULTS.md):
  * it re-packs every conv weight into oneDNN's blocked layout on each call, forward and
    backward; here each weight is packed once per chain, for both directions;
  * LeakyReLU runs as its own pass; here it is fused into the forward convolution;
  * the last conv (a valid conv to one scalar per example) is evaluated and differentiated,
    though ∂(Σ_b f_b)/∂h_b is simply its weight: it is broadcast instead.

For f = w_L ∗ φ(W_{L-1} ∗ ... φ(W_1 ∗ x)) with y_l = φ(W_l ∗ y_{l-1} + b_l), φ = LeakyReLU(s):
    g_{L-1} = w_L,   g_{l-1} = W_lᵀ ∗ (g_l ⊙ φ'(y_l)),   ∇ₓ f = g_0
where W_lᵀ ∗ is the transposed convolution and φ'(y) = 1 if y > 0 else s (φ keeps the sign).

`InputGrad.build(net, ...)` returns None for any net it does not cover; the caller then uses
autograd. tests/test_inputgrad.py checks it against autograd on random nets and inputs.
"""
from __future__ import annotations

import torch
from torch import nn

from ..energy import SequentialEnergy

_mkldnn = torch.ops.mkldnn


def _available() -> bool:
    try:
        return (torch.backends.mkldnn.is_available()
                and hasattr(_mkldnn, "_convolution_pointwise")
                and hasattr(_mkldnn, "_convolution_transpose_pointwise"))
    except (AttributeError, RuntimeError):
        return False


def _layers(net: nn.Module) -> tuple[list[nn.Conv2d], float] | None:
    """The convs and the LeakyReLU slope of conv → LeakyReLU → ... → conv nets, else None."""
    # only nets whose forward is exactly f(x) = self.f(x).flatten(), not subclasses that change it
    if not isinstance(net, SequentialEnergy) or type(net).forward is not SequentialEnergy.forward:
        return None
    seq = net.f
    if not isinstance(seq, nn.Sequential) or len(seq) < 3 or len(seq) % 2 == 0:
        return None
    convs, slopes = list(seq[0::2]), list(seq[1::2])
    if not all(type(c) is nn.Conv2d for c in convs) or not all(type(a) is nn.LeakyReLU for a in slopes):
        return None
    if len({a.negative_slope for a in slopes}) != 1 or slopes[0].negative_slope <= 0:
        return None  # a zero slope would make φ' unrecoverable from the sign of y
    for c in convs:
        if (c.groups != 1 or c.dilation != (1, 1) or c.padding_mode != "zeros"
                or isinstance(c.padding, str) or c.bias is None):
            return None
    return convs, float(slopes[0].negative_slope)


class InputGrad:
    """x ↦ ∇ₓ Σ_b f(x)_b for one network state, input shape and dtype (pack once, call K times)."""

    def __init__(self, convs: list[nn.Conv2d], slope: float, shape: tuple[int, ...], dtype: torch.dtype):
        self.slope, self.dtype = slope, dtype
        self.layers = []  # (forward weight, transposed weight, bias, stride, padding, output_padding)
        n, _, h, w = shape
        for conv in convs[:-1]:
            weight = conv.weight.detach().to(dtype).contiguous(memory_format=torch.channels_last)
            stride, padding = list(conv.stride), list(conv.padding)
            kh, kw = conv.kernel_size
            oh = (h + 2 * padding[0] - kh) // stride[0] + 1
            ow = (w + 2 * padding[1] - kw) // stride[1] + 1
            # the transposed conv must land exactly on the forward input's size
            out_pad = [h - ((oh - 1) * stride[0] - 2 * padding[0] + kh),
                       w - ((ow - 1) * stride[1] - 2 * padding[1] + kw)]
            fwd = _mkldnn._reorder_convolution_weight(weight, padding, stride, [1, 1], 1, [n, conv.in_channels, h, w])
            bwd = _mkldnn._reorder_convolution_transpose_weight(
                weight, padding, out_pad, stride, [1, 1], 1, [n, conv.out_channels, oh, ow])
            bias = conv.bias.detach().to(dtype)
            self.layers.append((fwd, bwd, bias, stride, padding, out_pad))
            h, w = oh, ow
        last = convs[-1]
        self.last = last.weight.detach().to(dtype).contiguous(memory_format=torch.channels_last)
        self.shape = tuple(shape)

    @classmethod
    def build(cls, net: nn.Module, shape: tuple[int, ...], dtype: torch.dtype,
              device: torch.device) -> "InputGrad | None":
        """The fast path for `net` on inputs of `shape`, or None where it does not apply."""
        if device.type != "cpu" or len(shape) != 4 or dtype not in (torch.float32, torch.bfloat16):
            return None
        found = _layers(net)
        if found is None or not _available():
            return None
        convs, slope = found
        last = convs[-1]
        size = _spatial(convs[:-1], shape[2:])
        # the last conv must map the whole remaining map to one value: then its input gradient is w_L
        if (last.out_channels != 1 or last.padding != (0, 0) or tuple(last.kernel_size) != size):
            return None
        return cls(convs, slope, shape, dtype)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape) != self.shape:
            raise ValueError(f"InputGrad was packed for {self.shape}, got {tuple(x.shape)}")
        y = x.to(dtype=self.dtype, memory_format=torch.channels_last)
        outputs = []  # y_l: their signs give φ'(y_l) in the backward pass
        for fwd, _, bias, stride, padding, _ in self.layers:
            y = _mkldnn._convolution_pointwise(y, fwd, bias, padding, stride, [1, 1], 1,
                                               "leaky_relu", [self.slope], "")
            outputs.append(y)
        g = self.last.expand(self.shape[0], -1, -1, -1)
        for (_, bwd, _, stride, padding, out_pad), y in zip(reversed(self.layers), reversed(outputs)):
            g = torch.ops.aten.leaky_relu_backward(g, y, self.slope, True)  # g ⊙ φ'(y)
            g = _mkldnn._convolution_transpose_pointwise(g, bwd, None, padding, out_pad, stride, [1, 1], 1,
                                                         "none", [], "")
        out = torch.empty_like(x)
        return out.copy_(g)  # back to x's dtype and memory format in one pass


def _spatial(convs: list[nn.Conv2d], size) -> tuple[int, int]:
    h, w = size
    for c in convs:
        h = (h + 2 * c.padding[0] - c.kernel_size[0]) // c.stride[0] + 1
        w = (w + 2 * c.padding[1] - c.kernel_size[1]) // c.stride[1] + 1
    return h, w
