"""A dataset held in memory as one tensor per split, with its codec (the map to model space)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .codec import Codec


@dataclass
class Dataset:
    name: str
    kind: str  # "image" or "points"
    train: torch.Tensor  # uint8 [N, C, H, W] images, or float32 [N, 2] points in data coordinates
    test: torch.Tensor | None = None  # held-out examples in the same format
    scale: float = 1.0  # points only: data coordinates = model coordinates * scale

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.train.shape[1:])

    @property
    def codec(self) -> Codec:
        return Codec(self.kind, self.scale, self.shape)

    def to_model(self, batch: torch.Tensor) -> torch.Tensor:
        return self.codec.to_model(batch)

    def from_model(self, x: torch.Tensor) -> torch.Tensor:
        return self.codec.from_model(x)


def holdout_indices(n: int, fraction: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed random split of range(n) (the same on every machine): (training, held-out) indices."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_test = max(1, int(round(n * fraction)))
    return perm[n_test:], perm[:n_test]


def split_holdout(x: torch.Tensor, fraction: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
    """For sets without a test split: (training, held-out) examples, or (x, None) for fraction 0."""
    if fraction <= 0:
        return x, None
    train, test = holdout_indices(len(x), fraction, seed)
    return x[train], x[test]
