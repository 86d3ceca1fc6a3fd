"""Reconstruction: infer the noise code z of an observed image through the sampler.

    min_z ‖x − M_θ(z, u)‖²,   z₀ ~ p_0, u fixed,

by gradient descent that differentiates through all K Langevin steps (second-order
autograd; see sampler/segmented.py to bound the memory). The paper runs 200 descent steps and
shows M_θ(z_t) over t. Errors are reported on the [0, 1] pixel scale.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..model import ShortRun
from ..progress import bar as progress_bar
from ..seeding import RECONSTRUCTION
from .synthesis import draw_latents


@dataclass
class Reconstruction:
    z: torch.Tensor  # inferred codes [N, *shape]
    noise: torch.Tensor  # the fixed u [K, N, *shape]
    x: torch.Tensor  # M_θ(z_T, u), model space
    curve: list[float] = field(default_factory=list)  # mean per-pixel MSE ([0, 1] scale) at each step t
    frames: dict[int, torch.Tensor] = field(default_factory=dict)  # t -> M_θ(z_t, u) for the recorded t

    @property
    def mse(self) -> float:
        return self.curve[-1]


def pixel_mse(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-example mean squared error on the [0, 1] scale (model space is [-1, 1])."""
    return ((x.clamp(-1, 1) - target) / 2).pow(2).flatten(1).mean(1)


def reconstruct(model: ShortRun, target: torch.Tensor, *, steps: int = 200, lr: float = 0.05,
                optimizer: str = "adam", seed: int = 0, share_noise: bool = False, segments: int = 0,
                record: tuple[int, ...] = (0, 10, 25, 50, 100, 200), progress: bool = False) -> Reconstruction:
    """Infers z for each target (model space, [N, *shape]); returns codes, outputs and the error curve."""
    n = len(target)
    target = target.to(model.device)
    # not sample i's code and noise: with those, reconstructing `shortrun sample`'s output of the same
    # seed would start at the answer
    z, noise = draw_latents(model, range(n), seed, RECONSTRUCTION)
    if share_noise:  # one u for every target: needed to interpolate between their codes
        noise = noise[:, :1].expand_as(noise).contiguous()
    z = z.clone().requires_grad_(True)
    optimizers = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}
    if optimizer not in optimizers:
        raise ValueError(f"optimizer must be one of {sorted(optimizers)}, got {optimizer!r}")
    opt = optimizers[optimizer]([z], lr=lr)
    result = Reconstruction(z, noise, target)
    with model.frozen():
        for t in progress_bar(iterable=range(steps + 1), disable=not progress, desc="reconstruct"):
            x = model.chain_differentiable(z, noise, segments=segments)
            per_image = pixel_mse(x, target)
            result.curve.append(per_image.mean().item())
            if t in record:
                # a copy: with K = 0 the chain returns z itself, which opt.step() then updates in place
                result.frames[t] = x.detach().to("cpu", copy=True)
            if t == steps:  # the last evaluation is of the final code; no step after it
                break
            opt.zero_grad(set_to_none=True)
            ((x - target) ** 2).flatten(1).sum(1).mean().backward()
            opt.step()
    result.z, result.x = z.detach(), x.detach().clone()  # with K = 0, x is z
    return result
