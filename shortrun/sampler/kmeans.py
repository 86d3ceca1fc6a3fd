"""k-means (Lloyd's algorithm) over examples read in chunks: the clusters of a mixture p_0.

    labels, counts = kmeans(rows, n, k, generator)

`rows(i)` returns the flat float32 examples i ... i + CHUNK − 1, so no more than one chunk is ever
held. The centres start by k-means++ (Arthur and Vassilvitskii 2007: each next centre an example
drawn with probability ∝ its squared distance to the nearest centre so far, which keeps two centres
from starting in one cluster), drawn from `generator` so a seed gives the same clusters, and move
to their members' means until no example changes cluster or `iters` run out.
"""
from __future__ import annotations

from typing import Callable

import torch

CHUNK = 1024


def kmeans(rows: Callable[[int], torch.Tensor], n: int, k: int, generator: torch.Generator,
           iters: int = 25) -> tuple[torch.Tensor, torch.Tensor]:
    """Cluster labels [n] (int64) and cluster sizes [k] of the n examples `rows` reads."""
    if not 1 <= k <= n:
        raise ValueError(f"k-means needs 1 <= k <= n examples, got k = {k}, n = {n}")
    starts = range(0, n, CHUNK)
    centres = _seed_centres(rows, n, k, generator)
    labels = torch.full((n,), -1, dtype=torch.int64)
    for _ in range(iters):
        sums = torch.zeros_like(centres, dtype=torch.float64)
        parts = []
        for i in starts:  # one read of each chunk: its labels and its members' sums
            x = rows(i)
            parts.append(_nearest(x, centres))
            sums.index_add_(0, parts[-1], x.double())
        new = torch.cat(parts)
        counts = torch.bincount(new, minlength=k)
        filled = counts > 0  # an emptied cluster keeps its centre (and is never drawn: weight 0)
        centres[filled] = (sums[filled] / counts[filled, None]).float()
        if torch.equal(new, labels):
            break
        labels = new
    return labels, torch.bincount(labels, minlength=k)


def _seed_centres(rows: Callable[[int], torch.Tensor], n: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++: k examples, the first uniform, each next ∝ squared distance to the chosen ones."""
    example = lambda i: rows(i // CHUNK * CHUNK)[i % CHUNK]
    chosen = [example(int(torch.randint(n, (1,), generator=generator)))]
    gap = torch.full((n,), float("inf"), dtype=torch.float64)
    for _ in range(k - 1):
        last = chosen[-1]
        new = torch.cat([(rows(i) - last).square().sum(1) for i in range(0, n, CHUNK)]).double()
        gap = torch.minimum(gap, new)
        # all examples equal to a centre already (duplicates): any example will do
        weights = gap if gap.sum() > 0 else torch.ones(n, dtype=torch.float64)
        chosen.append(example(int(torch.multinomial(weights, 1, generator=generator))))
    return torch.stack(chosen)


def _nearest(x: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    # ‖x − c‖² = ‖x‖² − 2 x·c + ‖c‖², and ‖x‖² does not change which c is nearest
    return (centres.square().sum(1) - 2 * x @ centres.T).argmin(1)
