import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

torch.set_num_threads(min(2, os.cpu_count() or 1))

TINY = ["model.n_f=4", "sampler.n_steps=3", "train.batch_size=8", "train.log_every=1",
        "train.sample_every=1000", "train.checkpoint_every=1000", "train.tensorboard=false",
        "train.n_grid=4", "train.precision=fp32"]


def tiny_config(*overrides: str, preset: str = "digits"):
    """A config small enough for a test to train in a second or two, plus `overrides`."""
    from shortrun import resolve
    return resolve(preset, TINY + list(overrides))


def straight_and_resumed(make_cfg, tmp_path, stop_at: int = 3):
    """Trains make_cfg() once straight through and once stopped at `stop_at` and resumed; returns
    both runs opened (`open_run`), for exact-resume checks."""
    from shortrun import open_run, train
    from shortrun.training import Trainer
    train(make_cfg(), tmp_path / "straight", progress=False)
    Trainer(make_cfg(), tmp_path / "split").fit(progress=False, until=stop_at)
    train(None, tmp_path / "split", resume=True, progress=False)
    return open_run(tmp_path / "straight"), open_run(tmp_path / "split")


@pytest.fixture
def tiny_overrides():
    """The --set list of `tiny_config` (for CLI tests)."""
    return list(TINY)


@pytest.fixture
def one_thread():
    """Runs the test with torch on one thread (bit-exact comparisons across code paths), then restores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def inject_divergence(trainer, when, spoil):
    """Makes `trainer.step` report a diverged iteration: after each real step, if when(trainer)
    is true, spoil(row) edits the statistics the guard sees (e.g. a NaN loss)."""
    real_step = trainer.step

    def step():
        row = real_step()
        if when(trainer):
            spoil(row)
        return row

    trainer.step = step
    return trainer


def run_cli(*args, check=True):
    """Runs `python -m shortrun ARGS` in a subprocess; returns the CompletedProcess."""
    import subprocess
    proc = subprocess.run([sys.executable, "-m", "shortrun", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"shortrun {' '.join(map(str, args))} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc
