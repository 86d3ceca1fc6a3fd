"""The one way a seed and an index become the seed of an independent random stream.

Every chain, batch and example draws from its own generator seeded by (seed, stream, index),
so a resumed run, a different batch size or a different number of processes replays exactly
the same numbers, and no generator state needs saving.
"""
from __future__ import annotations

# streams: which kind of randomness a generator serves (they must not share seeds)
EXAMPLE = 0  # synthesis: example i's z and u
ITERATION = 1  # learning: iteration t's data noise, z and u
EPOCH = 2  # learning: the permutation of the training set in epoch e
RECONSTRUCTION = 3  # reconstruction: target i's starting code and u (not sample i's: see reconstruction.py)

_MULT = 2654435761  # Knuth's multiplicative hash: nearby seeds land far apart
# where each stream starts within the 2^32 seeds of one run seed: at least 8.4e8 apart, so the
# streams stay disjoint for indices below 8e8 (iterations, examples, epochs and targets all stay far below)
_OFFSET = {EXAMPLE: 0, ITERATION: 0x5BD1E995, RECONSTRUCTION: 0x8E000000, EPOCH: 0xC0000000}


def derive_seed(seed: int, index: int, stream: int = EXAMPLE) -> int:
    """A 32-bit seed (torch's CPU generator keeps 32 bits) for `index` within `stream` of `seed`.
    Within one (seed, stream) the map index -> seed is one-to-one."""
    return (seed * _MULT + index + _OFFSET[stream]) % 2**32
