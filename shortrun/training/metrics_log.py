"""What a training run logs as it goes: RUN/metrics.jsonl and TensorBoard scalars in RUN/tb/.

metrics.jsonl gets one JSON object per logged iteration. On resume, lines past the
checkpoint's iteration (logged after it, then lost with the kill) and any broken last line
are dropped, so the file reads as if the run had never stopped. After a rollback to iteration j
the rows past j are dropped likewise (they will be logged again), keeping the rollback events.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..atomic import write_text_atomic


def parse_row(line: str) -> dict | None:
    """A logged row, or None for a line that is not one: broken JSON (a kill mid-write), or anything
    but an object with an integer "iter" (an edited or damaged file)."""
    try:
        row = json.loads(line)
    except ValueError:
        return None
    if not isinstance(row, dict) or type(row.get("iter")) is not int:
        return None
    return row


def repair_metrics(path: Path, upto_iter: int, keep_events: bool = False) -> None:
    """Keeps the well-formed lines with iter <= upto_iter (and with keep_events, every event row such
    as a rollback); rewrites the file atomically."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(errors="replace").splitlines():
        row = parse_row(line)
        if row is not None and (row["iter"] <= upto_iter or keep_events and "event" in row):
            kept.append(line)
    write_text_atomic(path, "".join(line + "\n" for line in kept))


def read_metrics(path: str | Path) -> list[dict]:
    """The well-formed rows of a metrics.jsonl; damaged lines are skipped."""
    rows = (parse_row(line) for line in Path(path).read_text(errors="replace").splitlines())
    return [row for row in rows if row is not None]


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
