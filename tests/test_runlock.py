"""One writer per run directory: a second `train` or `--resume` gets one line naming the holder's
PID and changes nothing; the lock dies with its process, so a killed run never leaves it stale."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from shortrun.errors import UserError
from shortrun.training import Trainer, checkpoint, train
from shortrun.training.runlock import RunLock

from conftest import ROOT, tiny_config


def test_a_second_lock_names_the_holder_and_a_released_lock_is_free(tmp_path):
    with RunLock(tmp_path / "run"):
        with pytest.raises(UserError, match=f"in use by another training process \\(PID {os.getpid()}\\)"):
            RunLock(tmp_path / "run").acquire()
    RunLock(tmp_path / "run").acquire().release()
    assert not (tmp_path / "run" / ".lock").exists()  # a clean release leaves nothing behind


def _train(run, seed, tiny_overrides):
    sets = [x for o in tiny_overrides for x in ("--set", o)]
    return subprocess.Popen([sys.executable, "-m", "shortrun", "train", "--config", "digits", "--out", str(run),
                             "--iters", "100000", "--seed", str(seed), "--quiet", *sets], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_trains_racing_on_one_out(tmp_path, tiny_overrides):
    run = tmp_path / "run"
    procs = {1: _train(run, 1, tiny_overrides), 2: _train(run, 2, tiny_overrides)}
    deadline = time.time() + 120
    while all(p.poll() is None for p in procs.values()) and time.time() < deadline:
        time.sleep(0.05)
    (lost, loser), = [(s, p) for s, p in procs.items() if p.poll() is not None]
    seed, winner = next((s, p) for s, p in procs.items() if s != lost)
    _, err = loser.communicate()
    assert loser.returncode == 2
    assert len(err.strip().splitlines()) == 1 and f"(PID {winner.pid})" in err, err
    while len((run / "metrics.jsonl").read_text().splitlines()) < 3 and time.time() < deadline:
        time.sleep(0.05)  # the winner trains on, alone
    winner.send_signal(signal.SIGTERM)
    out, err = winner.communicate(timeout=120)
    assert winner.returncode == 143 and "stopped by SIGTERM" in out, err
    assert json.loads((run / "config.json").read_text())["train"]["seed"] == seed
    assert checkpoint.load_latest(run)[1]["meta"]["config"]["train"]["seed"] == seed
    iters = [json.loads(x)["iter"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert iters == list(range(1, len(iters) + 1))  # one run's lines, each once


def test_resume_while_another_holds_the_run(tmp_path):
    run = tmp_path / "run"
    Trainer(tiny_config(), run).save()
    before = {p.name: p.stat().st_mtime_ns for p in (run / "checkpoints").iterdir()}
    with RunLock(run):
        p = subprocess.run([sys.executable, "-m", "shortrun", "train", "--out", str(run), "--resume", "--iters", "3",
                            "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=300)
        with pytest.raises(UserError, match=f"PID {os.getpid()}"):  # the Python API refuses the same
            train(None, run, resume=True, iters=3, progress=False)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and f"(PID {os.getpid()})" in p.stderr, p.stderr
    assert {p.name: p.stat().st_mtime_ns for p in (run / "checkpoints").iterdir()} == before
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints"]


def test_the_lock_dies_with_a_killed_process(tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom shortrun.training.runlock import RunLock\n"
                               "RunLock(sys.argv[1]).acquire()\nprint('locked', flush=True)\ntime.sleep(600)",
                               str(run)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(UserError, match=f"PID {holder.pid}"):
            train(tiny_config(), run, iters=2, progress=False)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (run / ".lock").exists() and not (run / "config.json").exists()
    assert train(tiny_config(), run, iters=2, progress=False)["iter"] == 2  # no stale lock
    assert not (run / ".lock").exists()
