"""Writing examples to disk: PNG grids, .npz arrays, and scatter plots for 2-D points.

`.npz` follows the common generative-model evaluation suites: `arr_0` uint8 [N, H, W, C]
for images, float32 [N, 2] in data coordinates for points.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from .errors import UserError
from .plotting import pyplot, save_figure


def grid(images: torch.Tensor, nrow: int | None = None, pad: int = 1) -> np.ndarray:
    """uint8 [N, C, H, W] -> uint8 [rows*H', cols*W', C] with a grey border between images."""
    n, c, h, w = images.shape
    cols = nrow or max(1, int(math.ceil(math.sqrt(n))))
    rows = int(math.ceil(n / cols))
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 128, np.uint8)
    arr = images.permute(0, 2, 3, 1).cpu().numpy()
    for i in range(n):
        r, q = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + q * (w + pad)
        out[y:y + h, x:x + w] = arr[i]
    return out


def save_png(array: np.ndarray, path: Path, min_side: int = 256) -> None:
    """Saves an HWC uint8 array, enlarged by an integer factor (nearest) so tiny images stay visible."""
    from PIL import Image

    factor = max(1, int(math.ceil(min_side / max(1, min(array.shape[:2])))))
    img = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    if factor > 1:
        img = img.resize((img.width * factor, img.height * factor), Image.NEAREST)
    img.save(path)


def scatter_png(points: np.ndarray, path: Path, lim: float | None = None, title: str = "") -> None:
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    ax.scatter(points[:, 0], points[:, 1], s=2, alpha=0.5)
    if lim:
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_title(title)
    fig.tight_layout()
    save_figure(fig, path)


def save_examples(examples: torch.Tensor, path: str | Path, *, kind: str, nrow: int | None = None,
                  lim: float | None = None, title: str = "") -> Path:
    """Writes examples in data format (uint8 NCHW images or float32 points) as .png or .npz."""
    path = Path(path)
    if path.suffix not in (".png", ".npz"):
        raise UserError(f"output must end in .png or .npz, got {path}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".npz":
            arr = examples.permute(0, 2, 3, 1).numpy() if kind == "image" else examples.numpy().astype(np.float32)
            np.savez(path, arr)
        elif kind == "image":
            save_png(grid(examples, nrow), path)
        else:
            scatter_png(examples.numpy(), path, lim=lim, title=title)
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None
    return path
