"""p_0 fitted to the training data: the data's mean and top principal directions, or a mixture of them.

    z = μ_c + s · Σ_j ε_j √λ_cj v_cj,   c ~ Categorical(π),  ε ~ N(0, I_r)

The paper starts every chain from uniform noise, so a K-step chain must first travel from noise to
the data's colours and coarse layout before it can add detail. Starting from this Gaussian (the
data's r largest principal components, blurred images) leaves the chain only the detail to learn:
on the photo-patch benchmark it lowered the Inception FD at equal time (benchmarks/RESULTS.md).
With C > 1 components (`sampler.init_components`) the examples are first split into C clusters by
k-means (sampler/kmeans.py) and each cluster gets its own mean, principal directions and weight π_c
(its share of the examples): a start of the right colours rather than a blend of all of them.
The chain is still short-run and non-persistent: every z is a fresh draw from a fixed p_0, fitted
once before training and saved in every checkpoint (tensors `extra.p0.*`).

Each fit is a randomized SVD (Halko, Martinsson and Tropp 2011) over at most `max_examples` training
examples, read in chunks, so it costs seconds and never holds more than one chunk in float32.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from ..errors import UserError
from .kmeans import CHUNK, kmeans

PREFIX = "p0."


class FittedStart:
    """Component means μ_c [C, D], bases √λ_cj v_cj as rows [C, r, D] and weights π [C], float32 on
    the CPU. A component fitted from fewer than r + 1 examples has zero rows past its own rank."""

    def __init__(self, means: torch.Tensor, bases: torch.Tensor, weights: torch.Tensor | None = None):
        if means.dim() == 1 and bases.dim() == 2:  # one Gaussian: mean [D], basis [r, D]
            means, bases = means[None], bases[None]
        if weights is None:
            weights = torch.ones(len(means))
        if (means.dim() != 2 or bases.dim() != 3 or weights.dim() != 1 or bases.shape[::2] != means.shape
                or len(weights) != len(means)):
            raise ValueError(f"a fitted p_0 needs means [C, D], bases [C, r, D] and weights [C], got "
                             f"{tuple(means.shape)}, {tuple(bases.shape)} and {tuple(weights.shape)}")
        if not bool((weights >= 0).all() and weights.sum() > 0):
            raise ValueError("a fitted p_0's weights must be non-negative and not all zero")
        self.means, self.bases = means.float().contiguous(), bases.float().contiguous()
        self.weights = (weights / weights.sum()).float().contiguous()
        self._placed: dict[str, tuple[torch.Tensor, ...]] = {}  # per device: no copy per draw

    @property
    def rank(self) -> int:
        return self.bases.shape[1]

    @property
    def components(self) -> int:
        return self.means.shape[0]

    @property
    def mean(self) -> torch.Tensor:
        """E[z] [D]: the components' means weighted by π."""
        return self.weights @ self.means

    @property
    def basis(self) -> torch.Tensor:
        """The one Gaussian's √λ_j v_j [r, D]."""
        if self.components != 1:
            raise ValueError(f"this p_0 is a mixture of {self.components} Gaussians, not one")
        return self.bases[0]

    def draw(self, shape: tuple[int, ...], scale: float = 1.0, generator: torch.Generator | None = None,
             device=None) -> torch.Tensor:
        """z [shape] (shape[0] examples): c and ε are drawn on the generator's device, so a seed
        gives the same z wherever the model lives."""
        where = generator.device if generator is not None else torch.device("cpu")
        if str(where) not in self._placed:
            self._placed[str(where)] = self.means.to(where), self.bases.to(where), self.weights.to(where)
        means, bases, weights = self._placed[str(where)]
        n = shape[0]
        if self.components == 1:
            eps = torch.randn(n, self.rank, generator=generator, device=where)
            z = torch.addmm(means[0], eps, bases[0], alpha=scale)
        else:
            c = torch.multinomial(weights, n, replacement=True, generator=generator)
            eps = torch.randn(n, self.rank, generator=generator, device=where)
            z = means[c] + scale * torch.einsum("nr,nrd->nd", eps, bases[c])
        return z.view(shape).to(device or where)

    def tensors(self) -> dict[str, torch.Tensor]:
        if self.components == 1:  # the same names and shapes as before mixtures existed
            return {PREFIX + "mean": self.means[0], PREFIX + "basis": self.bases[0]}
        return {PREFIX + "mean": self.means, PREFIX + "basis": self.bases, PREFIX + "weight": self.weights}

    @classmethod
    def from_tensors(cls, extra: dict[str, torch.Tensor], shape: tuple[int, ...]) -> "FittedStart | None":
        """The fitted p_0 saved in a checkpoint's extra tensors for examples of `shape`, or None if
        it holds none. A damaged one is refused (checkpoints are untrusted input)."""
        if not any(k.startswith(PREFIX) for k in extra):
            return None
        try:
            start = cls(extra[PREFIX + "mean"], extra[PREFIX + "basis"], extra.get(PREFIX + "weight"))
        except (KeyError, ValueError) as e:
            raise UserError(f"the checkpoint's fitted p_0 is damaged ({e})") from None
        if start.means.shape[1] != math.prod(shape) or not all(
                bool(torch.isfinite(t).all()) for t in (start.means, start.bases, start.weights)):
            raise UserError(f"the checkpoint's fitted p_0 does not fit examples of shape {tuple(shape)}")
        return start

    @classmethod
    def fit(cls, examples: torch.Tensor, to_model: Callable[[torch.Tensor], torch.Tensor], rank: int,
            seed: int = 0, components: int = 1, max_examples: int = 10_000, **svd) -> "FittedStart":
        """Fits `components` Gaussians, each with its top `rank` principal directions, to
        to_model(examples) (any dtype, [N, ...]); one Gaussian fits all examples without k-means."""
        g = torch.Generator().manual_seed(seed)
        n_all = len(examples)
        if n_all < 2 * components:
            raise ValueError(f"a fitted p_0 of {components} component(s) needs at least {2 * components} "
                             f"training examples, got {n_all}")
        if components > max_examples // 2:
            raise ValueError(f"a fitted p_0 of {components} components needs more than the "
                             f"{max_examples} examples it is fitted on")
        pick = torch.randperm(n_all, generator=g)[:max_examples].sort().values

        def reader(idx: torch.Tensor) -> Callable[[int], torch.Tensor]:
            # chunk i of the examples idx picks, flat float32 in model space
            return lambda i: to_model(examples[idx[i:i + CHUNK]]).float().flatten(1)

        if components == 1:
            mean, basis = _principal(reader(pick), len(pick), rank, g, **svd)
            return cls(mean, basis)
        labels, counts = kmeans(reader(pick), len(pick), components, g)
        means, bases = [], []
        for c in range(components):
            members = pick[labels == c]
            mean, basis = _principal(reader(members), len(members), rank, g, **svd)
            means.append(mean)
            bases.append(torch.cat([basis, basis.new_zeros(rank - len(basis), basis.shape[1])]))
        return cls(torch.stack(means), torch.stack(bases), counts.float())


def _principal(rows: Callable[[int], torch.Tensor], n: int, rank: int, g: torch.Generator,
               power_iters: int = 3, oversample: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """μ [D] and √λ_j v_j [≤ rank, D] of the n examples `rows` reads; no directions from one example."""
    starts = range(0, n, CHUNK)
    mean = sum(rows(i).sum(0, dtype=torch.float64) for i in starts).float() / n
    d = mean.numel()
    k = min(rank + oversample, d, n)
    if n < 2:
        return mean, mean.new_zeros(0, d)

    def times(m: torch.Tensor) -> torch.Tensor:  # (X − μ) m: [n, k]
        return torch.cat([(rows(i) - mean) @ m for i in starts])

    def t_times(y: torch.Tensor) -> torch.Tensor:  # (X − μ)ᵀ y: [D, k]
        return sum((rows(i) - mean).T @ y[i:i + CHUNK] for i in starts)

    q = torch.linalg.qr(times(torch.randn(d, k, generator=g))).Q
    for _ in range(power_iters):  # sharpens the subspace where the spectrum decays slowly
        q = torch.linalg.qr(times(torch.linalg.qr(t_times(q)).Q)).Q
    _, s, vh = torch.linalg.svd(t_times(q).T, full_matrices=False)  # Qᵀ(X − μ) = U S Vᵀ
    r = min(rank, k)
    std = s[:r] / max(n - 1, 1) ** 0.5  # √λ_j of the sample covariance
    return mean, vh[:r] * std[:, None]
