"""Every bad input ends in one line (issue 14): through the real CLI, each case must exit 2, print
exactly one line on stderr naming the option or field, print no traceback, and change nothing on
disk. Config ranges are also checked through the Python API, which must refuse the same values."""
import json
import os
import shutil

import numpy as np
import pytest
import torch

from conftest import run_cli

TINY = ["--set", "model.n_f=4", "--set", "sampler.n_steps=3", "--set", "train.batch_size=8",
        "--set", "train.log_every=1", "--set", "train.tensorboard=false", "--set", "train.n_grid=4",
        "--set", "train.precision=fp32"]
TRAIN = ["train", "--config", "digits", "--out", "{tmp}/new", "--iters", "1", "--quiet", *TINY]
SAMPLE = ["sample", "--run", "{run}", "--out", "{tmp}/s.png", "--quiet"]
INTERP = ["interpolate", "--run", "{run}", "--out", "{tmp}/i.png"]
REC = ["reconstruct", "--run", "{run}", "--out", "{tmp}/r.png", "--quiet"]
EVAL = ["evaluate", "--run", "{run}", "--quiet"]
NOT_UTF8 = os.fsdecode(b"run\xff")  # what Python makes of a non-UTF-8 argument


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("bad") / "run"
    run_cli("train", "--config", "digits", "--out", run, "--iters", "2", "--quiet", *TINY)
    return run


def _edit_checkpoints(meta_edit=None, tensor_edit=None):
    """A setup: a copy of the trained run (at {run}) with every checkpoint's metadata and tensors edited."""
    def setup(tmp, trained):
        from safetensors import safe_open
        from safetensors.torch import load_file, save_file
        run = tmp / "edited"
        shutil.copytree(trained, run)
        for ckpt in (run / "checkpoints").glob("ckpt_*.safetensors"):
            with safe_open(ckpt, "pt") as f:
                meta = json.loads(f.metadata()["shortrun"])
            tensors = load_file(ckpt)
            if meta_edit is not None:
                meta = meta_edit(meta) or meta
            if tensor_edit is not None:
                tensor_edit(tensors)
            save_file(tensors, ckpt, metadata={"shortrun": json.dumps(meta)})
        return run
    return setup


def _edit_meta(edit):
    return _edit_checkpoints(meta_edit=edit)


def _edit_tensors(edit):
    return _edit_checkpoints(tensor_edit=edit)


def _file(name, content):
    def setup(tmp, trained):
        (tmp / name).write_bytes(content) if isinstance(content, bytes) else (tmp / name).write_text(content)
    return setup


def _npz(name, **arrays):
    def setup(tmp, trained):
        np.savez(tmp / name, **arrays)
    return setup


def _nan_weight(tensors):
    tensors["model.f.0.weight"].view(-1)[3] = float("nan")


def _misshapen_moment(tensors):
    for name in [k for k in tensors if k.endswith(".exp_avg")][:1]:
        tensors[name] = tensors[name].flatten()[:1].clone()


def _one_image(tmp, trained):
    from PIL import Image
    (tmp / "one").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp / "one" / "a.png")


def _config_edit(key, value):
    return _edit_meta(lambda m: m["config"][key.split(".")[0]].update({key.split(".")[1]: value}))


def _drop(field):
    return _edit_meta(lambda m: m.pop(field) and None)


def _put(field, value):
    return _edit_meta(lambda m: m.update({field: value}))


def _run_with_folder(name):
    """A copy of the trained run (at {run}) with a folder where a command writes the file `name`."""
    def setup(tmp, trained):
        run = tmp / "edited"
        shutil.copytree(trained, run)
        (run / name).mkdir()
        return run
    return setup


def _folder(name):
    return lambda tmp, trained: (tmp / name).mkdir()


CASES = [  # (command line, what stderr must name, setup)
    # config ranges, checked in the config layer (train --set, config files)
    (TRAIN + ["--set", "train.lr=nan"], "train.lr", None),
    (TRAIN + ["--set", "train.lr=-1"], "train.lr", None),
    (TRAIN + ["--set", "train.beta1=2"], "train.beta1", None),
    (TRAIN + ["--set", "train.threads=-1"], "train.threads", None),
    (TRAIN + ["--set", "train.device=tpu9"], "train.device", None),
    (TRAIN + ["--set", "train.keep_checkpoints=0"], "train.keep_checkpoints", None),
    (TRAIN + ["--set", "train.iters=-5"], "train.iters", None),
    (TRAIN + ["--set", "train.iters=1e400"], "train.iters", None),
    (TRAIN + ["--set", "train.seed=1e30"], "train.seed", None),
    (TRAIN + ["--set", "sampler.n_steps=1000000000"], "sampler.n_steps", None),
    (TRAIN + ["--set", "sampler.step_size=inf"], "sampler.step_size", None),
    (TRAIN + ["--set", "train.data_noise=-0.1"], "train.data_noise", None),
    (TRAIN + ["--set", "train.precision=fp8"], "train.precision", None),
    (TRAIN + ["--set", "data.channels=2"], "data.channels", None),
    (TRAIN + ["--set", "sampler.init_rank=0"], "sampler.init_rank", None),
    (SAMPLE + ["--set", "sampler.init=fitted"], "sampler.init", None),  # trained from uniform noise
    (TRAIN + ["--set", "sampler.init=fitted", "--set", "sampler.init_components=5000"], "sampler.init_components", None),
    (TRAIN + ["--set", "train.lr"], "--set", None),
    (["train", "--config", "{tmp}/bin.json", "--out", "{tmp}/new"], "bin.json", _file("bin.json", b"\xff\xfe\x00\x81")),
    (["train", "--config", "{tmp}/big.json", "--out", "{tmp}/new"], "train.iters",
     _file("big.json", '{"train": {"iters": 1e400}}')),
    (["train", "--config", "{tmp}/nan.toml", "--out", "{tmp}/new"], "train.lr", _file("nan.toml", "[train]\nlr = nan\n")),
    (TRAIN + ["--config", "folder", "--set", "data.root={tmp}/one"], "data.holdout", _one_image),
    # train's own options and its output folder
    (TRAIN + ["--iters", "-5"], "--iters", None),
    (TRAIN + ["--max-time", "-1"], "--max-time", None),
    (["train", "--out", "", "--iters", "1", *TINY], "--out", None),
    (["train", "--out", "{tmp}/" + NOT_UTF8, "--iters", "1", *TINY], "--out", None),
    (["train", "--out", "{tmp}/file.txt", "--iters", "1", *TINY], "--out", _file("file.txt", "not a run")),
    # sample
    (SAMPLE + ["--batch-size", "0"], "--batch-size", None),
    (SAMPLE + ["--nrow", "-1"], "--nrow", None),
    (SAMPLE + ["--num-samples", "0"], "--num-samples", None),
    (SAMPLE + ["--seed", str(2**70)], "--seed", None),
    (SAMPLE + ["--set", "sampler.n_steps=1e9"], "sampler.n_steps", None),
    (SAMPLE + ["--set", "nokey"], "--set", None),
    (["sample", "--run", "{run}", "--out", "{tmp}/s.txt"], "--out", None),
    (["sample", "--run", "{run}", "--out", ""], "--out", None),
    (["sample", "--run", "{run}", "--out", "{tmp}/dir.png"], "--out", lambda tmp, _: (tmp / "dir.png").mkdir()),
    (["sample", "--run", "", "--out", "{tmp}/s.png"], "--run", None),
    (["sample", "--run", "{tmp}/missing", "--out", "{tmp}/s.png"], "missing", None),
    # interpolate
    (INTERP + ["--rho", "abc"], "--rho", None),
    (INTERP + ["--rho", "2"], "--rho", None),
    (INTERP + ["--pairs", "0"], "--pairs", None),
    (INTERP + ["--columns", "0"], "--columns", None),
    (INTERP + ["--observed", "--pairs", "5000"], "--pairs", None),  # more pairs than training images
    (["interpolate", "--run", "{run}", "--out", "{tmp}/i.npz"], "--out", None),
    # reconstruct
    (REC + ["--n", "0"], "--n", None),
    (REC + ["--steps", "-1"], "--steps", None),
    (REC + ["--lr", "nan"], "--lr", None),
    (REC + ["--segments", "-2"], "--segments", None),
    (["reconstruct", "--run", "{run}", "--out", "{tmp}/r.jpg"], "--out", None),
    (REC + ["--images", "{tmp}/empty.npz"], "arr_0", _npz("empty.npz", arr_0=np.zeros((0, 8, 8, 1), np.uint8))),
    (REC + ["--images", "{tmp}/two.npz"], "channels", _npz("two.npz", arr_0=np.zeros((2, 8, 8, 2), np.uint8))),
    (REC + ["--images", "{tmp}/float.npz"], "uint8", _npz("float.npz", arr_0=np.zeros((2, 8, 8, 1)))),
    (REC + ["--images", "{tmp}/other.npz"], "arr_0", _npz("other.npz", x=np.zeros((2, 8, 8, 1), np.uint8))),
    (REC + ["--images", "{tmp}/objects.npz"], "arr_0", _npz("objects.npz", arr_0=np.array([{}, 1], dtype=object))),
    (REC + ["--images", "{tmp}/text.npz"], "text.npz", _file("text.npz", "not a zip")),
    (REC + ["--images", "{tmp}/notes.txt"], "--images", _file("notes.txt", "not an image")),
    (REC + ["--images", "{tmp}/missing.png"], "--images", None),
    # evaluate and bench
    (EVAL + ["--n", "0"], "--n", None),
    (EVAL + ["--rec-n", "0"], "--rec-n", None),
    (EVAL + ["--inception-weights", "{tmp}/nope.pth"], "--inception-weights", None),
    (EVAL + ["--inception-weights", "{tmp}/junk.pth"], "junk.pth", _file("junk.pth", b"not a tensor file")),
    (["report", "--run", "{tmp}/missing"], "missing", None),
    (["report", "--run", "{tmp}/empty"], "holds no run", _folder("empty")),
    (EVAL + ["--n", "1"], "--n", None),
    (EVAL + ["--inception-weights", "{tmp}"], "a folder", None),
    (["download", "mnist", "--root", "{tmp}/afile"], "is a file", _file("afile", "x")),
    # files written beside the main output, refused before the work when a folder stands there
    (REC, "r.json", _folder("r.json")),
    (REC, "r_curve.png", _folder("r_curve.png")),
    (EVAL, "eval.json", _run_with_folder("eval.json")),
    (SAMPLE + ["--n", "2000000"], "--n", None),  # a PNG grid no viewer would open
    (["train", "--config", "{tmp}/extra.json", "--out", "{tmp}/new"], "extra", _file("extra.json", '{"extra": {}}')),
    (["train", "--config", "", "--out", "{tmp}/new"], "--config", None),
    (["bench", "--iters", "0"], "--iters", None),
    # checkpoint metadata, untrusted: sample and --resume read it
    (SAMPLE, "'iter'", _drop("iter")),
    (SAMPLE, "'iter'", _put("iter", -3)),
    (SAMPLE, "'shape'", _drop("shape")),
    (SAMPLE, "'shape'", _put("shape", [1, 16, 16])),
    (SAMPLE, "'shape'", _put("shape", [1, 9, 9])),
    (SAMPLE, "'kind'", _put("kind", "points")),
    (SAMPLE, "'scale'", _put("scale", -1)),
    (SAMPLE, "'config'", _drop("config")),
    (SAMPLE, "train.lr", _config_edit("train.lr", -1)),
    (SAMPLE, "'optimizer'", _put("optimizer", 5)),
    (SAMPLE, "metadata", _edit_meta(lambda m: [m])),
    (SAMPLE, "format", _put("format", "shortrun-checkpoint/99")),
    (SAMPLE, "'guard'", _put("guard", {"gaps": ["x"], "rollbacks": 0})),
    # a data setting that makes other examples than the net was trained on (it would fail mid-work)
    (REC + ["--set", "data.image_size=16"], "shape", None),
    # outputs that cannot be written, refused before the work
    (["sample", "--run", "{run}", "--out", "{tmp}/afile/s.npz", "--quiet"], "not a folder", _file("afile", "x")),
    (["train", "--config", "digits", "--out", "{tmp}", "--iters", "1", "--quiet", *TINY], "metrics.jsonl",
     _file("metrics.jsonl", '{"iter": 1, "loss": 0.5}\n')),
    (["train", "--config", "digits", "--out", "{tmp}", "--iters", "1", "--quiet", *TINY], "config.json",
     _file("config.json", '{"mine": 1}')),
    (["train", "--out", "{run}", "--resume", "--quiet"], "train.keep_checkpoints",
     _config_edit("train.keep_checkpoints", 0)),
    (["train", "--out", "{run}", "--resume", "--quiet"], "'iter'", _drop("iter")),
    (["train", "--out", "{run}", "--resume", "--iters", "-1"], "--iters", None),
    (["train", "--out", "{run}", "--resume", "--iters", "1"], "--iters", None),  # the run is at iteration 2
    # checkpoint tensors: NaN weights (every checkpoint damaged) and a misshapen Adam moment
    (SAMPLE, "non-finite", _edit_tensors(_nan_weight)),
    (["train", "--out", "{run}", "--resume", "--quiet"], "exp_avg", _edit_tensors(_misshapen_moment)),
]
if not torch.cuda.is_available():
    CASES.append((TRAIN + ["--set", "train.device=cuda"], "train.device", None))


def _listing(*roots):
    """Every path under the roots, with each file's size and mtime. RUN/.lock is left out, and the
    folders' own mtimes: a refused --resume has taken the run lock, which makes and removes it."""
    return {str(p): None if p.is_dir() else (p.stat().st_size, p.stat().st_mtime_ns)
            for root in roots if root.exists() for p in [root, *root.rglob("*")] if p.name != ".lock"}


@pytest.mark.parametrize("args, names, setup", CASES, ids=[f"{i}-{c[0][0]}-{c[1]}" for i, c in enumerate(CASES)])
def test_bad_input_gives_one_line_exit_2_and_changes_nothing(trained, tmp_path, args, names, setup):
    run = (setup(tmp_path, trained) if setup else None) or trained
    before = _listing(trained, tmp_path)
    p = run_cli(*[a.replace("{tmp}", str(tmp_path)).replace("{run}", str(run)) for a in args], check=False)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2, p.stderr
    assert len(lines) == 1 and names in lines[0], p.stderr
    assert "Traceback" not in p.stderr and "allow_pickle" not in p.stderr
    assert _listing(trained, tmp_path) == before


def test_every_config_key_has_a_range():
    from shortrun.config import RULES, all_keys
    assert set(RULES) == set(all_keys()), "a config key without a rule in config.RULES (or a rule for no key)"


@pytest.mark.parametrize("key, value", [("train.lr", float("nan")), ("train.beta1", 2.0), ("train.threads", -1),
                                        ("train.keep_checkpoints", 0), ("train.device", "tpu9"),
                                        ("sampler.n_steps", 10**6), ("train.iters", -1)])
def test_python_api_refuses_what_the_cli_refuses(tmp_path, key, value):
    from shortrun import Trainer, resolve, train
    from shortrun.errors import UserError
    with pytest.raises(UserError, match=key):
        resolve("digits", [f"{key}={value}"])
    cfg = resolve("digits")
    section, name = key.split(".")
    setattr(getattr(cfg, section), name, value)  # as a user of the API may, past --set's checks
    for make in (lambda: Trainer(cfg, tmp_path / "t"), lambda: train(cfg, tmp_path / "r", progress=False)):
        with pytest.raises(UserError, match=key):
            make()
    assert not list(tmp_path.iterdir())


def test_quoted_tilde_is_expanded_and_negative_seeds_are_fine(monkeypatch, tmp_path):
    from shortrun.cli import build_parser
    monkeypatch.setenv("HOME", str(tmp_path))
    a = build_parser().parse_args(["sample", "--run", "~/run", "--out", "~/s.png", "--seed", "-1"])
    assert (a.run, a.out, a.seed) == (str(tmp_path / "run"), str(tmp_path / "s.png"), -1)
    assert build_parser().parse_args(["train", "--out", "~/r"]).out == str(tmp_path / "r")
