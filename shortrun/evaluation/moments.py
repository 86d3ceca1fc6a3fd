"""The paper's "relation to moment matching", made checkable.

With f_θ(x) = ⟨θ, h(x)⟩ over fixed features h (`energy/moments.py`), the learning gradient is
E_data[h] − E_q[h], where q is the short-run samples' distribution: learning stops where q_θ
matches the data's moments of h, whether or not exp f_θ is a good density (the paper's §3.3).

    moment_gap(model, data_in_model_space, n_samples=2000, seed=0)
      = ‖E_q[h] − E_data[h]‖ / ‖E_data[h]‖
    moment_check(trained, untrained, data)  -> {"gap_before", "gap_after", "ratio"}
"""
from __future__ import annotations

import torch

from ..energy.moments import MomentEnergy
from ..tasks import synthesize


@torch.no_grad()
def _mean_features(net: MomentEnergy, x: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    return sum(net.features(b).double().sum(0) for b in x.split(chunk)) / len(x)


def _feature_net(model) -> MomentEnergy:
    net = getattr(model.net, "module", model.net)  # through a DDP wrapper
    if not hasattr(net, "features"):
        raise TypeError(f"moment_gap needs a model with fixed features h (MomentEnergy), got {type(net).__name__}")
    return net


def moment_gap(model, data_model_space: torch.Tensor, n_samples: int, seed: int) -> float:
    """‖E_q[h] − E_data[h]‖ / ‖E_data[h]‖: how far the short-run samples are from the data in the
    moments that learning matches (0 at the fixed point of the learning rule)."""
    net = _feature_net(model)
    x = synthesize(model, n_samples, seed=seed, batch_size=512).to(model.device)
    e_data = _mean_features(net, data_model_space.to(model.device))
    e_q = _mean_features(net, x)
    return float((e_q - e_data).norm() / e_data.norm().clamp_min(1e-12))


def moment_check(trained, untrained, data_model_space: torch.Tensor, n_samples: int = 2000,
                 seed: int = 0) -> dict:
    """The gap before learning (the untrained model, θ = 0) and after (the trained one), with the
    same chains' seed and data; ratio = after / before (well below 1 when learning matched moments).
    Both must share h (the same feature_seed), or the two gaps would measure different moments."""
    h_a, h_b = _feature_net(trained).h.state_dict(), _feature_net(untrained).h.state_dict()
    if h_a.keys() != h_b.keys() or any(not torch.equal(h_a[k].cpu(), h_b[k].cpu()) for k in h_a):
        raise ValueError("moment_check: the two models have different features h (model.feature_seed)")
    before = moment_gap(untrained, data_model_space, n_samples, seed)
    after = moment_gap(trained, data_model_space, n_samples, seed)
    return {"gap_before": before, "gap_after": after, "ratio": after / max(before, 1e-12)}
