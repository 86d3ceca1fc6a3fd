"""Datasets, held in memory as one tensor, with the maps between data space and model space.

The maps between data space and model space are the dataset's `Codec` (codec.py). Everything
the rest of the package needs is `load_dataset`.
"""
from __future__ import annotations

import numpy as np
import torch

from ..config import DataConfig
from ..errors import UserError
from .codec import Codec
from .dataset import Dataset, holdout_indices, split_holdout

__all__ = ["Codec", "Dataset", "load_dataset", "shape_of", "split_holdout", "holdout_indices", "digits_split"]


DIGITS_HOLDOUT = DataConfig().holdout  # the digits' held-out fraction, as the classifier's split uses it


def digits_arrays() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 1,797 8×8 digits (17 grey levels, 0..16, shipped with it: no download) as
    uint8 [N, 1, 8, 8] images and their labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = d.images.astype(np.float32) / 16.0 * 255.0
    return torch.from_numpy(np.round(images)).to(torch.uint8)[:, None], torch.from_numpy(d.target)


def digits_split() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The digits' training and held-out images and labels, at the default data.holdout: the split
    both the digits dataset and the digits classifier (evaluation/metrics/digits.py) use."""
    x, y = digits_arrays()
    train, test = holdout_indices(len(x), DIGITS_HOLDOUT)
    return x[train], y[train], x[test], y[test]


def _digits(cfg: DataConfig) -> Dataset:
    from .transforms import fit_images

    x = fit_images(digits_arrays()[0], cfg.image_size, cfg.channels)
    train, test = split_holdout(x, cfg.holdout)
    return Dataset("digits", "image", train, test)


def _fake(cfg: DataConfig) -> Dataset:
    # random images of the configured size: for smoke tests and benchmarks
    g = torch.Generator().manual_seed(0)
    shape = (cfg.fake_size, cfg.channels, cfg.image_size, cfg.image_size)
    x = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
    train, test = split_holdout(x, cfg.holdout)
    return Dataset("fake", "image", train, test)


def _loaders() -> dict:
    from . import toys, vision

    return {"digits": _digits, "fake": _fake, **vision.LOADERS, **toys.LOADERS}


def _known(cfg: DataConfig) -> None:
    if cfg.name not in _loaders():
        raise UserError(f"unknown dataset '{cfg.name}'; choose one of: {', '.join(_loaders())}")


def load_dataset(cfg: DataConfig) -> Dataset:
    _known(cfg)
    ds = _loaders()[cfg.name](cfg)
    if cfg.subset and cfg.subset < len(ds.train):
        ds.train = ds.train[: cfg.subset]
    if len(ds.train) == 0:
        held = 0 if ds.test is None else len(ds.test)
        if held:  # a set too small to split: say so, rather than that it is empty
            raise UserError(f"dataset '{cfg.name}' has only {held} example{'s' * (held > 1)}, all kept aside as "
                            f"held-out by data.holdout={cfg.holdout:g}; add examples or set data.holdout=0")
        raise UserError(f"dataset '{cfg.name}' has no training examples")
    return ds


def shape_of(cfg: DataConfig) -> tuple[int, ...]:
    """The shape of one example, known without loading the data (for --dry-run); an unknown
    data.name is refused here as load_dataset would."""
    from .toys import LOADERS as TOY_LOADERS

    _known(cfg)
    if cfg.name in TOY_LOADERS:
        return (2,)
    return (cfg.channels, cfg.image_size, cfg.image_size)
