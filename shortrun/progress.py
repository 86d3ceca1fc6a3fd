"""Progress bars on stderr: live on a terminal, one line every 30 s in a log file (SLURM, nohup),
where tqdm's default of a redraw every 0.1 s would fill the log with carriage returns."""
from __future__ import annotations

import sys

from tqdm import tqdm


def bar(**kw) -> tqdm:
    interactive = sys.stderr.isatty()
    kw.setdefault("mininterval", 0.1 if interactive else 30.0)
    if not interactive:
        kw.setdefault("ascii", True)
    return tqdm(file=sys.stderr, **kw)
