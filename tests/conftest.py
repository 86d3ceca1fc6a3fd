import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "bench" / "reference.py"

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def tiny_overrides():
    """A digits config small enough for a test to train in a second or two."""
    return ["model.n_f=4", "sampler.n_steps=3", "train.batch_size=8", "train.log_every=1",
            "train.sample_every=1000", "train.checkpoint_every=1000", "train.tensorboard=false",
            "train.n_grid=4", "train.precision=fp32"]


def run_cli(*args, check=True):
    """Runs `python -m shortrun ARGS` in a subprocess; returns the CompletedProcess."""
    import subprocess
    proc = subprocess.run([sys.executable, "-m", "shortrun", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"shortrun {' '.join(map(str, args))} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc
