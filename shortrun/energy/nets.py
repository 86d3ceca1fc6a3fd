"""The networks f_θ: a batch [B, ...] -> [B] scalars, higher = more probable.

`ConvEnergy` is the paper's bottom-up ConvNet: conv3×3 → stride-2 conv4×4 stages that double
the width down to a 4×4 map → conv4×4 to one scalar, LeakyReLU 0.2, no normalisation. At 32×32
that is exactly the authors' 5-conv net; each doubling of the image size adds one stride-2
stage. `DigitsEnergy` suits the tiny 8×8 digits, `MLPEnergy` 2-D points.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..config import ModelConfig
from .registry import register


def _act(cfg: ModelConfig) -> nn.Module:
    if cfg.activation == "silu":
        return nn.SiLU()
    return nn.LeakyReLU(cfg.leak)


class SequentialEnergy(nn.Module):
    """f(x) = self.f(x) flattened to [B]: a net that is one nn.Sequential. sampler/inputgrad.py relies on
    exactly this forward to compute ∇ₓf by hand, so a subclass that changes forward loses that path."""

    f: nn.Sequential

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.f(x).flatten()


@register("convnet")
class ConvEnergy(SequentialEnergy):
    def __init__(self, cfg: ModelConfig, channels: int, image_size: int):
        super().__init__()
        n_stages = int(round(math.log2(image_size / 4)))
        if n_stages < 1 or 4 * 2 ** n_stages != image_size:
            raise ValueError(f"convnet needs a power-of-two image size >= 8, got {image_size}")
        width = [cfg.n_f * min(2 ** i, cfg.max_mult) for i in range(n_stages + 1)]
        layers = [nn.Conv2d(channels, width[0], 3, 1, 1), _act(cfg)]
        for i in range(n_stages):  # each stride-2 stage halves the map and doubles the width
            layers += [nn.Conv2d(width[i], width[i + 1], 4, 2, 1), _act(cfg)]
        layers.append(nn.Conv2d(width[-1], 1, 4, 1, 0))  # 4×4 map -> one scalar
        self.f = nn.Sequential(*layers)


@register("digits")
class DigitsEnergy(SequentialEnergy):
    """For 8×8 (or 16×16) digits: two 3×3 convs at full resolution keep stroke detail that
    the paper's stem-plus-stride layout would lose on so few pixels."""

    def __init__(self, cfg: ModelConfig, channels: int, image_size: int):
        super().__init__()
        n = cfg.n_f
        layers = [nn.Conv2d(channels, n, 3, 1, 1), _act(cfg), nn.Conv2d(n, 2 * n, 3, 1, 1), _act(cfg)]
        size, width = image_size, 2 * n
        while size > 4:
            layers += [nn.Conv2d(width, 2 * width, 4, 2, 1), _act(cfg)]
            size, width = size // 2, 2 * width
        layers.append(nn.Conv2d(width, 1, size, 1, 0))
        self.f = nn.Sequential(*layers)


@register("mlp")
class MLPEnergy(nn.Module):
    """For 2-D toy densities; SiLU (smooth) by default since ∇f of a ReLU net is piecewise constant."""

    def __init__(self, cfg: ModelConfig, channels: int = 2, image_size: int = 0):
        super().__init__()
        act = nn.SiLU if cfg.activation == "silu" else (lambda: nn.LeakyReLU(cfg.leak))
        dims = [channels] + [cfg.n_f] * cfg.depth
        layers = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), act()]
        layers.append(nn.Linear(dims[-1], 1))
        self.f = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.f(x.flatten(1)).flatten()
