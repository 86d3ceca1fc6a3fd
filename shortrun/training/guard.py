"""The divergence guard: notice a diverged iteration, roll back to a good state, lower the lr.

Short-run learning can blow up (f drifting to huge magnitudes, chains overshooting to
non-finite values or far outside the data's range). The guard judges each iteration's statistics
against fixed limits and against the run's own recent history; on divergence it returns
the run to its newest good state (an in-memory snapshot, or the newest checkpoint on disk),
multiplies the learning rate by train.rollback_lr_factor, and stops the run with one clear
message when that does not help.

It acts on the run through four calls, so it can be tested with a stand-in:
    state.capture() -> snapshot        state.restore_capture(snapshot)
    state.checkpoint_iter() -> int     state.restore_checkpoint()      (-1: none on disk)
"""
from __future__ import annotations

import collections
import copy
import math
import statistics
import sys
from typing import Callable, Protocol

from ..config import TrainConfig
from ..errors import UserError


HISTORY = 200  # healthy iterations the gap's typical size is taken over
HISTORY_MIN = 50  # the history-based threshold applies once this many are in
HEALTHY_WINDOW = 20  # iterations that must be clean before a checkpoint counts as healthy
HEALTHY_SATURATION = 0.05  # ... with at most this fraction of chain values beyond ±1.5


class GuardedState(Protocol):
    iter: int

    def capture(self) -> dict: ...
    def restore_capture(self, snapshot: dict) -> None: ...
    def checkpoint_iter(self) -> int: ...
    def restore_checkpoint(self) -> None: ...


class DivergenceGuard:
    def __init__(self, cfg: TrainConfig, say: Callable[..., None] | None = None):
        self.cfg = cfg
        self.say = say or (lambda *a, **k: print(*a, file=sys.stderr, **k))
        self.lr_scale = 1.0  # lowered after each rollback; saved with the checkpoints
        self.rollbacks = 0  # in a row: reset once the run passes the iteration that diverged
        self.diverged_at = -1
        self.snapshot: dict | None = None
        self.gaps: collections.deque = collections.deque(maxlen=HISTORY)  # |energy_diff| of healthy iterations
        self.saturations: collections.deque = collections.deque(maxlen=HISTORY)
        self.seen = 0
        self.clean = 0  # iterations passed since this session began or since the last rollback

    def state_dict(self) -> dict:
        """What a resumed run needs to judge its next iterations as this one would (JSON; saved in
        every checkpoint's metadata). The in-memory snapshot is not kept: the checkpoint stands in."""
        return {"gaps": list(self.gaps), "saturations": list(self.saturations), "rollbacks": self.rollbacks,
                "diverged_at": self.diverged_at, "seen": self.seen, "clean": self.clean}

    def load_state_dict(self, state: dict | None) -> None:
        """Restores state_dict()'s history; None (a checkpoint from before it was saved) starts afresh."""
        if not state:
            return
        self.gaps = collections.deque(map(float, state.get("gaps", [])), maxlen=HISTORY)
        self.saturations = collections.deque(map(float, state.get("saturations", [])), maxlen=HISTORY)
        self.rollbacks = int(state.get("rollbacks", 0))
        self.diverged_at = int(state.get("diverged_at", -1))
        self.seen = int(state.get("seen", 0))
        self.clean = int(state.get("clean", 0))

    def diverged(self, row: dict) -> bool:
        """A non-finite loss or chain, an energy gap beyond train.max_energy_gap or far beyond its own
        recent size (train.gap_factor × its median over the last healthy iterations, at least 1), or
        chains run away from the data's range (saturation above train.max_saturation)."""
        if not self.cfg.divergence_check:
            return False
        gap = abs(row["energy_diff"])
        if not math.isfinite(row["loss"]) or not row["samples_finite"] or gap > self.cfg.max_energy_gap:
            return True
        if row.get("saturation", 0.0) > self.cfg.max_saturation:
            return True
        if len(self.gaps) >= HISTORY_MIN and gap > self.cfg.gap_factor * max(1.0, statistics.median(self.gaps)):
            return True
        return False

    def healthy(self) -> bool:
        """Whether the recent iterations were clean: no rollback among them, and chains that stay
        near the data's range. Checkpoints saved then are kept as the run's healthy checkpoint."""
        recent = list(self.saturations)[-HEALTHY_WINDOW:]
        return (self.clean >= HEALTHY_WINDOW and self.rollbacks == 0
                and max(recent, default=0.0) <= HEALTHY_SATURATION)

    def observe(self, row: dict) -> None:
        """Adds a healthy iteration's statistics to the history the thresholds are judged against."""
        gap, saturation = abs(row["energy_diff"]), row.get("saturation", 0.0)
        if math.isfinite(gap) and math.isfinite(saturation):  # with divergence_check=false anything passes
            self.gaps.append(gap)
            self.saturations.append(saturation)
        self.seen += 1
        self.clean += 1

    def passed(self, state: GuardedState, row: dict | None = None) -> None:
        """After a healthy iteration (its statistics `row`): add them to the history, forget old
        rollbacks once past the last divergence, and take an in-memory snapshot every
        train.snapshot_every iterations (a rollback then loses little)."""
        if row is not None:
            self.observe(row)
        if state.iter > self.diverged_at:
            self.rollbacks = 0
        if self.cfg.divergence_check and state.iter % self.cfg.snapshot_every == 0:
            self.snapshot = copy.deepcopy(state.capture())

    def rollback(self, row: dict, state: GuardedState) -> dict:
        """Returns `state` to its newest good state with a lower lr; raises UserError when the run
        keeps diverging. Returns the event for the metrics log."""
        t = self.cfg
        self.rollbacks += 1
        self.clean = 0
        at = self.diverged_at = state.iter
        self.say(f"\ndivergence at iteration {at}: loss={row['loss']:.4g}, energy_diff={row['energy_diff']:.4g}, "
                 f"finite samples={row['samples_finite']}")
        if self.rollbacks > t.max_rollbacks:
            raise UserError(f"training diverged {self.rollbacks} times in a row (last at iteration {at}); "
                            f"lower train.lr or sampler.step_size")
        scale = self.lr_scale * t.rollback_lr_factor  # compounds over repeated rollbacks
        if scale < t.min_lr_scale:
            # divergences spaced past each other reset the count; this bounds them all together
            raise UserError(f"training kept diverging (last at iteration {at}) until the learning rate fell "
                            f"to x{scale:g} of train.lr (below train.min_lr_scale={t.min_lr_scale:g}); "
                            f"lower train.lr or sampler.step_size, or add train.energy_l2=0.1")
        disk_iter = state.checkpoint_iter()
        if self.snapshot is not None and self.snapshot["iter"] >= disk_iter:
            state.restore_capture(copy.deepcopy(self.snapshot))
        elif disk_iter >= 0:
            state.restore_checkpoint()
        else:
            raise UserError(f"training diverged at iteration {at} before any checkpoint was written; "
                            f"lower train.lr or sampler.step_size")
        self.lr_scale = scale
        self.say(f"rolled back to iteration {state.iter}; learning rate x{self.lr_scale:g}")
        return {"iter": at, "event": "rollback", "to_iter": state.iter, "lr_scale": self.lr_scale}
