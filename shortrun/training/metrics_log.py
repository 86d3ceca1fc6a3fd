"""What a training run logs as it goes: RUN/metrics.jsonl and TensorBoard scalars in RUN/tb/.

metrics.jsonl gets one JSON object per logged iteration. On resume, lines past the
checkpoint's iteration (logged after it, then lost with the kill) and any broken last line
are dropped, so the file reads as if the run had never stopped. After a rollback to iteration j
the rows past j are dropped likewise (they will be logged again), keeping the rollback events.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from ..atomic import write_text_atomic


def repair_metrics(path: Path, upto_iter: int, keep_events: bool = False) -> None:
    """Keeps the well-formed lines with iter <= upto_iter (and with keep_events, every event row such
    as a rollback); rewrites the file atomically."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and (row.get("iter", math.inf) <= upto_iter or keep_events and "event" in row):
            kept.append(line)
    write_text_atomic(path, "".join(line + "\n" for line in kept))


def read_metrics(path: str | Path) -> list[dict]:
    rows = []
    for line in Path(path).read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return rows


class MetricsLog:
    """Appends rows to RUN/metrics.jsonl (and TensorBoard); writes only when `enabled` (rank 0 of N)."""

    def __init__(self, run: Path, enabled: bool = True, tensorboard: bool = True):
        self.enabled = enabled
        self.path = run / "metrics.jsonl"
        if enabled:
            run.mkdir(parents=True, exist_ok=True)
        self.tb = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(str(run / "tb"))
            except ImportError:
                print("warning: tensorboard is not installed; skipping TensorBoard logs", file=sys.stderr)

    def write(self, row: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as fh:  # one write per line: a kill leaves at most one broken line
            fh.write(json.dumps(row) + "\n")
            fh.flush()
        if self.tb is not None:
            for key, value in row.items():
                if key != "iter" and isinstance(value, (int, float)):
                    self.tb.add_scalar(key, value, row["iter"])

    def cut(self, upto_iter: int) -> None:
        """Drops the rows past `upto_iter`, keeping events: after a rollback those iterations run again."""
        if self.enabled:
            repair_metrics(self.path, upto_iter, keep_events=True)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
