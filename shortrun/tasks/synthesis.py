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
from ..seeding import EXAMPLE, derive_seed


def _generators(indices: range, seed: int, stream: int = EXAMPLE) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(derive_seed(seed, i, stream)) for i in indices]


def _draw_z(model: ShortRun, gens: list[torch.Generator]) -> torch.Tensor:
    return torch.cat([model.init(1, g, device="cpu") for g in gens])


def _draw_u(model: ShortRun, gens: list[torch.Generator], steps: int) -> torch.Tensor:
    return torch.cat([torch.randn((steps, 1, *model.shape), generator=g) for g in gens], dim=1)


def draw_latents(model: ShortRun, indices: range, seed: int,
                 stream: int = EXAMPLE) -> tuple[torch.Tensor, torch.Tensor]:
    """z [n, *shape] and u [K, n, *shape] for the examples `indices` (drawn on the CPU: the same
    numbers on any device): example i's z, then its K step noises, from its generator (seed, i)
    in `stream` (seeding.py; EXAMPLE: the codes synthesize draws)."""
    gens = _generators(indices, seed, stream)
    z = _draw_z(model, gens)
    return z.to(model.device), _draw_u(model, gens, model.sampler.n_steps).to(model.device)


def synthesize(model: ShortRun, n: int, *, seed: int = 0, batch_size: int = 64, first: int = 0,
               record: list[int] | None = None, to_data: Callable[[torch.Tensor], torch.Tensor] | None = None,
               progress: bool = False) -> torch.Tensor:
    """n examples (indices first .. first+n-1), in model space (on the CPU) or mapped by `to_data`.
    This is the one sampling path: the CLI, evaluation, diagnostics and benchmarks all draw here.

    record: step counts k at which to keep the chain's state, e.g. [0, K, 10 K]: the chain then runs
    to max(record) steps (past K: a long-run chain) and the result is [n, len(record), *shape].
    Step noise is drawn K steps at a time from each example's generator, so the first K steps are
    exactly the short-run sample of the same seed, and memory does not grow with the chain's length."""
    K = model.sampler.n_steps
    total = K if record is None else max(record)
    out = []
    with model.frozen(), progress_bar(total=n, disable=not progress, desc="sample") as bar:
        for start in range(first, first + n, batch_size):
            gens = _generators(range(start, min(start + batch_size, first + n)), seed)
            z = _draw_z(model, gens).to(model.device)
            block = {}

            def noise(k):  # u_k, drawn a block of K steps at a time
                if k // K not in block:
                    block.clear()
                    block[k // K] = _draw_u(model, gens, K).to(model.device)
                return block[k // K][k % K]

            states = {0: z.detach().cpu()} if record is not None else {}
            # a copy: the chain updates x in place, and on the CPU .cpu() would return x itself
            keep = (lambda k, x, grad: states.__setitem__(k + 1, x.detach().to("cpu", copy=True))
                    if k + 1 in record else None)
            x = model.chain(z, noise=noise, n_steps=total, on_step=keep if record is not None else None)
            if record is not None:
                x = torch.stack([states[k] for k in record], dim=1)
            out.append(to_data(x) if to_data is not None else x.detach().cpu())
            bar.update(len(gens))
    return torch.cat(out) if out else torch.empty(0)


def shard_range(n: int, world) -> range:
    """The example indices rank `world.rank` draws: contiguous blocks in rank order, so joining the
    ranks' results in rank order gives examples 0 .. n-1."""
    chunk = -(-n // world.size)
    first = min(n, world.rank * chunk)
    return range(first, min(n, first + chunk))


def synthesize_sharded(model: ShortRun, n: int, *, world, seed: int = 0, batch_size: int = 64,
                       progress: bool = False) -> torch.Tensor:
    """Synthesis split across the ranks of `world`: rank r draws a disjoint range of example indices,
    so the gathered result (model space, on every rank) equals a single-process run with the seed."""
    from ..distributed import gather_cat

    if world.size == 1:
        return synthesize(model, n, seed=seed, batch_size=batch_size, progress=progress)
    chunk = -(-n // world.size)
    indices = shard_range(n, world)
    mine = synthesize(model, len(indices), seed=seed, batch_size=batch_size, first=indices.start,
                      progress=progress and world.is_main)
    padded = torch.zeros((chunk, *model.shape), dtype=torch.float32, device=model.device)
    padded[:len(mine)] = mine.to(model.device)
    return gather_cat(world, padded)[:n].cpu()
