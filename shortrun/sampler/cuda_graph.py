"""The K-step chain as one CUDA graph: on a GPU each Langevin step is a handful of small
kernels, so launching them one by one leaves the device idle; replaying a captured graph
launches all K steps at once.

The chain works on static buffers (shapes fixed at capture): the start z and the whole step
noise u [K, m, *shape] are copied in before each replay. The caller draws u exactly as the
plain chain would (the global batch's noise per step, each rank keeping its slice), so the
graph chain computes the same M_θ(z, u) as `langevin`, whatever the logging interval or the
number of ranks; only the floating-point kernels may differ. The same body runs eagerly on
the CPU, where the tests compare it with the plain chain.

Until `benchmarks/gpu_check.py` has run on a GPU and matched the plain chain there, this path
is opt-in (`train.cuda_graph=true`).
"""
from __future__ import annotations

import torch

from .chain import langevin_step


class GraphedChain:
    """x_K = M_θ(z, u) for a fixed batch size, captured as a CUDA graph on first use (GPU only).

    `model` is a ShortRun (anything with .energy, .sampler, .shape, .device and .frozen())."""

    def __init__(self, model, batch: int, warmup: int = 3):
        self.model, self.batch = model, batch
        self.use_graph = model.device.type == "cuda"
        K = model.sampler.n_steps
        self.z = torch.zeros((batch, *model.shape), device=model.device)
        self.noise = torch.zeros((K, batch, *model.shape), device=model.device)
        self.x = torch.zeros_like(self.z)
        self.graph = None
        self.warmup = warmup

    def _body(self) -> None:
        s, x = self.model.sampler, self.z.clone()
        clamp = (-1.0, 1.0) if s.clamp else None
        for k in range(s.n_steps):
            x.requires_grad_(True)
            (grad,) = torch.autograd.grad(self.model.energy(x).sum(), x)
            x = langevin_step(x.detach(), grad, self.noise[k], step_size=s.step_size, noise_std=s.noise_std,
                              clamp=clamp, inplace=True)
        self.x.copy_(x)

    def _capture(self) -> None:
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):  # warm-up on a side stream, as capture requires
            for _ in range(self.warmup):
                self._body()
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self._body()

    def __call__(self, z: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Runs the chain from z with step noise `noise` [K, m, *shape] (shapes fixed at construction)."""
        if z.shape != self.z.shape or noise.shape != self.noise.shape:
            raise ValueError(f"graphed chain was built for z {tuple(self.z.shape)} and u {tuple(self.noise.shape)}, "
                             f"got {tuple(z.shape)} and {tuple(noise.shape)}")
        self.z.copy_(z)
        self.noise.copy_(noise)
        with self.model.frozen():
            if not self.use_graph:
                self._body()
            else:
                if self.graph is None:
                    self._capture()
                self.graph.replay()
        return self.x.clone()
