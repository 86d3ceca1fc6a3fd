"""M_θ(z, u): K steps of Langevin dynamics toward exp(f), the short-run sampler.

One step (the paper's eq. 4 with a = Δτ/2 and b = √Δτ, or the authors' tempered a = 1, b = 0.01):

    x_{k+1} = x_k + a · ∇ₓ f(x_k) + b · u_k,      u_k ~ N(0, I)

A pure function of the network, the start z = x_0 and the noise u: pass `noise` to fix u
(interpolation, reconstruction, tests), or a `generator` to draw it. With `create_graph=True`
the result stays differentiable in x_0 and in f's parameters (second-order autograd).
"""
from __future__ import annotations

from typing import Callable

import torch

Energy = Callable[[torch.Tensor], torch.Tensor]


def langevin_step(x: torch.Tensor, grad: torch.Tensor, u: torch.Tensor, *, step_size: float, noise_std: float,
                  clamp: tuple[float, float] | None = None, inplace: bool = False) -> torch.Tensor:
    """One step of eq. (4): x + a·∇f(x) + b·u, then the optional clamp. Every chain (plain,
    differentiable, CUDA-graph, segmented) goes through here, so they all take the same step.
    `inplace` reuses x's storage: only for an x that no autograd graph needs."""
    if inplace:
        x = x.add_(grad, alpha=step_size).add_(u, alpha=noise_std)
        return x.clamp_(*clamp) if clamp is not None else x
    # the same kernels as the in-place path, so both give bit-identical chains
    x = torch.add(x, grad, alpha=step_size).add(u, alpha=noise_std)
    return x.clamp(*clamp) if clamp is not None else x


def langevin(
    f: Energy,
    x0: torch.Tensor,
    *,
    n_steps: int,
    step_size: float,
    noise_std: float,
    noise: torch.Tensor | Callable[[int], torch.Tensor] | None = None,
    generator: torch.Generator | None = None,
    create_graph: bool = False,
    clamp: tuple[float, float] | None = None,
    return_trajectory: bool = False,
    on_step: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
    grad_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
):
    """Runs K = n_steps steps from x0 and returns x_K (and [x_0, ..., x_K] if return_trajectory).

    f: maps a batch to a [B] tensor of negative energies.
    noise: [n_steps, *x0.shape] standard normals u_k, or a function k -> u_k; drawn from `generator`
        when None.
    clamp: (low, high) to clip x after every step; None follows the paper (no clipping).
    on_step: called as on_step(k, x_{k+1}, ∇f(x_k)) for diagnostics (gradient magnitude etc.).
        x_{k+1} is the chain's live state, updated in place by the next step: copy it to keep it.
    grad_fn: x ↦ ∇ₓ Σ_b f(x)_b computed without autograd (sampler/inputgrad.py's fast path); f is then
        not called. Not with create_graph.
    """
    if grad_fn is not None and create_graph:
        raise ValueError("grad_fn gives no graph: it cannot be used with create_graph=True")
    if torch.is_tensor(noise) and tuple(noise.shape) != (n_steps, *x0.shape):
        raise ValueError(f"noise must have shape {(n_steps, *x0.shape)}, got {tuple(noise.shape)}")
    if create_graph:
        x = x0 if x0.requires_grad else x0.detach().requires_grad_(True)
    else:
        x = x0.detach().clone()
    trajectory = [x0.detach().clone()] if return_trajectory else None
    for k in range(n_steps):
        if noise is None:
            u = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        else:
            u = noise[k] if torch.is_tensor(noise) else noise(k)
        if create_graph:
            (grad,) = torch.autograd.grad(f(x).sum(), x, create_graph=True)
        elif grad_fn is not None:
            grad = grad_fn(x)
        else:
            x.requires_grad_(True)
            with torch.enable_grad():
                (grad,) = torch.autograd.grad(f(x).sum(), x)
            x = x.detach()  # the graph is freed, so updating its input in place is safe
        x = langevin_step(x, grad, u, step_size=step_size, noise_std=noise_std, clamp=clamp,
                          inplace=not create_graph)
        if on_step is not None:
            on_step(k, x, grad)
        if trajectory is not None:
            trajectory.append(x.detach().clone())
    return (x, trajectory) if return_trajectory else x


def initial(shape, *, kind: str = "uniform", std: float = 1.0, generator=None, device=None,
            dtype=torch.float32) -> torch.Tensor:
    """z ~ p_0: uniform on [-std, std] (std = 1: [-1, 1], the paper's choice) or N(0, std²). A std below
    the one trained with draws tighter starts at sampling time (README, "Sample")."""
    if kind == "uniform":
        z = torch.rand(shape, generator=generator, device=device, dtype=dtype).mul_(2).sub_(1)
        return z if std == 1.0 else z.mul_(std)  # std 1 leaves the paper's draw bit for bit
    if kind == "gaussian":
        return torch.randn(shape, generator=generator, device=device, dtype=dtype).mul_(std)
    raise ValueError(f"unknown initial distribution '{kind}' (uniform | gaussian)")
