"""f_θ(x) = ⟨θ, h(x)⟩ over FIXED features h: the model family of the paper's "relation to moment
matching" (§3.3). h is a frozen, seeded random network (a small ConvNet with global average
pooling for images, random Fourier features for points) and θ, the only parameter, starts at
zero, so the untrained chain is pure noise diffusion from p_0. `evaluation/moments.py` checks
that learning matches E_q[h] to E_data[h].
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..config import ModelConfig
from .registry import register


def _freeze(module: nn.Module) -> nn.Module:
    """Turns every parameter into a buffer: the optimiser, `frozen()` and the parameter count see
    only θ, while checkpoints (state_dict) still carry h."""
    for mod in module.modules():
        for name, p in list(mod.named_parameters(recurse=False)):
            delattr(mod, name)
            mod.register_buffer(name, p.detach().clone())
    return module


def _conv_features(channels: int, n_f: int) -> nn.Module:
    # the paper's conv stem and two stride-2 stages, then global average pooling:
    # D = 4·n_f translation-averaged responses, whatever the image size
    return nn.Sequential(
        nn.Conv2d(channels, n_f, 3, 1, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(n_f, 2 * n_f, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(2 * n_f, 4 * n_f, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten())


class _FourierFeatures(nn.Module):
    """h(x) = √(2/D)·cos(Wx + b), W ~ N(0, 1/ℓ²), b ~ U[0, 2π): a one-layer random-feature MLP whose
    span approximates smooth functions of length scale ℓ (Rahimi & Recht), with smooth ∇ₓh for Langevin."""

    def __init__(self, dim: int, n_features: int, length_scale: float):
        super().__init__()
        self.proj = nn.Linear(dim, n_features)
        nn.init.normal_(self.proj.weight, std=1.0 / length_scale)
        nn.init.uniform_(self.proj.bias, 0.0, 2 * math.pi)
        self.norm = math.sqrt(2.0 / n_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm * torch.cos(self.proj(x.flatten(1)))


@register("moments")
class MomentEnergy(nn.Module):
    """f_θ(x) = ⟨θ, h(x)⟩ with h frozen: images (image_size > 0) or points (image_size = 0, `channels`
    = the point's dimension). Same constructor as the networks in nets.py."""

    def __init__(self, cfg: ModelConfig, channels: int, image_size: int = 0):
        super().__init__()
        seed = cfg.feature_seed
        # a private RNG stream: h depends only on the seed, and the caller's RNG state is left as it was
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if image_size > 0:
                h = _conv_features(channels, cfg.n_f)
                n_features = 4 * cfg.n_f
            else:
                n_features = cfg.n_f
                h = _FourierFeatures(channels, n_features, cfg.feature_scale)
        self.points = image_size <= 0
        self.h = _freeze(h)
        self.theta = nn.Parameter(torch.zeros(n_features))  # θ = 0: f ≡ 0, the chain starts as pure diffusion

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.points:  # float32 even under bf16 autocast: bf16 would round the cos phase (and ∇f) visibly
            with torch.autocast(x.device.type, enabled=False):
                return self.h(x.float())
        return self.h(x).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.points:
            with torch.autocast(x.device.type, enabled=False):
                return self.features(x) @ self.theta
        return self.h(x) @ self.theta  # images: the ConvNet under the caller's precision, like nets.py
