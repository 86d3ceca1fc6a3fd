"""Interpolation in the sampler's noise code (paper Fig. 3).

    z_ρ = μ + ρ (z₁ − μ) + √(1 − ρ²) (z₂ − μ),   x_ρ = M_θ(z_ρ, u)

with the same u for every ρ of a row, so only z moves along the path: ρ = 1 gives
M_θ(z₁, u) and ρ = 0 gives M_θ(z₂, u). μ is p_0's mean: 0 for the paper's uniform noise, the
data's mean for a fitted p_0, so that every z_ρ has p_0's spread about its centre.
"""
from __future__ import annotations

import math

import torch

from ..model import ShortRun
from .reconstruction import reconstruct
from .synthesis import draw_latents


def default_rhos(n: int = 10) -> list[float]:
    return [1 - i / (n - 1) for i in range(n)] if n > 1 else [1.0]


def mix(z1: torch.Tensor, z2: torch.Tensor, rhos, mean: torch.Tensor | float = 0.0) -> torch.Tensor:
    """[len(rhos), *z.shape]: the path from z1 (ρ = 1) to z2 (ρ = 0) about p_0's mean."""
    return torch.stack([mean + r * (z1 - mean) + math.sqrt(max(0.0, 1 - r * r)) * (z2 - mean) for r in rhos])


def _run_rows(model: ShortRun, z1: torch.Tensor, z2: torch.Tensor, u: torch.Tensor, rhos) -> torch.Tensor:
    """Rows of chains: each row shares its own u ([K, n_rows, *shape]) across the ρ grid."""
    rows = []
    with model.frozen():
        for i in range(len(z1)):
            zs = mix(z1[i], z2[i], rhos, model.start_mean())
            noise = u[:, i:i + 1].expand(-1, len(rhos), *u.shape[2:]).contiguous()
            rows.append(model.chain(zs, noise=noise).detach().cpu())
    return torch.stack(rows)


def interpolate(model: ShortRun, n_pairs: int = 8, rhos=None, seed: int = 0) -> torch.Tensor:
    """[n_pairs, len(rhos), *shape] in model space; pair p draws z₁, z₂ and u from seeds of (seed, p)."""
    rhos = default_rhos() if rhos is None else list(rhos)
    z1, u = draw_latents(model, range(0, 2 * n_pairs, 2), seed)
    z2, _ = draw_latents(model, range(1, 2 * n_pairs, 2), seed)
    return _run_rows(model, z1, z2, u, rhos)


def interpolate_observed(model: ShortRun, x_a: torch.Tensor, x_b: torch.Tensor, rhos=None, seed: int = 0,
                         **reconstruct_kw) -> torch.Tensor:
    """Between observed images (model space, [n, *shape] each): reconstruct both with one shared u,
    then interpolate their codes. Returns [n, len(rhos), *shape]."""
    rhos = default_rhos() if rhos is None else list(rhos)
    n = len(x_a)
    rec = reconstruct(model, torch.cat([x_a, x_b]), seed=seed, share_noise=True, **reconstruct_kw)
    u = rec.noise[:, :n]
    return _run_rows(model, rec.z[:n], rec.z[n:], u, rhos)
