"""A run directory whose files were edited or damaged, and commands stopped from outside: what a
user meets after a crash, a bad copy or a scheduler's SIGTERM. Each case must end in a clear line
or a clean recovery, never a traceback or silently wrong output."""
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT, run_cli


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from conftest import TINY
    run = tmp_path_factory.mktemp("damaged") / "run"
    run_cli("train", "--config", "digits", "--out", run, "--iters", "3", "--quiet",
            *[a for kv in TINY for a in ("--set", kv)])
    return run


def _copy(trained, tmp_path):
    import shutil
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    return run


DAMAGED_ROWS = ['{"iter": "x", "loss": 1}', "[1]", '{"iter": 2, "energy_diff": "a"}', '{"loss": 3}', "{broken"]


def test_damaged_metrics_rows_are_skipped_by_resume_and_the_curves(trained, tmp_path):
    from shortrun.evaluation.diagnostics import training_curves
    from shortrun.training.metrics_log import read_metrics
    run = _copy(trained, tmp_path)
    path = run / "metrics.jsonl"
    with open(path, "ab") as fh:
        fh.write(("\n".join(DAMAGED_ROWS) + "\n").encode() + b"\xff\xfe\n")
    rows = read_metrics(path)
    assert [r["iter"] for r in rows] == [1, 2, 3, 2]  # the row with a text energy_diff has a good iter
    assert training_curves(path, tmp_path / "curves.png").is_file()  # the bad value is a gap, not a crash
    run_cli("train", "--out", run, "--resume", "--iters", "4", "--quiet")
    assert [r["iter"] for r in read_metrics(path)] == [1, 2, 3, 2, 4]  # the damaged lines are dropped


@pytest.mark.parametrize("config, evaluation", [("{broken", "[1, 2]"), ("[1, 2]", '{"metrics": [1], "notes": 3}')])
def test_report_from_damaged_json_still_writes_the_page(trained, tmp_path, config, evaluation):
    run = _copy(trained, tmp_path)
    (run / "config.json").write_text(config)
    (run / "eval.json").write_text(evaluation)
    p = run_cli("report", "--run", run)
    assert "Traceback" not in p.stderr and "warning" in p.stderr
    page = (run / "report.html").read_text()
    assert "shortrun report" in page and "No evaluation yet" in page


def test_resume_dry_run_prints_and_trains_nothing(trained):
    before = sorted(p.name for p in (trained / "checkpoints").iterdir())
    p = run_cli("train", "--out", trained, "--resume", "--dry-run", "--iters", "9", "--seed", "5")
    assert p.stdout.strip().splitlines()[-1] == "would resume from iteration 3 of 9"
    assert json.loads(p.stdout[: p.stdout.rindex("}") + 1])["train"]["iters"] == 9
    assert "--seed" in p.stderr  # ignored on resume, and said so
    assert sorted(p.name for p in (trained / "checkpoints").iterdir()) == before


def test_sigterm_during_sample_leaves_no_partial_file(trained, tmp_path):
    out = tmp_path / "big.npz"
    proc = subprocess.Popen([sys.executable, "-m", "shortrun", "sample", "--run", str(trained), "--out", str(out),
                             "--n", "1000000", "--quiet"], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not list(tmp_path.glob("big.npz.*.tmp")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "sampling ended before it was stopped"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # neither the temporary file nor a partial .npz


def test_sixteen_bit_and_float_images_keep_their_brightness(tmp_path):
    from PIL import Image

    from shortrun.data.vision import _decode
    ramp = np.linspace(0, 1, 64 * 64).reshape(64, 64)
    Image.fromarray(np.round(ramp * 65535).astype(np.uint16)).save(tmp_path / "g16.png")
    Image.fromarray(ramp.astype(np.float32)).save(tmp_path / "f.tiff")
    Image.fromarray(np.round(ramp * 255).astype(np.uint8)).save(tmp_path / "g8.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")  # the case PIL's convert clips at 255
    want = _decode(tmp_path / "g8.png", 16, "L", None).astype(float)
    for name in ("g16.png", "f.tiff"):
        for mode in ("L", "RGB"):
            got = _decode(tmp_path / name, 16, mode, None).astype(float)
            assert np.abs(got.reshape(16, 16, -1).mean(-1) - want).max() <= 1, (name, mode)


def test_sample_refuses_a_file_its_disk_has_no_room_for(trained, tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple
    from shortrun.commands import sample_job
    from shortrun.errors import UserError
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(UserError, match="GB free"):
        sample_job(trained, tmp_path / "many.npz", n=100, progress=False)  # 100 × 64 bytes > 1000
    assert not (tmp_path / "many.npz").exists()


def test_the_last_iteration_is_logged_when_not_a_multiple_of_log_every(tmp_path):
    from conftest import tiny_config
    from shortrun import train
    from shortrun.training.metrics_log import read_metrics
    train(tiny_config("train.log_every=3", "train.iters=5"), tmp_path / "r", progress=False)
    assert [row["iter"] for row in read_metrics(tmp_path / "r" / "metrics.jsonl")] == [3, 5]


def test_help_names_the_defaults():
    out = run_cli("sample", "--help").stdout
    assert "(default: 64)" in out and "(default: average)" in out
