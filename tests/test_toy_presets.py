"""rings and checkerboard: moment matching over random Fourier features with a clamped, tempered chain."""
import pytest
import torch

from shortrun import resolve
from shortrun.data.toys import TOYS
from shortrun.evaluation.moments import moment_gap
from shortrun.run import open_run
from shortrun.training import train


@pytest.mark.parametrize("name", ["rings", "checkerboard"])
def test_fourier_toy_presets_learn_their_moments_and_stay_in_the_box(tmp_path, one_thread, name):
    cfg = resolve(name, ["train.iters=150", "model.n_f=256", "sampler.n_steps=30", "data.toy_size=4000",
                         "train.batch_size=128", "train.tensorboard=false", "train.sample_every=1000"])
    assert (cfg.model.name, cfg.sampler.clamp, cfg.train.energy_l2) == ("moments", True, 0.0)
    train(cfg, tmp_path / name, progress=False)
    run = open_run(tmp_path / name)
    toy = TOYS[name]
    data = toy.sample(4000, torch.Generator().manual_seed(0)) / toy.scale
    with run.model.frozen():
        x = run.model.chain(run.model.init(2000, torch.Generator().manual_seed(3)),
                            generator=torch.Generator().manual_seed(4))
    assert x.abs().max() <= 1.0  # clamped to the model box
    trained_gap = moment_gap(run.model, data, n_samples=2000, seed=0)
    run.model.net.theta.data.zero_()  # θ = 0: the untrained chain over the same features
    assert trained_gap < 0.5 * moment_gap(run.model, data, n_samples=2000, seed=0)
