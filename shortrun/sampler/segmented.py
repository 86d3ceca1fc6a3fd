"""Backpropagation through the K-step chain with gradient checkpointing.

Differentiating x_K = M_θ(z, u) in z keeps K second-order graphs alive (each step holds the
graph of ∇f). Split into S segments, only the S segment inputs are kept; in the backward
pass each segment is run again with create_graph=True and differentiated, one at a time.
Memory falls from O(K) graphs to O(K/S) graphs plus S inputs, for one extra forward chain.
Gradients flow to z only (not to f's parameters): that is what reconstruction needs.
"""
from __future__ import annotations

from typing import Callable

import torch

from .chain import langevin


class _Segment(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, noise, run):
        ctx.run = run
        ctx.save_for_backward(x, noise)
        return run(x.detach(), noise, False)

    @staticmethod
    def backward(ctx, grad_out):
        x, noise = ctx.saved_tensors
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            x_out = ctx.run(x_in, noise, True)
            (grad_in,) = torch.autograd.grad(x_out, x_in, grad_out)
        return grad_in, None, None


def langevin_checkpointed(f: Callable, z: torch.Tensor, noise: torch.Tensor, *, step_size: float,
                          noise_std: float, segments: int, clamp=None) -> torch.Tensor:
    """M_θ(z, u), differentiable in z, storing only `segments` intermediate states."""
    n_steps = noise.shape[0]
    bounds = torch.linspace(0, n_steps, segments + 1).round().long().tolist()

    def run(x, u, create_graph):
        return langevin(f, x, n_steps=len(u), step_size=step_size, noise_std=noise_std, noise=u,
                        create_graph=create_graph, clamp=clamp)

    x = z
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        if hi > lo:
            x = _Segment.apply(x, noise[lo:hi], run)
    return x
