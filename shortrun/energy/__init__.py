"""Negative-energy networks f_θ: a batch [B, ...] -> [B] scalars, higher = more probable.

    build_energy(cfg.model, shape)   # the network named by model.name, for examples of `shape`

`nets.py` holds the paper's ConvNet and its relatives, `moments.py` the fixed-feature family,
`registry.py` the names, `user.py` networks of one's own (model.name=MODULE:CLASS).
"""
from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig
from ..errors import UserError
from .moments import MomentEnergy
from .nets import ConvEnergy, DigitsEnergy, MLPEnergy, SequentialEnergy
from .registry import NETWORKS, register
from .user import build_user, is_user_name

__all__ = ["build_energy", "count_parameters", "register", "NETWORKS", "SequentialEnergy", "ConvEnergy",
           "DigitsEnergy", "MLPEnergy", "MomentEnergy"]


def build_energy(cfg: ModelConfig, shape: tuple[int, ...]) -> nn.Module:
    """The network named in cfg for examples of the given shape ((C, H, W) or (D,)); a name of the
    form MODULE:CLASS builds a network of one's own (user.py)."""
    if is_user_name(cfg.name):
        return build_user(cfg.name, tuple(shape))
    if cfg.name not in NETWORKS:
        raise UserError(f"unknown model '{cfg.name}'; choose one of: {', '.join(NETWORKS)}, or MODULE:CLASS")
    if cfg.name == "mlp":
        return MLPEnergy(cfg, channels=int(torch.Size(shape).numel()))
    if cfg.name == "moments" and len(shape) == 1:
        return MomentEnergy(cfg, channels=shape[0], image_size=0)
    if len(shape) != 3:
        raise UserError(f"model '{cfg.name}' needs images, but the data has shape {tuple(shape)}")
    try:
        return NETWORKS[cfg.name](cfg, channels=shape[0], image_size=shape[1])
    except ValueError as e:
        raise UserError(str(e)) from None


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
