"""What changes with the iteration t: the learning rate η_t, the data noise σ_t, and which
examples form the batch.

The paper keeps η and σ constant for most of training and then lowers them gradually; with
schedule=anneal both fall geometrically from their start values to their final values over
the last (1 − anneal_start) of the iterations. An optional linear warm-up raises η from 0 first.
With a time budget (--max-time) the iterations are those the budget will allow. The batch at t is a pure function of
(seed, t): each epoch is a fresh permutation, so a resumed run sees the same examples.
"""
from __future__ import annotations

import functools

import torch

from ..config import TrainConfig
from ..seeding import EPOCH, derive_seed


def _anneal(t: TrainConfig, it: int, start: float, final: float, horizon: int | None) -> float:
    total = t.iters if horizon is None else horizon
    if t.schedule != "anneal" or total <= 0:
        return start
    begin = int(t.anneal_start * total)
    if it < begin:
        return start
    frac = min(1.0, (it - begin) / max(1, total - 1 - begin))
    if start <= 0 or final <= 0:
        return start + (final - start) * frac
    return start * (final / start) ** frac


def lr_at(t: TrainConfig, it: int, horizon: int | None = None) -> float:
    """η_t: a linear warm-up over train.warmup_iters, then constant, then (schedule=anneal) the
    geometric fall to lr_final over the last (1 − anneal_start) of the `horizon` iterations
    (train.iters unless a time budget gave a shorter one)."""
    warm = min(1.0, (it + 1) / t.warmup_iters) if t.warmup_iters > 0 else 1.0
    return warm * _anneal(t, it, t.lr, t.lr_final, horizon)


def sigma_at(t: TrainConfig, it: int, horizon: int | None = None) -> float:
    """σ_t: constant, then (schedule=anneal) lowered to data_noise_final with the lr."""
    return _anneal(t, it, t.data_noise, t.data_noise_final, horizon)


def budget_end(it: int, done: int, elapsed: float, max_time: float, last_iter: int) -> int:
    """The iteration a run with a time budget will reach at its pace so far (`done` iterations in
    `elapsed` seconds this session, now at iteration `it`), capped at `last_iter`. Also the training
    progress bar's total, so that its ETA is the budget's rather than train.iters'."""
    if done <= 0 or elapsed <= 0:
        return last_iter
    return max(it, min(last_iter, it + int(max(0.0, max_time - elapsed) * done / elapsed)))


def budget_horizon(t: TrainConfig, it: int, done: int, elapsed: float, max_time: float,
                   previous: int | None) -> int | None:
    """The iteration count a run will reach within its time budget, so that the schedules fit the
    budget rather than an iteration count the run will never reach. Projected from the speed so far
    (`done` iterations in `elapsed` seconds this session, now at iteration `it`) and capped at
    train.iters. Once annealing has begun the horizon only moves earlier, so η and σ keep falling."""
    if done < 3 or elapsed <= 0:
        return previous
    projected = budget_end(it, done, elapsed, max_time, t.iters)
    if previous is not None and it >= t.anneal_start * previous:
        return min(previous, max(projected, it + 1))
    return projected


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
