"""The K-step chain as one CUDA graph: on a GPU each Langevin step is a handful of small
kernels, so launching them one by one leaves the device idle; replaying a captured graph
launches all K steps at once.

The chain body works on static buffers (shapes fixed at capture) and draws its noise inside
the body from the default CUDA generator, which CUDA graphs replay safely: before each
replay we seed it from (seed, t), so every replay draws fresh, reproducible noise. The same
body runs eagerly on the CPU, where the tests compare it with the plain sampler.
"""
from __future__ import annotations

import torch

from .model import ShortRun


class GraphedChain:
    """x_K = M_θ(z, u) for a fixed batch size, captured as a CUDA graph on first use (GPU only)."""

    def __init__(self, model: ShortRun, batch: int, warmup: int = 3):
        self.model, self.batch = model, batch
        self.use_graph = model.device.type == "cuda"
        self.z = torch.zeros((batch, *model.shape), device=model.device)
        self.x = torch.zeros_like(self.z)
        self.graph = None
        self.warmup = warmup

    def _body(self, generator=None) -> None:
        s, x = self.model.sampler, self.z.clone()
        for _ in range(s.n_steps):
            x.requires_grad_(True)
            (grad,) = torch.autograd.grad(self.model.energy(x).sum(), x)
            u = torch.randn(x.shape, device=x.device, generator=generator)
            x = x.detach().add_(grad, alpha=s.step_size).add_(u, alpha=s.noise_std)
            if s.clamp:
                x.clamp_(-1, 1)
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

    def __call__(self, z: torch.Tensor, seed: int) -> torch.Tensor:
        """Runs the chain from z (batch fixed at construction); the step noise comes from `seed`."""
        if z.shape != self.z.shape:
            raise ValueError(f"graphed chain was built for {tuple(self.z.shape)}, got {tuple(z.shape)}")
        self.z.copy_(z)
        with self.model.frozen():
            if not self.use_graph:
                self._body(torch.Generator(self.model.device).manual_seed(seed))
                return self.x.clone()
            if self.graph is None:
                self._capture()
            torch.cuda.manual_seed(seed)
            self.graph.replay()
        return self.x.clone()
