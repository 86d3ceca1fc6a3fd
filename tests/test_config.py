"""Config files, --set coercion and validation."""
import dataclasses
import json

import pytest

from shortrun.presets import resolve
from shortrun.errors import UserError
from shortrun.presets import PRESETS


def test_json_and_toml_files(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"sampler": {"n_steps": 7}, "model": {"n_f": 5}}))
    (tmp_path / "c.toml").write_text("[sampler]\nn_steps = 9\n[train]\nlr = 0.002\n")
    a = resolve(str(tmp_path / "c.json"), ["train.batch_size=16"])
    assert (a.sampler.n_steps, a.model.n_f, a.train.batch_size) == (7, 5, 16)
    b = resolve(str(tmp_path / "c.toml"))
    assert (b.sampler.n_steps, b.train.lr) == (9, 0.002)


def test_a_file_naming_a_preset_changes_only_what_it_gives(tmp_path):
    (tmp_path / "p.json").write_text(json.dumps({"preset": "cifar10", "sampler": {"n_steps": 40}}))
    (tmp_path / "p.toml").write_text('preset = "folder"\n[train]\nlr = 0.001\n')
    a, b = resolve(str(tmp_path / "p.json")), resolve(str(tmp_path / "p.toml"))
    want = resolve("cifar10", ["sampler.n_steps=40"])
    assert a == want
    assert b == resolve("folder", ["train.lr=0.001"])
    (tmp_path / "q.json").write_text(json.dumps({"sampler": {"n_steps": 40}}))
    assert resolve(str(tmp_path / "q.json")).train.lr == 1e-4  # no preset: config.py's defaults


@pytest.mark.parametrize("text, message", [
    ('{"sampler": {"n_stepz": 3}}', "did you mean sampler.n_steps"),
    ('{"sampler": {"n_steps": "many"}}', "expected int"),
    ('{"sampler": ', "not valid"),
    ('[1, 2]', "expected an object"),
    ('{"preset": "cifar1"}', "unknown preset 'cifar1' .did you mean cifar10"),
    ('{"preset": 3}', "unknown preset 3"),
])
def test_bad_config_files(tmp_path, text, message):
    (tmp_path / "bad.json").write_text(text)
    with pytest.raises(UserError, match=message):
        resolve(str(tmp_path / "bad.json"))


def test_set_coercion_and_validation():
    cfg = resolve("digits", ["train.tensorboard=off", "sampler.step_size=1e-2", "train.iters=1e3"])
    assert cfg.train.tensorboard is False and cfg.sampler.step_size == 0.01 and cfg.train.iters == 1000
    with pytest.raises(UserError, match="n_steps must be"):
        resolve("digits", ["sampler.n_steps=-1"])
    with pytest.raises(UserError, match="key=value"):
        resolve("digits", ["sampler.n_steps"])


def test_every_preset_resolves_and_paper_settings_hold():
    for name in PRESETS:
        resolve(name)
    c = resolve("cifar10_paper")
    assert (c.model.n_f, c.sampler.n_steps, c.sampler.step_size, c.sampler.noise_std) == (128, 100, 1.0, 0.01)
    assert (c.train.data_noise, c.train.lr, c.train.batch_size, c.data.subset) == (0.03, 1e-4, 64, 40_000)
    assert (c.train.warmup_iters, c.train.ema, c.train.anneal_start) == (0, 0.0, 200_000 / 240_000)
    assert resolve("celeba64_paper").model.n_f == resolve("lsun64_paper").model.n_f == 64
    # the default image presets: the paper's net, sampler and data, with our learning recipe
    for name in ("cifar10", "celeba64", "lsun64", "mnist", "folder"):
        ours, paper = resolve(name), resolve(f"{name}_paper")
        assert (ours.model, ours.data) == (paper.model, paper.data)
        # the chain starts from a Gaussian fitted to the data, the paper's from uniform noise
        assert (ours.sampler.init, paper.sampler.init) == ("fitted", "uniform")
        assert dataclasses.replace(ours.sampler, init="uniform", init_rank=paper.sampler.init_rank,
                                   noise_std=paper.sampler.noise_std) == paper.sampler
        assert ours.sampler.noise_std < paper.sampler.noise_std  # less step noise: benchmarks/RESULTS.md
        assert ours.train.lr > paper.train.lr and ours.train.warmup_iters > 0 and ours.train.schedule == "anneal"
