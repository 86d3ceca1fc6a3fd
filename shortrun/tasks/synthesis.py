"""Synthesis with the learned sampler: x = M_θ(z, u) for fresh z ~ p_0 and u ~ N(0, I).

Every example i draws its z and u from its own generator seeded by (seed, i), so the same
seed gives the same images whatever the batch size, and disjoint ranges of i can be drawn
on different processes (distributed sampling) with the same result.
"""
from __future__ import annotations

from typing import Callable

import torch

from ..model import ShortRun
from ..progress import bar as progress_bar
from ..sampler import initial
from ..seeding import derive_seed


def draw_latents(model: ShortRun, indices: range, seed: int,
                 n_steps: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """z [n, *shape] and u [K, n, *shape] for the examples `indices` (drawn on the CPU); `n_steps`
    overrides K (a longer chain of the same example starts with the same z)."""
    s, zs, us = model.sampler, [], []
    K = s.n_steps if n_steps is None else n_steps
    for i in indices:
        g = torch.Generator().manual_seed(derive_seed(seed, i))
        zs.append(initial((1, *model.shape), kind=s.init, std=s.init_std, generator=g))
        us.append(torch.randn((K, 1, *model.shape), generator=g))
    return torch.cat(zs).to(model.device), torch.cat(us, dim=1).to(model.device)


def synthesize(model: ShortRun, n: int, *, seed: int = 0, batch_size: int = 64, first: int = 0,
               n_steps: int | None = None, to_data: Callable[[torch.Tensor], torch.Tensor] | None = None,
               progress: bool = False) -> torch.Tensor:
    """n examples (indices first .. first+n-1), in model space (on the CPU) or mapped by `to_data`.
    This is the one sampling path: the CLI, evaluation, diagnostics and benchmarks all draw here.
    `n_steps` overrides K (a long-run chain from the same z)."""
    out = []
    with model.frozen(), progress_bar(total=n, disable=not progress, desc="sample") as bar:
        for start in range(first, first + n, batch_size):
            idx = range(start, min(start + batch_size, first + n))
            z, u = draw_latents(model, idx, seed, n_steps)
            x = model.chain(z, noise=u, n_steps=len(u))
            out.append(to_data(x) if to_data is not None else x.detach().cpu())
            bar.update(len(idx))
    return torch.cat(out) if out else torch.empty(0)


def synthesize_sharded(model: ShortRun, n: int, *, world, seed: int = 0, batch_size: int = 64,
                       progress: bool = False) -> torch.Tensor:
    """Synthesis split across the ranks of `world`: rank r draws a disjoint range of example indices,
    so the gathered result (model space, on every rank) equals a single-process run with the seed."""
    from ..distributed import gather_cat

    if world.size == 1:
        return synthesize(model, n, seed=seed, batch_size=batch_size, progress=progress)
    chunk = -(-n // world.size)
    first = min(n, world.rank * chunk)
    mine = synthesize(model, min(n, first + chunk) - first, seed=seed, batch_size=batch_size, first=first,
                      progress=progress and world.is_main)
    padded = torch.zeros((chunk, *model.shape), dtype=torch.float32, device=model.device)
    padded[:len(mine)] = mine.to(model.device)
    return gather_cat(world, padded)[:n].cpu()
