"""2-D toy densities (8gaussians, rings, checkerboard, moons) with exact samplers and log densities.

Each toy lives in its usual coordinates; `scale` maps it into model space (points / scale lie
within about [-0.9, 0.9]^2), so that the model's initial distribution U[-1, 1]^2 covers the data.
`log_density` is the normalised log density of the sampler, in data coordinates, so plots and
metrics can compare a learned model with the truth. `TOYS` gives all of this by name.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from ..config import DataConfig
from .dataset import Dataset


@dataclass(frozen=True)
class Toy:
    name: str
    scale: float  # data coordinates = model coordinates * scale
    sample: Callable[[int, torch.Generator], torch.Tensor]  # (n, generator) -> float32 [n, 2]
    log_density: Callable[[torch.Tensor], torch.Tensor]  # float [n, 2] in data coordinates -> [n]


def _log_mixture(points: torch.Tensor, centers: torch.Tensor, std: float) -> torch.Tensor:
    """log of the equal-weight mixture of N(c_k, std^2 I) over the rows of `centers`."""
    out = [torch.zeros(0)]
    for part in points.float().split(4096):  # bounded memory: [chunk, K] distances at a time
        # |x - c|^2 expanded into a matmul: several times faster than broadcasting [chunk, K, 2]
        d2 = (part.square().sum(1, keepdim=True) + centers.square().sum(1) - 2 * part @ centers.T).clamp_min(0)
        out.append(torch.logsumexp(-d2 / (2 * std ** 2), dim=1))
    return torch.cat(out) - math.log(len(centers)) - math.log(2 * math.pi * std ** 2)


# --- 8 gaussians: equal weights, on a circle of radius 2 ---------------------------------------

_G_STD = 0.2
_G_ANGLES = torch.arange(8) * (math.pi / 4)
_G_CENTERS = 2.0 * torch.stack([_G_ANGLES.cos(), _G_ANGLES.sin()], 1)


def _gaussians_sample(n: int, g: torch.Generator) -> torch.Tensor:
    k = torch.randint(0, 8, (n,), generator=g)
    return _G_CENTERS[k] + _G_STD * torch.randn(n, 2, generator=g)


def _gaussians_log_density(x: torch.Tensor) -> torch.Tensor:
    return _log_mixture(x, _G_CENTERS, _G_STD)


# --- rings: 4 concentric circles, gaussian in the radius -----------------------------------------

_R_RADII = torch.tensor([0.5, 1.0, 1.5, 2.0])
_R_STD = 0.08
_R_WEIGHTS = _R_RADII / _R_RADII.sum()  # mass proportional to length: every ring equally dense


def _rings_sample(n: int, g: torch.Generator) -> torch.Tensor:
    k = torch.multinomial(_R_WEIGHTS, n, replacement=True, generator=g)
    theta = 2 * math.pi * torch.rand(n, generator=g)
    r = _R_RADII[k] + _R_STD * torch.randn(n, generator=g)
    return torch.stack([r * theta.cos(), r * theta.sin()], 1)


def _rings_log_density(x: torch.Tensor) -> torch.Tensor:
    # p(x) = sum_k w_k N(|x|; R_k, std^2) / (2 pi |x|): the 1/(2 pi r) is the polar Jacobian.
    # r is floored at 0.01 so the (negligible, ~e^-19) mass at the origin does not become +inf.
    r = x.float().norm(dim=1).clamp_min(0.01)
    z = (r[:, None] - _R_RADII) / _R_STD
    log_radial = torch.logsumexp(_R_WEIGHTS.log() - 0.5 * z.square(), 1) - math.log(_R_STD * math.sqrt(2 * math.pi))
    return log_radial - torch.log(2 * math.pi * r)


# --- checkerboard: uniform on the 8 dark cells (side 2) of a 4x4 board on [-4, 4]^2 ---------------

_C_CELLS = torch.tensor([(i, j) for i in range(-2, 2) for j in range(-2, 2) if (i + j) % 2 == 0], dtype=torch.float32)


def _checker_sample(n: int, g: torch.Generator) -> torch.Tensor:
    k = torch.randint(0, len(_C_CELLS), (n,), generator=g)
    return 2.0 * (_C_CELLS[k] + torch.rand(n, 2, generator=g))


def _checker_log_density(x: torch.Tensor) -> torch.Tensor:
    # -inf off the support: the true value; callers averaging it over model samples should clamp
    x = x.float()
    cell = torch.floor(x / 2)
    dark = ((cell[:, 0] + cell[:, 1]) % 2 == 0) & (x.abs() < 4).all(1)
    inside = torch.full((len(x),), -math.log(len(_C_CELLS) * 4.0))
    return torch.where(dark, inside, torch.full_like(inside, -math.inf))


# --- two moons: sklearn's make_moons arcs, centred at the origin, with gaussian noise -------------

_M_STD = 0.1


def _moon_arc(t: torch.Tensor) -> torch.Tensor:
    # the upper moon; the lower moon is its mirror image through the origin
    return torch.stack([t.cos() - 0.5, t.sin() - 0.25], -1)


# the uniform-in-angle arcs, convolved with the noise, as a mixture of 2 x 256 gaussians (midpoint rule):
# neighbours are 0.012 apart along the arc, an eighth of the noise, so the sum matches the integral to
# float precision along the arcs and within ~0.3% near their tips
_M_T = (torch.arange(256) + 0.5) * (math.pi / 256)
_M_CENTERS = torch.cat([_moon_arc(_M_T), -_moon_arc(_M_T)])


def _moons_sample(n: int, g: torch.Generator) -> torch.Tensor:
    t = math.pi * torch.rand(n, generator=g)
    sign = 1.0 - 2.0 * torch.randint(0, 2, (n, 1), generator=g)
    return sign * _moon_arc(t) + _M_STD * torch.randn(n, 2, generator=g)


def _moons_log_density(x: torch.Tensor) -> torch.Tensor:
    return _log_mixture(x, _M_CENTERS, _M_STD)


# scales: the outermost mass (about 3 std past the furthest centre) lands near 0.9 in model space
TOYS: dict[str, Toy] = {
    "8gaussians": Toy("8gaussians", 3.0, _gaussians_sample, _gaussians_log_density),
    "rings": Toy("rings", 2.6, _rings_sample, _rings_log_density),
    "checkerboard": Toy("checkerboard", 4.5, _checker_sample, _checker_log_density),
    "moons": Toy("moons", 2.0, _moons_sample, _moons_log_density),
}


def _loader(toy: Toy) -> Callable[[DataConfig], Dataset]:
    def load(cfg: DataConfig) -> Dataset:
        # fixed seeds: every run (and machine) trains and evaluates on the same points
        train = toy.sample(cfg.toy_size, torch.Generator().manual_seed(0)).float()
        test = toy.sample(5000, torch.Generator().manual_seed(1)).float()
        return Dataset(toy.name, "points", train, test, scale=toy.scale)

    return load


LOADERS: dict[str, Callable[[DataConfig], Dataset]] = {name: _loader(toy) for name, toy in TOYS.items()}
