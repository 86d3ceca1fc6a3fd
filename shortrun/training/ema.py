"""An exponential moving average of the network's weights, used for sampling and evaluation.

Not in the paper; common in generative models (and for EBMs, where the sampler's quality swings
from iteration to iteration with Adam's noisy steps on θ). With decay d the average is

    θ̄_t = d_t · θ̄_{t−1} + (1 − d_t) · θ_t,     d_t = min(d, (1 + t) / (10 + t)),

where the ramp d_t keeps the first iterations from being dominated by the random initial
weights. Only parameters are averaged; buffers are copied. The average is saved in each
checkpoint (tensors `extra.ema.*`), restored on resume, and loaded by `open_run` in place of the
raw weights, so `sample`, `evaluate` and the training grids all use it.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from ..errors import UserError

PREFIX = "ema."


class WeightAverage:
    def __init__(self, net: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in net.state_dict().items()}
        self._params = {k for k, _ in net.named_parameters()}

    def rate(self) -> float:
        """d_t for the next update."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, net: nn.Module) -> None:
        d = self.rate()
        for k, v in net.state_dict().items():
            if k in self._params and v.is_floating_point():
                self.shadow[k].mul_(d).add_(v.detach(), alpha=1 - d)
            else:
                self.shadow[k].copy_(v)
        self.updates += 1

    @contextlib.contextmanager
    def applied(self, net: nn.Module):
        """Runs the body with the averaged weights in `net`, then puts the raw weights back."""
        raw = {k: v.detach().clone() for k, v in net.state_dict().items()}
        net.load_state_dict(self.shadow)
        try:
            yield net
        finally:
            net.load_state_dict(raw)

    def tensors(self) -> dict[str, torch.Tensor]:
        """For the checkpoint: the average under `ema.<name>`, and the update count."""
        out = {PREFIX + k: v for k, v in self.shadow.items()}
        out[PREFIX + "__updates__"] = torch.tensor(self.updates, dtype=torch.int64)
        return out

    def load(self, extra: dict[str, torch.Tensor]) -> bool:
        """Restores from a checkpoint's extra tensors; False where it holds no average."""
        found = average_in(extra)
        if found is None:
            return False
        missing = set(self.shadow) - set(found)
        if missing:
            raise UserError(f"the checkpoint's weight average does not fit this model (no {sorted(missing)[0]})")
        for k in self.shadow:
            self.shadow[k].copy_(found[k])
        self.updates = int(extra[PREFIX + "__updates__"]) if PREFIX + "__updates__" in extra else 0
        return True

    def state(self) -> dict:
        return {"shadow": {k: v.clone() for k, v in self.shadow.items()}, "updates": self.updates}

    def restore(self, state: dict) -> None:
        for k, v in state["shadow"].items():
            self.shadow[k].copy_(v)
        self.updates = state["updates"]


def average_in(extra: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
    """The averaged weights stored in a checkpoint's extra tensors, or None."""
    found = {k[len(PREFIX):]: v for k, v in extra.items() if k.startswith(PREFIX) and k != PREFIX + "__updates__"}
    return found or None
