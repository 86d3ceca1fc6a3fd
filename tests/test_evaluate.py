"""`shortrun evaluate` end to end on a tiny digits run, and the report in a real browser."""
import json
import re
import shutil
import subprocess

import pytest

from conftest import run_cli

TINY = ["--set", "model.n_f=4", "--set", "sampler.n_steps=3", "--set", "train.batch_size=8",
        "--set", "train.log_every=1", "--set", "train.tensorboard=false", "--set", "train.n_grid=4",
        "--set", "train.precision=fp32"]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    run = tmp_path_factory.mktemp("ev") / "run"
    run_cli("train", "--config", "digits", "--out", run, "--iters", "4", "--quiet", *TINY)
    p = run_cli("evaluate", "--run", run, "--n", "64", "--rec-n", "2", "--rec-steps", "3", "--quiet",
                check=False)
    return run, p


def test_evaluate_without_weights_still_writes_the_other_metrics(evaluated, monkeypatch):
    run, p = evaluated
    assert p.returncode == 0, p.stderr
    assert "SHORTRUN_INCEPTION_WEIGHTS" in p.stderr and "Traceback" not in p.stderr
    ev = json.loads((run / "eval.json").read_text())
    m = ev["metrics"]
    assert m["fid"] is None and any("FID" in n for n in ev["notes"])
    for key in ("digits_fd", "digits_label_entropy", "reconstruction_mse_train", "reconstruction_mse_heldout"):
        assert isinstance(m[key], float), key
    assert "digits_fd" in p.stdout
    from shortrun import __version__
    assert ev["code"]["evaluated_with"]["version"] == ev["code"]["trained_with"]["version"] == __version__


def test_report_lists_every_figure(evaluated):
    run, _ = evaluated
    page = (run / "report.html").read_text()
    sources = re.findall(r"<img src='([^']+)'", page)
    assert {"report/samples.png", "report/reconstruction.png", "report/interpolation.png", "report/training.png",
            "report/long_run.png"} <= set(sources)
    for src in sources:
        assert (run / src).stat().st_size > 0
    # each headline metric beside what gives it scale
    m = json.loads((run / "eval.json").read_text())["metrics"]
    assert m["digits_fd_real_train"] < m["digits_fd_noise"]
    assert 0 < m["reconstruction_mse_mean_image"] < 1
    row = re.search(r"<tr><th>digits_fd</th>(.*?)</tr>", page).group(1)
    assert "real training digits" in row and row.count("<td") == 3
    from PIL import Image
    w, h = Image.open(run / "report" / "reconstruction.png").size
    assert h <= 1300  # compact: steps down, images across (it was 4238 px tall)


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it)")
def test_report_renders_in_headless_chromium_with_every_image_loaded(evaluated, tmp_path):
    run, _ = evaluated
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", "--allow-file-access-from-files",
           "--virtual-time-budget=5000", "--dump-dom", (run / "report.html").as_uri()]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    flags = re.findall(r'data-loaded="(\w+)"', dom)
    assert len(flags) == len(re.findall(r"<img", dom)) >= 5
    assert set(flags) == {"yes"}
