"""Datasets, held in memory as one tensor, with the maps between data space and model space.

Images are stored as uint8 [N, C, H, W] and enter the model in [-1, 1]; 2-D toy points are
stored in their own coordinates and enter the model divided by a per-toy scale, so that
p_0 = U[-1, 1]^2 covers them. Everything the rest of the package needs is `load_dataset`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..config import DataConfig
from ..errors import UserError


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

    def to_model(self, batch: torch.Tensor) -> torch.Tensor:
        """Stored examples -> float32 model space ([-1, 1] for images)."""
        if self.kind == "image":
            return batch.float().div(127.5).sub(1.0)
        return batch.float() / self.scale

    def from_model(self, x: torch.Tensor) -> torch.Tensor:
        """Model space -> stored format: uint8 images (clipped) or float32 points."""
        x = x.detach().float().cpu()
        if self.kind == "image":
            return x.clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
        return x * self.scale


def split_holdout(x: torch.Tensor, fraction: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A fixed random split (same on every machine) for sets without a test split."""
    if fraction <= 0:
        return x, None
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_test = max(1, int(round(len(x) * fraction)))
    return x[perm[n_test:]], x[perm[:n_test]]


def _digits(cfg: DataConfig) -> Dataset:
    from sklearn.datasets import load_digits

    from .transforms import fit_images

    # scikit-learn ships the 1,797 8x8 digits with 17 grey levels (0..16): no download
    images = load_digits().images.astype(np.float32) / 16.0 * 255.0
    x = torch.from_numpy(np.round(images)).to(torch.uint8)[:, None]
    x = fit_images(x, cfg.image_size, cfg.channels)
    train, test = split_holdout(x, cfg.holdout)
    return Dataset("digits", "image", train, test)


def _fake(cfg: DataConfig) -> Dataset:
    # random images of the configured size: for smoke tests and benchmarks
    g = torch.Generator().manual_seed(0)
    shape = (cfg.fake_size, cfg.channels, cfg.image_size, cfg.image_size)
    x = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
    train, test = split_holdout(x, cfg.holdout)
    return Dataset("fake", "image", train, test)


def load_dataset(cfg: DataConfig) -> Dataset:
    from . import toys, vision

    loaders = {"digits": _digits, "fake": _fake, **vision.LOADERS, **toys.LOADERS}
    if cfg.name not in loaders:
        raise UserError(f"unknown dataset '{cfg.name}'; choose one of: {', '.join(loaders)}")
    ds = loaders[cfg.name](cfg)
    if cfg.subset and cfg.subset < len(ds.train):
        ds.train = ds.train[: cfg.subset]
    if len(ds.train) == 0:
        raise UserError(f"dataset '{cfg.name}' has no training examples")
    return ds


def shape_of(cfg: DataConfig) -> tuple[int, ...]:
    """The shape of one example, known without loading the data (for --dry-run)."""
    from .toys import LOADERS as TOY_LOADERS

    if cfg.name in TOY_LOADERS:
        return (2,)
    return (cfg.channels, cfg.image_size, cfg.image_size)
