"""How far a 2-D toy run is from the truth, measured on a grid over the toy.

    toy_divergences(model, "8gaussians", samples) -> {"kl_p_q", "tv_p_q", "kl_p_ptheta", "tv_p_ptheta", ...}
    toy_panels("run/toy.png", model, "8gaussians", samples)

Three densities on one square grid (data coordinates, ±1.1·scale): the true p (the toy's exact
log density), the model's exp f_θ (f takes model coordinates, data / scale), and q_θ, the density of
the short-run samples, estimated by a 2-D histogram smoothed with a Gaussian kernel (a Gaussian
KDE on the grid, in O(N + G²) instead of O(N·G²)). Each is normalised over the grid. The paper's
point is that q_θ can match p while exp f_θ does not, so both are reported.

A KDE of even a perfect sample is not p (sampling noise, kernel blur), so the same divergences of
an equal-size exact sample from the toy are returned as `*_floor`: what a perfect sampler scores.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from ...data.toys import TOYS
from ...errors import UserError
from ...plotting import pyplot, save_figure

EPS = 1e-10  # per-cell probability floor: an empty cell where p has mass costs a large, finite log ratio


def divergence_of_densities(p: torch.Tensor, q: torch.Tensor, eps: float = EPS) -> dict:
    """KL(p‖q) in nats and TV(p, q) = ½ Σ|p − q| of two non-negative arrays of the same shape
    (normalised here, so unnormalised densities on the same grid are fine)."""
    p, q = p.double().flatten(), q.double().flatten()
    if p.shape != q.shape or (p < 0).any() or (q < 0).any() or p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("expected two non-negative, non-zero densities of the same shape")
    p, q = p / p.sum(), q / q.sum()
    tv = 0.5 * (p - q).abs().sum()
    # cells with p = 0 contribute nothing; eps bounds the cost where q has (numerically) no mass
    ps, qs = (p + eps) / (1 + eps * len(p)), (q + eps) / (1 + eps * len(q))
    kl = torch.where(p > 0, p * (ps.log() - qs.log()), torch.zeros_like(p)).sum()
    return {"kl": float(kl.clamp_min(0)), "tv": float(tv)}


def _axis(toy_scale: float, grid_size: int) -> tuple[float, torch.Tensor]:
    half = 1.1 * toy_scale  # a margin past the toy's support (which ends near 0.9·scale)
    cell = 2 * half / grid_size
    return half, -half + cell * (torch.arange(grid_size, dtype=torch.float64) + 0.5)  # cell centres


def sample_density(samples: torch.Tensor, half: float, grid_size: int, bandwidth: float) -> torch.Tensor:
    """q on the grid [rows = y, cols = x]: histogram, then a separable Gaussian blur of `bandwidth`."""
    x = samples.detach().double().cpu()
    cell = 2 * half / grid_size
    idx = ((x + half) / cell).floor().long()
    inside = ((idx >= 0) & (idx < grid_size)).all(1)  # points off the grid carry no mass on it
    idx = idx[inside]
    hist = torch.zeros(grid_size * grid_size, dtype=torch.float64)
    hist.index_add_(0, idx[:, 1] * grid_size + idx[:, 0], torch.ones(len(idx), dtype=torch.float64))
    sigma = bandwidth / cell  # in cells
    r = max(1, int(math.ceil(4 * sigma)))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float64) / sigma) ** 2)
    k = (k / k.sum()).view(1, 1, -1)
    img = hist.view(1, grid_size, grid_size)  # [C=1, H, W]
    img = F.conv1d(img.reshape(-1, 1, grid_size), k, padding=r).view(1, grid_size, grid_size)  # along x
    img = F.conv1d(img.transpose(1, 2).reshape(-1, 1, grid_size), k, padding=r)  # along y
    return img.view(grid_size, grid_size).T.contiguous().clamp_min(0)


def default_bandwidth(n: int, toy_scale: float, grid_size: int) -> float:
    # Scott's n^(-1/6) decay, but from a fixed 0.1·scale rather than the data's spread: a multimodal
    # toy's global spread (≈ scale) would blur its modes away. Never under one grid cell.
    return max(0.1 * toy_scale * n ** (-1 / 6), 2.2 * toy_scale / grid_size)


@torch.no_grad()
def toy_grids(model, toy_name: str, samples: torch.Tensor, grid_size: int = 200,
              bandwidth: float | None = None) -> dict:
    """The three densities (float64 [G, G], rows = y) plus the exact-sample reference q, and `half`."""
    if toy_name not in TOYS:
        raise UserError(f"unknown toy '{toy_name}'; choose one of: {', '.join(TOYS)}")
    samples = torch.as_tensor(samples)
    if samples.dim() != 2 or samples.shape[1] != 2 or len(samples) < 2:
        raise UserError(f"toy samples must be [N, 2] points, got {tuple(samples.shape)}")
    toy = TOYS[toy_name]
    half, axis = _axis(toy.scale, grid_size)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    points = torch.stack([xx.flatten(), yy.flatten()], 1)  # row-major: row i is y = axis[i]
    p = torch.softmax(toy.log_density(points.float()).double(), 0)
    f = torch.cat([model.energy(b.to(model.device, torch.float32)).double().cpu()
                   for b in (points / toy.scale).split(8192)])
    p_theta = torch.softmax(f, 0)  # normalising exp f in float64: no overflow
    h = bandwidth or default_bandwidth(len(samples), toy.scale, grid_size)
    exact = toy.sample(len(samples), torch.Generator().manual_seed(12345))
    return {"p": p.view(grid_size, grid_size), "p_theta": p_theta.view(grid_size, grid_size),
            "q": sample_density(samples, half, grid_size, h), "q_exact": sample_density(exact, half, grid_size, h),
            "half": half, "bandwidth": h}


def _numbers(g: dict) -> dict:
    pq, pt, floor = (divergence_of_densities(g["p"], g[k]) for k in ("q", "p_theta", "q_exact"))
    return {"kl_p_q": pq["kl"], "tv_p_q": pq["tv"], "kl_p_ptheta": pt["kl"], "tv_p_ptheta": pt["tv"],
            "kl_p_q_floor": floor["kl"], "tv_p_q_floor": floor["tv"], "bandwidth": g["bandwidth"]}


def toy_divergences(model, toy_name: str, samples_data_coords: torch.Tensor, grid_size: int = 200,
                    bandwidth: float | None = None) -> dict:
    """KL(p‖q_θ), TV(p, q_θ) for the short-run samples and KL(p‖p_θ), TV(p, p_θ) for exp f_θ."""
    return _numbers(toy_grids(model, toy_name, samples_data_coords, grid_size, bandwidth))


def toy_panels(path: str | Path, model, toy_name: str, samples_data_coords: torch.Tensor,
               grid_size: int = 200, bandwidth: float | None = None, max_points: int = 2000) -> dict:
    """Writes true density | exp f_θ | short-run sample density (samples on top) to a PNG;
    returns the numbers shown in the titles."""
    plt = pyplot()

    g = toy_grids(model, toy_name, samples_data_coords, grid_size, bandwidth)
    n = _numbers(g)
    half = g["half"]
    titles = [f"true p ({toy_name})",
              f"exp f_θ   KL(p‖p_θ)={n['kl_p_ptheta']:.3f}  TV={n['tv_p_ptheta']:.3f}",
              f"short-run q_θ   KL(p‖q)={n['kl_p_q']:.3f}  TV={n['tv_p_q']:.3f}\n"
              f"(exact sample: KL={n['kl_p_q_floor']:.3f}  TV={n['tv_p_q_floor']:.3f})"]
    fig, axes = plt.subplots(1, 3, figsize=(13.5, 4.8), dpi=100)
    for ax, key, title in zip(axes, ("p", "p_theta", "q"), titles):
        ax.imshow(g[key].numpy(), origin="lower", extent=(-half, half, -half, half), cmap="viridis",
                  interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_aspect("equal")
    pts = torch.as_tensor(samples_data_coords).detach().float().cpu()[:max_points]
    axes[2].scatter(pts[:, 0], pts[:, 1], s=1, c="white", alpha=0.25, linewidths=0)
    axes[2].set_xlim(-half, half)
    axes[2].set_ylim(-half, half)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path)
    return n
