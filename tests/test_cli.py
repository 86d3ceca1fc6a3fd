"""The command line as a user meets it: train, sample, interpolate, reconstruct, and bad input."""
import json

import numpy as np
import pytest

from conftest import run_cli

TINY = ["--set", "model.n_f=4", "--set", "sampler.n_steps=3", "--set", "train.batch_size=8",
        "--set", "train.log_every=1", "--set", "train.sample_every=2", "--set", "train.tensorboard=false",
        "--set", "train.n_grid=4", "--set", "train.precision=fp32"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("cli") / "run"
    p = run_cli("train", "--config", "digits", "--out", run, "--iters", "3", "--quiet", *TINY)
    assert "stopped at iteration 3" in p.stdout
    return run


def test_help_lists_the_commands():
    out = run_cli("--help").stdout
    for cmd in ("train", "sample", "interpolate", "reconstruct"):
        assert cmd in out


def test_dry_run_prints_config_and_paper_parameter_count():
    p = run_cli("train", "--config", "cifar10", "--out", "unused", "--dry-run", "--set", "model.n_f=64")
    assert p.stdout.strip().splitlines()[-1] == "parameters 2763393"
    cfg = json.loads(p.stdout[: p.stdout.rindex("}") + 1])
    assert cfg["sampler"]["n_steps"] == 100 and cfg["train"]["data_noise"] == 0.03


def test_train_writes_the_run_directory(trained):
    assert json.loads((trained / "config.json").read_text())["model"]["n_f"] == 4
    rows = [json.loads(x) for x in (trained / "metrics.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in rows] == [1, 2, 3]
    assert (trained / "samples" / "iter_00000002.png").exists()
    assert list((trained / "checkpoints").glob("ckpt_*.safetensors"))


def test_sample_png_and_npz(trained, tmp_path):
    run_cli("sample", "--run", trained, "--n", "5", "--out", tmp_path / "s.png", "--quiet")
    assert (tmp_path / "s.png").stat().st_size > 0
    run_cli("sample", "--run", trained, "--n", "5", "--out", tmp_path / "s.npz", "--quiet", "--batch-size", "2")
    arr = np.load(tmp_path / "s.npz")["arr_0"]
    assert arr.dtype == np.uint8 and arr.shape == (5, 8, 8, 1)
    run_cli("sample", "--run", trained, "--n", "5", "--out", tmp_path / "t.npz", "--quiet", "--batch-size", "5")
    assert np.array_equal(arr, np.load(tmp_path / "t.npz")["arr_0"])


def test_interpolate_and_reconstruct(trained, tmp_path):
    run_cli("interpolate", "--run", trained, "--out", tmp_path / "i.png", "--pairs", "2", "--columns", "4", "--quiet")  # accepted by every command
    assert (tmp_path / "i.png").exists()
    p = run_cli("reconstruct", "--run", trained, "--out", tmp_path / "r.png", "--n", "2", "--steps", "4", "--quiet")
    assert "mse" in p.stdout
    result = json.loads((tmp_path / "r.json").read_text())
    assert 0 <= result["mse"] <= 1 and len(result["splits"]["train"]["curve"]) == 5 and "mse_heldout" in result


def test_resume_extends_a_run(trained, tmp_path):
    import shutil
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    p = run_cli("train", "--out", run, "--resume", "--iters", "5", "--quiet")
    assert "stopped at iteration 5" in p.stdout


@pytest.mark.parametrize("args, message", [
    (["train", "--config", "digits", "--out", "{tmp}/r", "--set", "model.nf=3"], "did you mean model.n_f"),
    (["train", "--config", "digits", "--out", "{tmp}/r", "--set", "train.iters=many"], "expected int"),
    (["train", "--config", "nosuch", "--out", "{tmp}/r"], "unknown config"),
    (["train", "--config", "cifar10", "--out", "{tmp}/r", "--set", "data.root={tmp}/none"], "no data found"),
    (["sample", "--run", "{tmp}/missing", "--n", "2", "--out", "{tmp}/x.png"], "does not exist"),
    (["train", "--out", "{tmp}/missing", "--resume"], "does not exist"),
    (["train", "--out", "{tmp}/r", "--dry-run", "--set", "data.name=nosuch"], "unknown dataset 'nosuch'"),
])
def test_bad_input_gives_one_line_and_no_traceback(tmp_path, args, message):
    p = run_cli(*[a.replace("{tmp}", str(tmp_path)) for a in args], check=False)
    assert p.returncode != 0
    assert message in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_pickled_checkpoint_is_refused_and_runs_nothing(trained, tmp_path):
    import pickle
    import shutil
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os
            return (os.system, (f"touch {marker}",))

    for ckpt in (run / "checkpoints").glob("*.safetensors"):
        ckpt.write_bytes(pickle.dumps(Evil()))
    p = run_cli("sample", "--run", run, "--n", "2", "--out", tmp_path / "x.png", check=False)
    assert p.returncode != 0 and "not a shortrun checkpoint" in p.stderr
    assert not marker.exists()


def test_bench_reports_speed_and_counted_flops():
    proc = run_cli("bench", "--config", "cifar10", "--set", "data.image_size=16", "--set", "model.n_f=4",
                   "--set", "train.batch_size=4", "--set", "sampler.n_steps=2", "--set", "train.precision=fp32",
                   "--iters", "2", "--warmup", "1")
    fields = {line.split()[0]: line.split()[1] for line in proc.stdout.splitlines() if line.strip()}
    assert float(fields["ms_per_iter"]) > 0 and float(fields["langevin_steps_per_s"]) > 0
    assert float(fields["sample_images_per_s"]) > 0
    assert float(fields["flops_per_iter"]) > 0  # counted by FlopCounterMode, in GFLOP
    assert "fused_grad on" in proc.stdout and "keep_freed_memory on" in proc.stdout


def test_reconstruct_given_images_from_npz_and_folder(trained, tmp_path):
    from PIL import Image
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (3, 8, 8, 1), dtype=np.uint8)
    np.savez(tmp_path / "given.npz", arr_0=imgs)
    run_cli("reconstruct", "--run", trained, "--out", tmp_path / "a.png", "--images", tmp_path / "given.npz",
            "--n", "2", "--steps", "3", "--quiet")
    result = json.loads((tmp_path / "a.json").read_text())
    assert result["split"] == "given" and result["splits"]["given"]["n"] == 2
    folder = tmp_path / "folder"
    folder.mkdir()
    for i, img in enumerate(imgs):  # RGB files of another size: brought to the run's 8×8 grey
        Image.fromarray(np.repeat(np.kron(img[..., 0], np.ones((2, 2), np.uint8))[..., None], 3, 2)).save(
            folder / f"{i}.png")
    run_cli("reconstruct", "--run", trained, "--out", tmp_path / "b.png", "--images", folder,
            "--n", "5", "--steps", "3", "--quiet")
    assert json.loads((tmp_path / "b.json").read_text())["splits"]["given"]["n"] == 3


def test_interpolate_between_observed_images(trained, tmp_path):
    run_cli("interpolate", "--run", trained, "--out", tmp_path / "o.png", "--observed", "--pairs", "2",
            "--rho", "1,0.5,0", "--steps", "3")
    from PIL import Image
    assert Image.open(tmp_path / "o.png").size[0] > 0


def test_version_is_printed_and_recorded(trained):
    from shortrun import __version__
    from shortrun.training import checkpoint
    assert run_cli("--version").stdout.startswith(f"shortrun {__version__}")
    assert json.loads((trained / "config.json").read_text())["shortrun"]["version"] == __version__
    assert checkpoint.load_latest(trained)[1]["meta"]["version"] == __version__


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_works_before_or_after_the_command(tmp_path, where):
    """Error lines say "rerun with --debug": it must be accepted where users then type it."""
    cmd = ["sample", "--run", str(tmp_path / "missing"), "--out", str(tmp_path / "x.npz")]
    args = ["--debug", *cmd] if where == "before" else [*cmd, "--debug"]
    p = run_cli(*args, check=False)
    assert p.returncode == 2 and "Traceback" in p.stderr and "does not exist" in p.stderr
    plain = run_cli(*cmd, check=False)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr


def test_report_accepts_quiet_like_every_command(trained):
    run_cli("report", "--run", trained, "--quiet")
    assert (trained / "report.html").is_file()


def test_a_long_grid_is_not_enlarged_past_the_side_limit(tmp_path):
    from PIL import Image
    from shortrun.images import MAX_SIDE, save_png
    column = np.zeros((3000 * 10, 10, 3), np.uint8)  # one column of 3000 8x8 images with borders
    save_png(column, tmp_path / "c.png")
    w, h = Image.open(tmp_path / "c.png").size
    assert max(w, h) <= max(MAX_SIDE, 30000) and (w, h) == (10, 30000)  # too long already: kept at 1x
    save_png(np.zeros((10, 10, 3), np.uint8), tmp_path / "small.png")
    assert Image.open(tmp_path / "small.png").size == (260, 260)  # tiny images are still enlarged


def test_failed_allocations_count_as_out_of_memory():
    from shortrun.cli import _out_of_memory
    assert _out_of_memory(RuntimeError("std::bad_alloc"))
    assert _out_of_memory(RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"))
    assert not _out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
