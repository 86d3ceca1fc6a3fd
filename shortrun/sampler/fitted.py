"""p_0 fitted to the training data: a Gaussian with the data's mean and its top principal directions.

    z = μ + s · Σ_j ε_j √λ_j v_j,   ε ~ N(0, I_r)

The paper starts every chain from uniform noise, so a K-step chain must first travel from noise to
the data's colours and coarse layout before it can add detail. Starting from this Gaussian (the
data's r largest principal components, blurred images) leaves the chain only the detail to learn:
on the photo-patch benchmark it lowered the Inception FD at equal time (benchmarks/RESULTS.md).
The chain is still short-run and non-persistent: every z is a fresh draw from a fixed p_0, fitted
once before training and saved in every checkpoint (tensors `extra.p0.mean`, `extra.p0.basis`).

The fit is a randomized SVD (Halko, Martinsson and Tropp 2011) over at most `max_examples` training
examples, read in chunks, so it costs seconds and never holds more than one chunk in float32.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from ..errors import UserError

PREFIX = "p0."
_CHUNK = 1024


class FittedStart:
    """μ [D] and the basis √λ_j v_j as rows [r, D], both float32 on the CPU."""

    def __init__(self, mean: torch.Tensor, basis: torch.Tensor):
        if mean.dim() != 1 or basis.dim() != 2 or basis.shape[1] != mean.numel():
            raise ValueError(f"a fitted p_0 needs mean [D] and basis [r, D], got {tuple(mean.shape)} "
                             f"and {tuple(basis.shape)}")
        self.mean, self.basis = mean.float().contiguous(), basis.float().contiguous()
        self._placed: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # per device: no copy per draw

    @property
    def rank(self) -> int:
        return self.basis.shape[0]

    def draw(self, shape: tuple[int, ...], scale: float = 1.0, generator: torch.Generator | None = None,
             device=None) -> torch.Tensor:
        """z [shape] (shape[0] examples): ε is drawn on the generator's device, so a seed gives the
        same z wherever the model lives."""
        where = generator.device if generator is not None else torch.device("cpu")
        if str(where) not in self._placed:
            self._placed[str(where)] = self.mean.to(where), self.basis.to(where)
        mean, basis = self._placed[str(where)]
        eps = torch.randn(shape[0], self.rank, generator=generator, device=where)
        z = torch.addmm(mean, eps, basis, alpha=scale)
        return z.view(shape).to(device or where)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {PREFIX + "mean": self.mean, PREFIX + "basis": self.basis}

    @classmethod
    def from_tensors(cls, extra: dict[str, torch.Tensor], shape: tuple[int, ...]) -> "FittedStart | None":
        """The fitted p_0 saved in a checkpoint's extra tensors for examples of `shape`, or None if
        it holds none. A damaged one is refused (checkpoints are untrusted input)."""
        if PREFIX + "mean" not in extra and PREFIX + "basis" not in extra:
            return None
        try:
            start = cls(extra[PREFIX + "mean"], extra[PREFIX + "basis"])
        except (KeyError, ValueError) as e:
            raise UserError(f"the checkpoint's fitted p_0 is damaged ({e})") from None
        if start.mean.numel() != math.prod(shape) or not bool(torch.isfinite(start.basis).all()
                                                             and torch.isfinite(start.mean).all()):
            raise UserError(f"the checkpoint's fitted p_0 does not fit examples of shape {tuple(shape)}")
        return start

    @classmethod
    def fit(cls, examples: torch.Tensor, to_model: Callable[[torch.Tensor], torch.Tensor], rank: int,
            seed: int = 0, max_examples: int = 10_000, power_iters: int = 3, oversample: int = 16) -> "FittedStart":
        """Fits μ and the top `rank` principal directions of to_model(examples) (any dtype, [N, ...])."""
        g = torch.Generator().manual_seed(seed)
        n_all = len(examples)
        if n_all < 2:
            raise ValueError("a fitted p_0 needs at least 2 training examples")
        pick = torch.randperm(n_all, generator=g)[:max_examples].sort().values
        n = len(pick)

        def rows(i: int) -> torch.Tensor:  # chunk i of the picked examples, flat float32 in model space
            return to_model(examples[pick[i:i + _CHUNK]]).float().flatten(1)

        starts = range(0, n, _CHUNK)
        mean = sum(rows(i).sum(0, dtype=torch.float64) for i in starts).float() / n
        d = mean.numel()
        k = min(rank + oversample, d, n)

        def times(m: torch.Tensor) -> torch.Tensor:  # (X − μ) m: [n, k]
            return torch.cat([(rows(i) - mean) @ m for i in starts])

        def t_times(y: torch.Tensor) -> torch.Tensor:  # (X − μ)ᵀ y: [D, k]
            return sum((rows(i) - mean).T @ y[i:i + _CHUNK] for i in starts)

        q = torch.linalg.qr(times(torch.randn(d, k, generator=g))).Q
        for _ in range(power_iters):  # sharpens the subspace where the spectrum decays slowly
            q = torch.linalg.qr(times(torch.linalg.qr(t_times(q)).Q)).Q
        _, s, vh = torch.linalg.svd(t_times(q).T, full_matrices=False)  # Qᵀ(X − μ) = U S Vᵀ
        r = min(rank, k)
        std = s[:r] / max(n - 1, 1) ** 0.5  # √λ_j of the sample covariance
        return cls(mean, vh[:r] * std[:, None])
