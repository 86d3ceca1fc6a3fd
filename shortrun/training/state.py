"""The state of a run that must survive a restart, and its round trip through a checkpoint.

What makes a resumed run continue exactly: the weights, Adam's moments, the iteration t, the
rollback lr scale, the weight average (train.ema) and a time budget's schedule horizon. Nothing else: every random number of iteration t comes from a
generator seeded by (seed, t) (training/step.py), so no generator state is saved.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..config import Config
from ..data import Codec
from ..energy import count_parameters
from ..errors import UserError
from ..version import provenance
from . import checkpoint


def checkpoint_path(run: Path, it: int) -> Path:
    return Path(run) / "checkpoints" / f"ckpt_{it:08d}.safetensors"


def run_meta(cfg: Config, codec: Codec, dataset: str, net: nn.Module, it: int, lr_scale: float) -> dict:
    """The JSON metadata of a checkpoint: enough to rebuild the model and continue the run."""
    return {"iter": it, "lr_scale": lr_scale, "config": cfg.to_dict(), "shape": list(codec.shape),
            "kind": codec.kind, "scale": codec.scale, "dataset": dataset, "n_parameters": count_parameters(net),
            **provenance()}


def save_state(run: Path, it: int, net: nn.Module, optimizer: torch.optim.Optimizer, meta: dict,
               keep: int, extra_tensors: dict | None = None) -> Path:
    """Writes checkpoint `it` (atomically) and prunes to the `keep` newest."""
    path = checkpoint.save(checkpoint_path(run, it), net=net, meta=meta, optimizer=optimizer,
                           extra_tensors=extra_tensors)
    checkpoint.prune(run, keep, saved=it)
    return path


def load_state(state: dict, net: nn.Module, optimizer: torch.optim.Optimizer | None) -> tuple[int, float]:
    """Loads a checkpoint's weights (and Adam's state) in place; returns (iteration, lr scale)."""
    try:
        net.load_state_dict(state["model"])
    except RuntimeError as e:
        raise UserError(f"checkpoint does not fit this model ({str(e).splitlines()[0]})") from None
    if optimizer is not None and state["optimizer"] is not None:
        _check_adam_state(state["optimizer"], list(net.parameters()))
        try:
            optimizer.load_state_dict(state["optimizer"])
        except (KeyError, TypeError, ValueError, RuntimeError) as e:  # an edited or foreign optimizer state
            raise UserError(f"checkpoint's optimizer state does not fit this model ({str(e).splitlines()[0]})") from None
    meta = state["meta"]
    return meta["iter"], meta.get("lr_scale", 1.0)


def _check_adam_state(saved: dict, params: list) -> None:
    """torch's load_state_dict takes Adam's moments without looking at them; a missing or misshapen
    one would fail deep inside the next step, so check each against its parameter first."""
    for idx, per in saved["state"].items():
        if not 0 <= idx < len(params):
            raise UserError(f"checkpoint's optimizer state names parameter {idx}; this model has {len(params)}")
        for key in ("exp_avg", "exp_avg_sq"):
            value = per.get(key)
            if not torch.is_tensor(value) or value.shape != params[idx].shape:
                got = tuple(value.shape) if torch.is_tensor(value) else "missing"
                raise UserError(f"checkpoint's optimizer state {idx}.{key} is damaged: shape {got}, "
                                f"expected {tuple(params[idx].shape)}")
