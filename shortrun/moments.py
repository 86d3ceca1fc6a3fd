"""The paper's "relation to moment matching", made checkable.

With f_θ(x) = ⟨θ, h(x)⟩ over FIXED features h, the learning gradient is E_data[h] − E_q[h], where
q is the short-run samples' distribution: learning stops where q_θ matches the data's moments of h,
whether or not exp f_θ is a good density (the paper's §3.3). `MomentEnergy` is that model family:
h is a frozen, seeded random network (a small ConvNet with global average pooling for images,
random Fourier features for points) and θ, the only parameter, starts at zero, so the untrained
chain is pure noise diffusion from p_0.

    net = MomentEnergy(cfg.model, channels, image_size)     # image_size=0: 2-D points
    moment_gap(model, data_in_model_space, n_samples=2000, seed=0)
      = ‖E_q[h] − E_data[h]‖ / ‖E_data[h]‖
    moment_check(trained, untrained, data)  -> {"gap_before", "gap_after", "ratio"}
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .config import ModelConfig


def _freeze(module: nn.Module) -> nn.Module:
    """Turns every parameter into a buffer: the optimiser, `frozen()` and the parameter count see
    only θ, while checkpoints (state_dict) still carry h."""
    for mod in module.modules():
        for name, p in list(mod.named_parameters(recurse=False)):
            delattr(mod, name)
            mod.register_buffer(name, p.detach().clone())
    return module


def _conv_features(channels: int, n_f: int) -> nn.Module:
    # the paper's conv stem and two stride-2 stages (DESIGN §1), then global average pooling:
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


class MomentEnergy(nn.Module):
    """f_θ(x) = ⟨θ, h(x)⟩ with h frozen: images (image_size > 0) or points (image_size = 0, `channels`
    = the point's dimension). Same constructor as the networks in energy.py."""

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
        return self.h(x) @ self.theta  # images: the ConvNet under the caller's precision, like energy.py


@torch.no_grad()
def _mean_features(net: MomentEnergy, x: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    return sum(net.features(b).double().sum(0) for b in x.split(chunk)) / len(x)


def _feature_net(model) -> MomentEnergy:
    net = getattr(model.net, "module", model.net)  # through a DDP wrapper
    if not hasattr(net, "features"):
        raise TypeError(f"moment_gap needs a model with fixed features h (MomentEnergy), got {type(net).__name__}")
    return net


def short_run_samples(model, n: int, seed: int, chunk: int = 512) -> torch.Tensor:
    """n fresh short-run samples M_θ(z, u), z ~ p_0, from one seeded generator (CPU or GPU)."""
    g = torch.Generator(device=model.device).manual_seed(seed)
    out = []
    with model.frozen():
        for size in [chunk] * (n // chunk) + ([n % chunk] if n % chunk else []):
            out.append(model.run(model.init(size, g), generator=g))
    return torch.cat(out)


def moment_gap(model, data_model_space: torch.Tensor, n_samples: int, seed: int) -> float:
    """‖E_q[h] − E_data[h]‖ / ‖E_data[h]‖: how far the short-run samples are from the data in the
    moments that learning matches (0 at the fixed point of the learning rule)."""
    net = _feature_net(model)
    x = short_run_samples(model, n_samples, seed)
    e_data = _mean_features(net, data_model_space.to(model.device))
    e_q = _mean_features(net, x)
    return float((e_q - e_data).norm() / e_data.norm().clamp_min(1e-12))


def moment_check(trained, untrained, data_model_space: torch.Tensor, n_samples: int = 2000,
                 seed: int = 0) -> dict:
    """The gap before learning (the untrained model, θ = 0) and after (the trained one), with the
    same chains' seed and data; ratio = after / before (well below 1 when learning matched moments).
    Both must share h (the same feature_seed), or the two gaps would measure different moments."""
    h_a, h_b = _feature_net(trained).h.state_dict(), _feature_net(untrained).h.state_dict()
    if h_a.keys() != h_b.keys() or any(not torch.equal(h_a[k].cpu(), h_b[k].cpu()) for k in h_a):
        raise ValueError("moment_check: the two models have different features h (model.feature_seed)")
    before = moment_gap(untrained, data_model_space, n_samples, seed)
    after = moment_gap(trained, data_model_space, n_samples, seed)
    return {"gap_before": before, "gap_after": after, "ratio": after / max(before, 1e-12)}
