"""No lost work, no silent divergence: kills, rollbacks, full disks, unwritable outputs."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from shortrun import resolve
from shortrun.training import checkpoint
from shortrun.errors import UserError
from shortrun.training import Trainer

from conftest import ROOT, inject_divergence


def test_kill_9_mid_training_then_resume(tmp_path, tiny_overrides):
    run = tmp_path / "run"
    sets = [x for o in tiny_overrides + ["train.checkpoint_every=1"] for x in ("--set", o)]
    proc = subprocess.Popen([sys.executable, "-m", "shortrun", "train", "--config", "digits", "--out", str(run),
                             "--iters", "100000", "--quiet", *sets], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while len(checkpoint.list_checkpoints(run)) < 3 and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.137)  # an arbitrary instant, most likely mid-iteration or mid-save
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    path, state = checkpoint.load_latest(run)  # a loadable checkpoint survived
    done = state["meta"]["iter"]
    p = subprocess.run([sys.executable, "-m", "shortrun", "train", "--out", str(run), "--resume", "--iters",
                        str(done + 3), "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    iters = [json.loads(line)["iter"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert iters == list(range(1, done + 4))  # no duplicated, missing or broken lines
    assert not list((run / "checkpoints").glob("*.tmp"))


def test_injected_nan_rolls_back_and_lowers_lr(tmp_path, tiny_overrides):
    cfg = resolve("digits", tiny_overrides + ["train.checkpoint_every=2"])
    cfg.train.iters = 8
    fired = []  # once: the loss of iteration 5 is not finite
    tr = inject_divergence(Trainer(cfg, tmp_path), lambda t: t.iter == 5 and not fired,
                           lambda row: (fired.append(1), row.update(loss=float("nan"))))
    result = tr.fit(progress=False)
    assert result["iter"] == 8 and tr.lr_scale == 0.5
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    events = [r for r in rows if r.get("event") == "rollback"]
    assert events == [{"iter": 5, "event": "rollback", "to_iter": 4, "lr_scale": 0.5}]


def test_repeated_divergence_stops_with_a_message(tmp_path, tiny_overrides):
    cfg = resolve("digits", tiny_overrides + ["train.checkpoint_every=1", "train.max_rollbacks=2"])
    cfg.train.iters = 50
    tr = inject_divergence(Trainer(cfg, tmp_path), lambda t: t.iter >= 3, lambda row: row.update(energy_diff=1e12))
    with pytest.raises(UserError, match="diverged 3 times"):
        tr.fit(progress=False)
    assert checkpoint.load_latest(tmp_path)[1]["meta"]["iter"] == 2  # the good checkpoint is kept


def test_full_disk_keeps_the_previous_checkpoint(tmp_path, tiny_overrides, monkeypatch):
    cfg = resolve("digits", tiny_overrides)
    tr = Trainer(cfg, tmp_path)
    first = tr.save()
    real_open = os.open

    def full_disk(path, flags, *a, **kw):
        if str(path).endswith(".tmp") and flags & os.O_WRONLY:
            raise OSError(28, "No space left on device")
        return real_open(path, flags, *a, **kw)

    tr.step()
    monkeypatch.setattr(os, "open", full_disk)
    with pytest.raises(UserError, match="No space left"):
        tr.save()
    monkeypatch.undo()
    assert checkpoint.list_checkpoints(tmp_path) == [first]
    assert checkpoint.load(first)["meta"]["iter"] == 0


def test_truncated_checkpoint_falls_back_to_the_previous(tmp_path, tiny_overrides):
    cfg = resolve("digits", tiny_overrides)
    tr = Trainer(cfg, tmp_path)
    tr.save()
    tr.step()
    newest = tr.save()
    newest.write_bytes(newest.read_bytes()[:1000])
    with pytest.raises(UserError, match="not a shortrun checkpoint"):
        checkpoint.load(newest)
    path, state = checkpoint.load_latest(tmp_path)
    assert state["meta"]["iter"] == 0


def test_checkpoint_from_another_architecture_is_refused(tmp_path, tiny_overrides):
    cfg = resolve("digits", tiny_overrides)
    Trainer(cfg, tmp_path / "a").save()
    other = Trainer(resolve("digits", tiny_overrides + ["model.n_f=6"]), tmp_path / "b")
    _, state = checkpoint.load_latest(tmp_path / "a")
    with pytest.raises(UserError, match="does not fit"):
        other.restore(state)


def test_unwritable_output_is_one_clear_error(tmp_path, tiny_overrides):
    from shortrun.images import save_examples
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="cannot write"):
        save_examples(torch.zeros(1, 1, 8, 8, dtype=torch.uint8), blocker / "out.png", kind="image")


def test_sigterm_stops_cleanly_with_a_checkpoint(tmp_path, tiny_overrides):
    run = tmp_path / "run"
    sets = [x for o in tiny_overrides for x in ("--set", o)]
    proc = subprocess.Popen([sys.executable, "-m", "shortrun", "train", "--config", "digits", "--out", str(run),
                             "--iters", "100000", "--quiet", *sets], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run / "metrics.jsonl").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err  # 128 + SIGTERM: `train && evaluate` does not carry on
    assert "stopped by SIGTERM" in out
    path, state = checkpoint.load_latest(run)
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert state["meta"]["iter"] == rows[-1]["iter"]  # the checkpoint is of the last iteration run


def test_rollback_uses_the_in_memory_snapshot_when_newer(tmp_path, tiny_overrides):
    cfg = resolve("digits", tiny_overrides + ["train.checkpoint_every=1000", "train.snapshot_every=3"])
    cfg.train.iters = 9
    fired = []
    tr = inject_divergence(Trainer(cfg, tmp_path), lambda t: t.iter == 8 and not fired,
                           lambda row: (fired.append(1), row.update(samples_finite=False)))
    assert tr.fit(progress=False)["iter"] == 9
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r for r in rows if r.get("event")] == [{"iter": 8, "event": "rollback", "to_iter": 6, "lr_scale": 0.5}]
    # iteration 7 was logged, rolled back and run again: its first row is dropped, the event kept
    assert [r.get("event", r["iter"]) for r in rows] == [1, 2, 3, 4, 5, 6, "rollback", 7, 8, 9]


def test_a_damaged_newer_checkpoint_is_pruned_not_kept(tmp_path, tiny_overrides):
    """It would hold the one kept slot (keep_checkpoints=1) and the good checkpoints would go."""
    tr = Trainer(resolve("digits", tiny_overrides + ["train.keep_checkpoints=1"]), tmp_path)
    tr.save()
    damaged = tmp_path / "checkpoints" / "ckpt_00000050.safetensors"
    damaged.write_bytes(b"not a checkpoint")
    tr.restore(checkpoint.load_latest(tmp_path)[1])  # a resume: skips the damaged one
    tr.step()
    good = tr.save()
    assert checkpoint.list_checkpoints(tmp_path) == [good]
    assert checkpoint.load_latest(tmp_path)[1]["meta"]["iter"] == 1


def test_divergence_that_recurs_after_the_rollback_point_still_stops(tmp_path, tiny_overrides):
    """Healthy steps between the rollback point and the divergence must not reset the count."""
    cfg = resolve("digits", tiny_overrides + ["train.checkpoint_every=1000", "train.snapshot_every=2",
                                              "train.max_rollbacks=3"])
    cfg.train.iters = 50
    # iterations 3 and 4 are fine, 5 always diverges
    tr = inject_divergence(Trainer(cfg, tmp_path), lambda t: t.iter == 5, lambda row: row.update(loss=float("inf")))
    with pytest.raises(UserError, match="diverged 4 times"):
        tr.fit(progress=False)


def test_divergences_spaced_apart_stop_once_lr_is_too_small(tmp_path, tiny_overrides):
    """Each divergence lands past the last one (so the in-a-row count resets), as in a run that
    is unstable at any learning rate: the compounded lr cut must still end it, not crawl on."""
    cfg = resolve("digits", tiny_overrides + ["train.checkpoint_every=1000", "train.snapshot_every=2",
                                              "train.max_rollbacks=3", "train.min_lr_scale=0.01"])
    cfg.train.iters = 200
    last = [0]  # diverges 3 iterations past the previous divergence

    def when(t):
        if t.iter >= last[0] + 3:
            last[0] = t.iter
            return True
        return False

    tr = inject_divergence(Trainer(cfg, tmp_path), when, lambda row: row.update(energy_diff=1e12))
    with pytest.raises(UserError, match="min_lr_scale"):
        tr.fit(progress=False)
    assert 0.01 <= tr.lr_scale < 0.02  # stopped at the 7th halving (0.0078) without applying it


def test_healthy_checkpoint_survives_pruning_and_is_selectable(tmp_path, tiny_overrides):
    """Chains that start to saturate late: rolled back, and the kept healthy checkpoint (from before)
    survives pruning and is what --checkpoint best-healthy opens."""
    from conftest import run_cli
    cfg = resolve("digits", tiny_overrides + ["train.checkpoint_every=2", "train.keep_checkpoints=1",
                                              "train.max_rollbacks=1", "train.snapshot_every=1"])
    cfg.train.iters = 40
    tr = inject_divergence(Trainer(cfg, tmp_path), lambda t: t.iter >= 30, lambda row: row.update(saturation=0.9))
    with pytest.raises(UserError, match="diverged 2 times"):
        tr.fit(progress=False)
    healthy = checkpoint.load_selected(tmp_path, "best-healthy")[1]["meta"]["iter"]
    assert 20 <= healthy <= 28  # a clean window of 20 iterations before it, and before the trouble
    assert [p.name for p in (tmp_path / "checkpoints").glob("ckpt_*")] != []
    out = tmp_path / "h.png"
    p = run_cli("sample", "--run", tmp_path, "--n", "4", "--out", out, "--checkpoint", "best-healthy", "--quiet")
    assert p.returncode == 0 and out.exists()
    bad = run_cli("sample", "--run", tmp_path, "--n", "4", "--out", tmp_path / "x.png", "--checkpoint", "7",
                  check=False)
    assert bad.returncode == 2 and "no checkpoint of iteration 7" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    for ckpt in (tmp_path / "checkpoints").glob("ckpt_*"):  # only the healthy copy left: the error says so
        ckpt.unlink()
    with pytest.raises(UserError, match="--checkpoint best-healthy"):
        checkpoint.load_latest(tmp_path)


def test_resume_restores_the_guards_history(tmp_path, tiny_overrides):
    from shortrun.training.loop import _resumed
    from shortrun.training.runlock import RunLock
    cfg = resolve("digits", tiny_overrides + ["train.iters=6"])
    straight = Trainer(cfg, tmp_path / "a")
    straight.fit(progress=False, until=4)
    lock = RunLock(tmp_path / "a")
    try:
        resumed = _resumed(tmp_path / "a", None, lock)
        assert resumed.iter == 4 and len(resumed.guard.gaps) == 4
        assert resumed.guard.state_dict() == straight.guard.state_dict()
    finally:
        lock.release()


def test_an_interrupted_checkpoint_write_leaves_no_temp_file(tmp_path, tiny_overrides, monkeypatch):
    tr = Trainer(resolve("digits", tiny_overrides), tmp_path)
    first = tr.save()
    tr.step()

    def interrupted(fd):
        raise KeyboardInterrupt  # a second Ctrl-C during the final save

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tr.save()
    monkeypatch.undo()
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [first.name]


def test_a_new_run_drops_what_a_run_killed_before_its_first_checkpoint_logged(tmp_path, tiny_overrides):
    from shortrun import train
    from shortrun.training.metrics_log import read_metrics
    cfg = resolve("digits", tiny_overrides + ["train.iters=3"])
    (tmp_path / "metrics.jsonl").write_text('{"iter": 1, "loss": 9.0}\n{"iter": 2, "loss": 9.0}\n')
    (tmp_path / "config.json").write_text(json.dumps({**cfg.to_dict(), "shortrun": {"version": "old"}}))
    train(cfg, tmp_path, progress=False)
    rows = [r for r in read_metrics(tmp_path / "metrics.jsonl") if "loss" in r]
    assert [r["iter"] for r in rows] == [1, 2, 3] and all(r["loss"] != 9.0 for r in rows)


def test_resume_with_a_new_total_records_it_in_config_json(tmp_path, tiny_overrides):
    from shortrun import train
    train(resolve("digits", tiny_overrides + ["train.iters=2"]), tmp_path, progress=False)
    made_by = json.loads((tmp_path / "config.json").read_text())["shortrun"]
    train(None, tmp_path, resume=True, iters=3, progress=False)
    record = json.loads((tmp_path / "config.json").read_text())
    assert record["train"]["iters"] == 3 and record["shortrun"] == made_by


def test_outputs_are_checked_for_a_writable_folder_before_the_work(tmp_path, monkeypatch):
    from shortrun.commands import _check_room
    from shortrun.paths import output_path
    _check_room(tmp_path / "not" / "yet" / "s.npz", 10)  # the folder is made later: no FileNotFoundError
    assert output_path(tmp_path / "new" / "s.png", (".png",)).endswith("s.png")
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(UserError, match="no permission"):
        output_path(tmp_path / "new" / "s.png", (".png",))


def test_train_refuses_an_unwritable_folder_but_dry_run_may_read_one(tmp_path, tiny_overrides, monkeypatch):
    from shortrun import train
    from shortrun.argtypes import out_dir
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    assert out_dir(str(tmp_path / "run")) == str(tmp_path / "run")  # --resume --dry-run only reads
    with pytest.raises(UserError, match="no permission"):
        train(resolve("digits", tiny_overrides), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("finished", [False, True])
def test_demo_resumes_a_stopped_run_but_reuses_one_the_time_limit_ended(tmp_path, tiny_overrides, monkeypatch,
                                                                         finished):
    import shortrun.demo as demo
    Trainer(resolve("digits", tiny_overrides), tmp_path).save()  # a run at iteration 0 of 2,400
    if finished:  # the demo ran to its end once: its evaluation is there
        (tmp_path / "eval.json").write_text("{}")
    calls = []

    class Reached(Exception):
        pass

    def stop_at_synthesis(*a, **kw):
        raise Reached

    monkeypatch.setattr(demo, "train", lambda *a, **kw: calls.append(kw) or {"iter": 0, "reason": "test"})
    monkeypatch.setattr(demo, "sample_job", stop_at_synthesis)
    with pytest.raises(Reached):
        demo.demo(tmp_path)
    assert calls == ([] if finished else [{"resume": True, "max_time": 300.0}])
