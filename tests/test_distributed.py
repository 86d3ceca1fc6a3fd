"""torchrun with two gloo processes on the CPU: the same learning as one process, rank-0-only
writing, and sharded sampling equal to single-process sampling."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from shortrun.training import checkpoint

from conftest import ROOT

TORCHRUN = shutil.which("torchrun", path=os.path.dirname(sys.executable))
TINY = ["--set", "model.n_f=4", "--set", "sampler.n_steps=3", "--set", "train.batch_size=8",
        "--set", "train.log_every=1", "--set", "train.sample_every=2", "--set", "train.tensorboard=false",
        "--set", "train.n_grid=4", "--set", "train.precision=fp32", "--set", "train.device=cpu",
        "--set", "sampler.init=fitted", "--set", "sampler.init_rank=4"]  # p_0 fitted on rank 0, broadcast


def _env():
    return dict(os.environ, OMP_NUM_THREADS="1")


def _run(args, n_proc):
    prefix = [TORCHRUN, "--standalone", f"--nproc_per_node={n_proc}", "-m", "shortrun"] if n_proc > 1 \
        else [sys.executable, "-m", "shortrun"]
    p = subprocess.run(prefix + [str(a) for a in args], cwd=ROOT, capture_output=True, text=True, timeout=600,
                       env=_env())
    assert p.returncode == 0, p.stdout + p.stderr
    return p


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("dist")
    _run(["train", "--config", "digits", "--out", base / "one", "--iters", "4", "--quiet", *TINY], 1)
    p = _run(["train", "--config", "digits", "--out", base / "two", "--iters", "4", "--quiet", *TINY], 2)
    return base, p


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun not installed beside python")
def test_two_processes_learn_what_one_process_learns(runs):
    base, _ = runs
    a = checkpoint.load_latest(base / "one")[1]
    b = checkpoint.load_latest(base / "two")[1]
    assert a["meta"]["iter"] == b["meta"]["iter"] == 4
    assert torch.equal(a["extra"]["p0.basis"], b["extra"]["p0.basis"])
    lr = 3e-4
    for k, v in a["model"].items():
        if k.endswith(".bias"):
            # a bias whose units are active on every input gets gradient mean(1) - mean(1) = 0
            # exactly (as does f's last bias: f is defined up to a constant); Adam turns the
            # rounding noise left there into ±lr steps, whatever the process count
            assert (v - b["model"][k]).abs().max() <= 2 * lr * 4, k
        else:
            assert torch.allclose(v, b["model"][k], atol=1e-6, rtol=1e-5), k


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun not installed beside python")
def test_only_rank_zero_writes(runs):
    base, p = runs
    lines = (base / "two" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 4  # one line per iteration, not one per rank
    assert p.stdout.count("stopped at iteration 4") == 1
    assert sorted(x.name for x in (base / "two" / "samples").iterdir()) == ["final.png", "iter_00000002.png",
                                                                          "iter_00000004.png"]


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun not installed beside python")
def test_sharded_sampling_equals_single_process(runs, tmp_path):
    base, _ = runs
    _run(["sample", "--run", base / "one", "--n", "7", "--out", tmp_path / "one.npz", "--quiet"], 1)
    _run(["sample", "--run-dir", base / "one", "--num-samples", "7", "--out", tmp_path / "two.npz", "--quiet",
          "--batch-size", "2", "--set", "train.device=cpu"], 2)
    assert np.array_equal(np.load(tmp_path / "one.npz")["arr_0"], np.load(tmp_path / "two.npz")["arr_0"])


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun not installed beside python")
def test_distributed_resume(runs, tmp_path):
    base, _ = runs
    shutil.copytree(base / "two", tmp_path / "two")
    _run(["train", "--out", tmp_path / "two", "--resume", "--iters", "6", "--quiet"], 2)
    assert checkpoint.load_latest(tmp_path / "two")[1]["meta"]["iter"] == 6
    lines = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 6
