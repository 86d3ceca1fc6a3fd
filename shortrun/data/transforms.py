"""Bringing images to the configured size and channel count."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def fit_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 [N, c, H, W] -> [N, channels, H, W]: grey is repeated, RGB is averaged (ITU-R 601 luma)."""
    c = x.shape[1]
    if c == channels:
        return x
    if c == 1:
        return x.expand(-1, channels, -1, -1).contiguous()
    if c == 4:  # RGBA: drop alpha
        return fit_channels(x[:, :3], channels)
    if c == 3 and channels == 1:
        w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (x.float() * w).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    raise ValueError(f"cannot convert {c} channels to {channels}")


def fit_images(x: torch.Tensor, size: int, channels: int) -> torch.Tensor:
    """Center-crop to a square, resize to size x size (antialiased), convert channels; uint8 in and out."""
    x = fit_channels(x, channels)
    h, w = x.shape[-2:]
    if h != w:
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        x = x[..., top:top + s, left:left + s]
    if x.shape[-1] != size:
        chunks = []
        for part in x.split(1024):  # bounded memory for large sets
            y = F.interpolate(part.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
            chunks.append(y.round().clamp(0, 255).to(torch.uint8))
        x = torch.cat(chunks)
    return x.contiguous()
