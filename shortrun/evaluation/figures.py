"""Figures a researcher looks at: labelled image tables (rows × columns) via matplotlib."""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import torch

from ..images import grid
from ..plotting import pyplot, save_figure


def image_table(path: str | Path, panels: list[tuple[str, torch.Tensor]], col_labels: list[str] | None,
                title: str = "", row_labels: list[str] | None = None) -> Path:
    """panels: (heading, uint8 [rows, cols, C, H, W]) stacked vertically; one label per column
    and, where given, one per row (the same for every panel)."""
    plt = pyplot()

    path = Path(path)
    arrays = [grid(t.flatten(0, 1), nrow=t.shape[1]) for _, t in panels]
    heights = [a.shape[0] for a in arrays]
    width = arrays[0].shape[1]
    scale = 5.0 / 72  # inches per pixel of the grid, enough for 8x8 digits to read
    scale = max(scale, 6.0 / width)  # a narrow table is widened for its labels ...
    scale = min(scale, max(5.0 / 72, 10.0 / sum(heights)))  # ... but never made taller than 10 inches by it
    fig, axes = plt.subplots(len(arrays), 1, squeeze=False, dpi=100,
                             figsize=(width * scale, sum(heights) * scale + 0.6 * len(arrays) + 0.4),
                             gridspec_kw={"height_ratios": heights})
    for ax, (heading, t), arr in zip(axes[:, 0], panels, arrays):
        ax.imshow(arr[..., 0] if arr.shape[-1] == 1 else arr, cmap="gray", vmin=0, vmax=255,
                  interpolation="nearest")
        cols, cell = t.shape[1], arr.shape[1] / t.shape[1]
        ax.set_xticks([cell * (i + 0.5) for i in range(cols)] if col_labels else [])
        if col_labels:
            ax.set_xticklabels(col_labels[:cols], fontsize=8)
        rows, row_cell = t.shape[0], arr.shape[0] / t.shape[0]
        ax.set_yticks([row_cell * (i + 0.5) for i in range(rows)] if row_labels else [])
        if row_labels:
            ax.set_yticklabels(row_labels[:rows], fontsize=8)
        # wrapped to the figure's width: a table of a few small images is narrower than its heading
        ax.set_title(textwrap.fill(heading, max(24, int(width * scale * 9))), fontsize=10)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path)
    return path


def curve_plot(path: str | Path, curves: dict[str, list[float]], xlabel: str, ylabel: str, title: str = "",
               logy: bool = False) -> Path:
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for label, ys in curves.items():
        ax.plot(np.arange(len(ys)), ys, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    if len(curves) > 1:
        ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)
    return Path(path)
