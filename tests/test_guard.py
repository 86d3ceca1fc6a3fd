"""The divergence guard on its own, with a stand-in for the run (no training, no monkeypatching)."""
import json
import math

import pytest

from shortrun.config import TrainConfig
from shortrun.errors import UserError
from shortrun.training.guard import DivergenceGuard

HEALTHY = {"loss": 0.1, "energy_diff": 0.5, "samples_finite": True}


class FakeRun:
    """Holds an iteration counter and a 'checkpoint' on disk; records what the guard restored."""

    def __init__(self, checkpoint_at=-1):
        self.iter, self.disk, self.restored = 0, checkpoint_at, []

    def capture(self):
        return {"iter": self.iter}

    def restore_capture(self, snapshot):
        self.iter = snapshot["iter"]
        self.restored.append(("snapshot", snapshot["iter"]))

    def checkpoint_iter(self):
        return self.disk

    def restore_checkpoint(self):
        self.iter = self.disk
        self.restored.append(("checkpoint", self.disk))


def _guard(**kw):
    return DivergenceGuard(TrainConfig(**kw), say=lambda *a: None)


@pytest.mark.parametrize("bad", [{"loss": math.nan}, {"loss": math.inf}, {"samples_finite": False},
                                 {"energy_diff": 2e6}, {"energy_diff": -2e6}])
def test_what_counts_as_divergence(bad):
    g = _guard()
    assert not g.diverged(HEALTHY)
    assert g.diverged({**HEALTHY, **bad})
    assert not _guard(divergence_check=False).diverged({**HEALTHY, **bad})


def test_rolls_back_to_the_newer_of_snapshot_and_checkpoint():
    g, run = _guard(snapshot_every=3), FakeRun(checkpoint_at=2)
    for _ in range(7):
        run.iter += 1
        g.passed(run)  # snapshots at 3 and 6
    event = g.rollback({**HEALTHY, "loss": math.nan}, run)
    assert run.restored == [("snapshot", 6)] and g.lr_scale == 0.5
    assert event == {"iter": 7, "event": "rollback", "to_iter": 6, "lr_scale": 0.5}
    run.disk = 9  # a newer checkpoint than the snapshot wins
    run.iter = 10
    g.rollback({**HEALTHY, "loss": math.nan}, run)
    assert run.restored[-1] == ("checkpoint", 9) and g.lr_scale == 0.25


def test_stops_after_max_rollbacks_in_a_row_and_forgets_them_once_past():
    g, run = _guard(max_rollbacks=2, snapshot_every=1), FakeRun()
    run.iter = 1
    g.passed(run)
    for _ in range(2):
        run.iter = 3
        g.rollback({**HEALTHY, "loss": math.nan}, run)
    run.iter = 4  # past the divergence at 3: the count resets
    g.passed(run)
    assert g.rollbacks == 0
    for _ in range(2):
        run.iter = 6
        g.rollback({**HEALTHY, "loss": math.nan}, run)
    with pytest.raises(UserError, match="diverged 3 times"):
        run.iter = 6
        g.rollback({**HEALTHY, "loss": math.nan}, run)


def test_no_good_state_and_too_small_lr_are_clear_errors():
    with pytest.raises(UserError, match="before any checkpoint"):
        _guard().rollback({**HEALTHY, "loss": math.nan}, FakeRun())
    g, run = _guard(min_lr_scale=0.3, max_rollbacks=10), FakeRun(checkpoint_at=0)
    g.rollback({**HEALTHY, "loss": math.nan}, run)  # 0.5
    with pytest.raises(UserError, match="min_lr_scale"):
        g.rollback({**HEALTHY, "loss": math.nan}, run)  # 0.25 < 0.3
    assert g.lr_scale == 0.5  # refused, not applied


def test_gap_far_beyond_its_own_history_and_saturation_count():
    g = _guard(gap_factor=100.0, max_saturation=0.5)
    run = FakeRun()
    for i in range(60):  # a healthy history: gaps around 0.5
        run.iter += 1
        g.passed(run, {**HEALTHY, "energy_diff": 0.5 if i % 2 else -0.4, "saturation": 0.0})
    assert not g.diverged({**HEALTHY, "energy_diff": 90.0})  # within 100 × max(1, median)
    assert g.diverged({**HEALTHY, "energy_diff": 150.0})  # far beyond the run's own scale, long before 1e6
    assert g.diverged({**HEALTHY, "saturation": 0.9})
    fresh = _guard()
    assert not fresh.diverged({**HEALTHY, "energy_diff": 150.0})  # no history yet: only the fixed limit


def test_healthy_needs_a_clean_recent_window():
    g, run = _guard(), FakeRun(checkpoint_at=0)
    assert not g.healthy()  # nothing seen yet: the untrained start is not a healthy model
    for _ in range(19):
        run.iter += 1
        g.passed(run, {**HEALTHY, "saturation": 0.0})
    assert not g.healthy()  # README: at least 20 clean iterations
    for _ in range(6):
        run.iter += 1
        g.passed(run, {**HEALTHY, "saturation": 0.0})
    assert g.healthy()
    g.passed(run, {**HEALTHY, "saturation": 0.2})  # chains drifting out of the data's range
    assert not g.healthy()
    for _ in range(25):
        run.iter += 1
        g.passed(run, {**HEALTHY, "saturation": 0.0})
    assert g.healthy()
    g.rollback({**HEALTHY, "loss": math.nan}, run)
    assert not g.healthy()  # until the run is past the divergence
    at, clean = g.diverged_at, 0
    while run.iter <= at or clean < 20:  # past the divergence, and 20 clean iterations since the rollback
        assert not g.healthy()
        run.iter += 1
        clean += 1
        g.passed(run, {**HEALTHY, "saturation": 0.0})
    assert g.healthy()


def test_history_survives_a_save_and_load():
    g = _guard(snapshot_every=1)
    run = FakeRun()
    for it in range(60):
        run.iter = it
        g.passed(run, dict(HEALTHY, energy_diff=0.5 + it / 100, saturation=it / 1000))
    g.rollbacks, g.diverged_at = 1, 59
    h = _guard()
    h.load_state_dict(json.loads(json.dumps(g.state_dict())))  # as in a checkpoint
    assert list(h.gaps) == list(g.gaps) and list(h.saturations) == list(g.saturations)
    assert (h.rollbacks, h.diverged_at, h.seen, h.clean) == (1, 59, 60, 60)
    spike = dict(HEALTHY, energy_diff=150.0)  # 100 × beyond the history: only a guard that has it sees it
    assert h.diverged(spike) and g.diverged(spike) and not _guard().diverged(spike)
    h.load_state_dict(None)  # a checkpoint from before the history was saved leaves it as it is
    assert h.seen == 60
