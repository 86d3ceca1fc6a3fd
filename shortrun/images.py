"""Writing examples to disk: PNG grids, .npz arrays, and scatter plots for 2-D points.

`.npz` follows the common generative-model evaluation suites: `arr_0` uint8 [N, H, W, C]
for images, float32 [N, 2] in data coordinates for points.
"""
from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from .atomic import atomic_write
from .errors import UserError
from .plotting import pyplot, save_figure


def grid(images: torch.Tensor, nrow: int | None = None, pad: int = 1) -> np.ndarray:
    """uint8 [N, C, H, W] -> uint8 [rows*H', cols*W', C] with a grey border between images
    (torchvision's make_grid; `nrow` images per row, a square-ish grid by default)."""
    from torchvision.utils import make_grid

    n, c = images.shape[:2]
    cols = nrow or max(1, int(math.ceil(math.sqrt(n))))
    out = make_grid(images.cpu(), nrow=cols, padding=pad, pad_value=128)
    if c == 1:  # make_grid repeats a grey channel three times; keep the file grey
        out = out[:1]
    return out.permute(1, 2, 0).numpy()


MAX_SIDE = 16384  # enlarging stops here: a one-column grid of thousands would otherwise grow without end
MAX_GRID_PIXELS = 100_000_000  # grids beyond this are refused (PIL's readers stop near 179M, as a bomb)


def save_png(array: np.ndarray, path: Path, min_side: int = 256) -> None:
    """Saves an HWC uint8 array, enlarged by an integer factor (nearest) so tiny images stay visible."""
    from PIL import Image

    factor = max(1, int(math.ceil(min_side / max(1, min(array.shape[:2])))))
    factor = max(1, min(factor, MAX_SIDE // max(array.shape[:2])))
    img = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    if factor > 1:
        img = img.resize((img.width * factor, img.height * factor), Image.NEAREST)
    atomic_write(path, lambda fh: img.save(fh, format="PNG"))


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
            arr = npz_layout(examples, kind)
            atomic_write(path, lambda fh: np.savez(fh, arr))
        elif kind == "image":
            save_png(grid(examples, nrow), path)
        else:
            scatter_png(examples.numpy(), path, lim=lim, title=title)
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None
    return path


def npz_layout(examples: torch.Tensor, kind: str) -> np.ndarray:
    """Data-format examples as `arr_0` holds them: uint8 [N, H, W, C] images or float32 [N, D] points."""
    return examples.permute(0, 2, 3, 1).numpy() if kind == "image" else examples.numpy().astype(np.float32)


def write_npz_stream(path: str | Path, shape: tuple[int, ...], dtype, parts: Iterable) -> Path:
    """Writes an .npz with one array `arr_0` of `shape` and `dtype`, as np.savez would, from `parts`
    (arrays or bytes, in order), atomically. Only one part is in memory at a time, so memory stays
    flat however large the array is."""
    dtype = np.dtype(dtype)
    expected = int(np.prod(shape)) * dtype.itemsize
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(shape)}

    def write(fh):
        # stored, not deflated (as np.savez); zip64 because the size is only known once written
        with zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED, allowZip64=True) as zf, \
                zf.open("arr_0.npy", "w", force_zip64=True) as entry:
            np.lib.format.write_array_header_1_0(entry, header)
            written = 0
            for part in parts:
                data = np.ascontiguousarray(part, dtype=dtype).tobytes() if isinstance(part, np.ndarray) else part
                entry.write(data)
                written += len(data)
            if written != expected:  # a caller's bug, not bad input: never leave a short array behind
                raise RuntimeError(f"{path}: wrote {written} bytes of arr_0, expected {expected}")

    return atomic_write(path, write)
