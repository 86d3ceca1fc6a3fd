"""sampler.init=fitted: p_0 is a Gaussian fitted to the training data, saved with the run."""
import numpy as np
import pytest
import torch

from shortrun import open_run, synthesize, train
from shortrun.errors import UserError
from shortrun.sampler.fitted import FittedStart
from shortrun.tasks.interpolation import interpolate, mix
from shortrun.training import checkpoint

from conftest import straight_and_resumed, tiny_config


def _data(n=3000, d=48, seed=0):
    """Examples with a known, decaying spectrum and a non-zero mean, as uint8 like images."""
    g = torch.Generator().manual_seed(seed)
    axes = torch.linalg.qr(torch.randn(d, d, generator=g)).Q
    scales = torch.tensor([40.0, 25, 15, 10] + [2.0] * (d - 4))
    x = 128 + (torch.randn(n, d, generator=g) * scales) @ axes.T
    return x.clamp(0, 255).round().to(torch.uint8)


def _to_model(x):
    return x.float() / 127.5 - 1


def test_fit_matches_the_exact_principal_directions():
    x = _data()  # more than one 1,024-example chunk
    start = FittedStart.fit(x, _to_model, rank=4, seed=3)
    v = _to_model(x).double().numpy()
    assert np.allclose(start.mean.numpy(), v.mean(0), atol=1e-5)
    lam, vec = np.linalg.eigh(np.cov(v, rowvar=False))
    top = (vec[:, -4:] * lam[-4:]) @ vec[:, -4:].T  # Σ restricted to its 4 largest directions
    b = start.basis.double().numpy()
    assert np.abs(b.T @ b - top).max() < 1e-3 * np.abs(top).max()
    assert np.allclose(np.sort((b ** 2).sum(1)), lam[-4:], rtol=1e-3)  # the rows' norms are the λ_j


def test_fit_caps_the_examples_and_draws_have_the_fitted_covariance():
    start = FittedStart.fit(_data(), _to_model, rank=4, seed=0, max_examples=500)
    g = torch.Generator().manual_seed(1)
    z = start.draw((20_000, 48), generator=g)
    assert torch.allclose(z.mean(0), start.mean, atol=0.01)
    cov = torch.cov(z.T)
    want = start.basis.T @ start.basis
    assert (cov - want).abs().max() < 0.05 * want.abs().max()
    again = start.draw((5, 48), generator=torch.Generator().manual_seed(1))
    assert torch.equal(again, start.draw((5, 48), generator=torch.Generator().manual_seed(1)))  # seed → codes
    half = start.draw((5, 48), scale=0.5, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(half - start.mean, 0.5 * (again - start.mean), atol=1e-6)


def _cfg(*more):
    return tiny_config("sampler.init=fitted", "sampler.init_rank=3", "train.checkpoint_every=2",
                       "train.iters=6", *more)


def test_a_run_saves_its_p0_and_sampling_uses_it(tmp_path):
    train(_cfg(), tmp_path / "r", progress=False)
    state = checkpoint.load_latest(tmp_path / "r")[1]
    assert set(state["extra"]) >= {"p0.mean", "p0.basis"} and state["extra"]["p0.basis"].shape[0] == 3
    run = open_run(tmp_path / "r")
    assert torch.equal(run.model.start.mean, state["extra"]["p0.mean"])
    # the chain's start is the fitted Gaussian: with K = 0 the samples are z itself
    z0 = synthesize(open_run(tmp_path / "r", ["sampler.n_steps=0"]).model, 400, seed=0)
    mean = state["extra"]["p0.mean"].view(z0.shape[1:])
    assert (z0.mean(0) - mean).abs().max() < 0.2
    spread = (z0 - z0.mean(0)).flatten(1)
    assert torch.linalg.matrix_rank(spread, atol=1e-3) == 3  # confined to the 3 fitted directions
    # sampler.init_std at sampling time (README, "Sample"): the same seed's codes, shrunk about the mean
    tight = synthesize(open_run(tmp_path / "r", ["sampler.n_steps=0", "sampler.init_std=0.5"]).model, 400, seed=0)
    assert torch.allclose(tight - mean, 0.5 * (z0 - mean), atol=1e-5)
    # a run trained from uniform noise has no fitted p_0 to sample from
    train(tiny_config("train.iters=2"), tmp_path / "u", progress=False)
    with pytest.raises(UserError, match="no fitted p_0"):
        synthesize(open_run(tmp_path / "u", ["sampler.init=fitted"]).model, 2)


def test_resume_is_exact_and_keeps_the_saved_p0(tmp_path):
    a, b = straight_and_resumed(_cfg, tmp_path)
    for k, v in a.model.net.state_dict().items():
        assert torch.equal(v, b.model.net.state_dict()[k])
    assert torch.equal(a.model.start.basis, b.model.start.basis)


def test_interpolation_is_centred_on_the_fitted_mean(tmp_path):
    train(_cfg("train.iters=2"), tmp_path / "r", progress=False)
    model = open_run(tmp_path / "r").model
    mu = model.start_mean()
    z1, z2 = model.init(2, torch.Generator().manual_seed(0)).unbind()
    path = mix(z1, z2, [1.0, 0.6, 0.0], mu)
    assert torch.allclose(path[0], z1) and torch.allclose(path[2], z2)
    assert torch.allclose(path[1], mu + 0.6 * (z1 - mu) + 0.8 * (z2 - mu))
    rows = interpolate(model, n_pairs=1, rhos=[1.0, 0.0], seed=0)
    assert rows.shape == (1, 2, *model.shape) and torch.isfinite(rows).all()


def test_a_damaged_p0_in_a_checkpoint_is_refused(tmp_path):
    train(_cfg("train.iters=2"), tmp_path / "r", progress=False)
    state = checkpoint.load_latest(tmp_path / "r")[1]
    shape = tuple(state["meta"]["shape"])
    other = {"p0.mean": torch.zeros(5), "p0.basis": torch.zeros(3, 5)}  # another example size
    with pytest.raises(UserError, match="does not fit"):
        FittedStart.from_tensors(other, shape)
    with pytest.raises(UserError, match="damaged"):
        FittedStart.from_tensors(dict(state["extra"], **{"p0.mean": torch.zeros(5)}), shape)
    with pytest.raises(UserError, match="damaged"):
        FittedStart.from_tensors({"p0.mean": state["extra"]["p0.mean"]}, shape)
    nan = dict(state["extra"], **{"p0.basis": state["extra"]["p0.basis"] * float("nan")})
    with pytest.raises(UserError, match="does not fit"):
        FittedStart.from_tensors(nan, shape)


def test_evaluate_runs_the_moment_check_from_the_fitted_p0(tmp_path):
    from shortrun import resolve
    from shortrun.evaluation.evaluate import evaluate
    cfg = resolve("rings", ["train.iters=2", "model.n_f=16", "sampler.n_steps=3", "data.toy_size=500",
                            "train.batch_size=32", "train.tensorboard=false", "sampler.init=fitted",
                            "sampler.init_rank=2"])
    train(cfg, tmp_path / "r", progress=False)
    result = evaluate(tmp_path / "r", n=200, progress=False)
    m = result["metrics"]
    assert m["moment_gap_before"] > 0 and m["moment_gap_after"] > 0  # θ = 0 drew from the same p_0


def test_a_resumed_run_loads_its_p0_without_fitting_again(tmp_path, monkeypatch):
    from shortrun.training import Trainer
    Trainer(_cfg(), tmp_path / "r").fit(progress=False, until=2)
    saved = checkpoint.load_latest(tmp_path / "r")[1]["extra"]["p0.basis"]

    def no_fit(*a, **k):
        raise AssertionError("a resumed run fitted p_0 again")
    monkeypatch.setattr(FittedStart, "fit", no_fit)
    train(None, tmp_path / "r", resume=True, progress=False)
    assert torch.equal(open_run(tmp_path / "r").model.start.basis, saved)
