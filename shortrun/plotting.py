"""The one matplotlib set-up: a file-only backend (no display needed, safe on servers and in
tests), and figures written then closed so that long runs do not accumulate them."""
from __future__ import annotations

from pathlib import Path

from .atomic import atomic_write


def pyplot():
    """matplotlib.pyplot on the Agg backend."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path: str | Path) -> Path:
    """Writes `fig` to `path` atomically (creating its folder) and closes it."""
    path = Path(path)
    try:  # a file object carries no name: the format comes from the suffix (png when there is none)
        atomic_write(path, lambda fh: fig.savefig(fh, format=path.suffix[1:] or None))
    finally:
        pyplot().close(fig)
    return path
