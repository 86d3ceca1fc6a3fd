"""What changes with the iteration t: the learning rate η_t, the data noise σ_t, and which
examples form the batch.

The paper keeps η and σ constant for most of training and then lowers them gradually; with
schedule=anneal both fall geometrically from their start values to their final values over
the last (1 − anneal_start) of the iterations. The batch at t is a pure function of
(seed, t): each epoch is a fresh permutation, so a resumed run sees the same examples.
"""
from __future__ import annotations

import functools

import torch

from ..config import TrainConfig
from ..seeding import EPOCH, derive_seed


def _anneal(t: TrainConfig, it: int, start: float, final: float) -> float:
    if t.schedule != "anneal" or t.iters <= 0:
        return start
    begin = int(t.anneal_start * t.iters)
    if it < begin:
        return start
    frac = min(1.0, (it - begin) / max(1, t.iters - 1 - begin))
    if start <= 0 or final <= 0:
        return start + (final - start) * frac
    return start * (final / start) ** frac


def lr_at(t: TrainConfig, it: int) -> float:
    return _anneal(t, it, t.lr, t.lr_final)


def sigma_at(t: TrainConfig, it: int) -> float:
    return _anneal(t, it, t.data_noise, t.data_noise_final)


@functools.lru_cache(maxsize=4)
def _permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed(seed, epoch, EPOCH)))


def batch_indices(n: int, batch: int, it: int, seed: int, rank: int = 0, world: int = 1) -> torch.Tensor:
    """Indices of this rank's share of the global batch at iteration `it` (global size `batch`)."""
    per_rank = batch // world
    first = it * batch + rank * per_rank
    pos = torch.arange(first, first + per_rank)
    epochs, offsets = pos // n, pos % n
    out = torch.empty(per_rank, dtype=torch.long)
    for e in epochs.unique().tolist():  # a batch may straddle two epochs
        mask = epochs == e
        out[mask] = _permutation(n, seed, e)[offsets[mask]]
    return out
