"""The map between stored examples and the model's space, apart from any data.

Images are stored as uint8 [N, C, H, W] and enter the model in [-1, 1]; 2-D toy points are
stored in their own coordinates and enter the model divided by a per-toy scale, so that
p_0 = U[-1, 1]^2 covers them. A trained run keeps only this (in its checkpoint), not its data.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Codec:
    kind: str  # "image" or "points"
    scale: float  # points only: data coordinates = model coordinates * scale
    shape: tuple[int, ...]  # one example: (C, H, W) or (D,)

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
