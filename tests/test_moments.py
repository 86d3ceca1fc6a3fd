"""Moment matching: with f_θ = ⟨θ, h⟩ over frozen h, short-run learning drives E_q[h] toward E_data[h]."""
import pytest
import torch

from shortrun.config import ModelConfig, SamplerConfig
from shortrun.data.toys import TOYS
from shortrun.model import ShortRun
from shortrun.energy import MomentEnergy
from shortrun.evaluation.moments import moment_check, moment_gap


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny [128, 2] ops gain nothing from threads, and on a busy machine a second OpenMP thread
    waiting for a core makes each of the ~15k Langevin steps far slower (seconds became minutes)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _points_model(n_f=64, seed=0):
    a = 1e-3  # the toy presets' exact Langevin form, a = Δτ/2, b = √Δτ; K = 50 keeps the test quick
    sampler = SamplerConfig(n_steps=50, step_size=a, noise_std=(2 * a) ** 0.5)
    return ShortRun(MomentEnergy(ModelConfig(n_f=n_f, feature_seed=seed), 2, 0), sampler, (2,), torch.device("cpu"))


def test_only_theta_learns_and_h_is_seeded():
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    img = MomentEnergy(ModelConfig(n_f=4, feature_seed=7), channels=3, image_size=16)
    assert torch.equal(torch.random.get_rng_state(), state)  # building h leaves the caller's RNG alone
    params = dict(img.named_parameters())
    assert list(params) == ["theta"] and torch.count_nonzero(params["theta"]) == 0
    assert all(not b.requires_grad for b in img.buffers()) and len(list(img.buffers())) == 6
    x = torch.rand(5, 3, 16, 16) * 2 - 1
    assert img.features(x).shape == (5, 16) and torch.equal(img(x), torch.zeros(5))  # f ≡ 0 at θ = 0
    again = MomentEnergy(ModelConfig(n_f=4, feature_seed=7), channels=3, image_size=16)
    other = MomentEnergy(ModelConfig(n_f=4, feature_seed=8), channels=3, image_size=16)
    assert torch.equal(again.features(x), img.features(x)) and not torch.equal(other.features(x), img.features(x))
    assert "h.0.weight" in img.state_dict()  # checkpoints carry h too

    sr = ShortRun(img, SamplerConfig(n_steps=2), (3, 16, 16), torch.device("cpu"), torch.bfloat16, channels_last=True)
    assert sr.chain(x).shape == x.shape and sr.energy(x).dtype == torch.float32  # bf16 + channels_last path

    pts = MomentEnergy(ModelConfig(n_f=32), channels=2, image_size=0)
    pts.theta.data.normal_()
    y = torch.rand(3, 2)
    ref = pts(y)
    assert torch.allclose(ref, pts.features(y) @ pts.theta.data)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # points stay float32: bf16 would blur cos and its gradient
        assert torch.equal(pts(y), ref) and pts.features(y).dtype == torch.float32
    with pytest.raises(TypeError, match="fixed features"):
        moment_gap(ShortRun(torch.nn.Linear(2, 1), SamplerConfig(), (2,), torch.device("cpu")), torch.zeros(4, 2), 8, 0)


def test_short_run_learning_matches_moments():
    toy = TOYS["8gaussians"]
    data = toy.sample(4000, torch.Generator().manual_seed(0)) / toy.scale  # model coordinates
    model, untrained = _points_model(), _points_model()
    gap0 = moment_gap(untrained, data, n_samples=1000, seed=0)
    assert gap0 > 0.3  # θ = 0: the chain is pure noise diffusion from U[-1, 1]^2
    assert moment_gap(untrained, data, 1000, seed=0) == pytest.approx(gap0)  # seeded chains

    opt = torch.optim.Adam(model.net.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(1)
    for _ in range(300):  # Algorithm 1: fresh noise-initialised negatives every iteration, no persistence
        x = data[torch.randint(0, len(data), (128,), generator=g)]
        with model.frozen():
            neg = model.chain(model.init(128, g), generator=g)
        loss = model.energy(neg).mean() - model.energy(x).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    report = moment_check(model, untrained, data, n_samples=1000, seed=0)
    assert report["gap_before"] == pytest.approx(gap0)
    assert report["ratio"] < 0.5, report  # the gap shrinks clearly (about 6x in practice)
    with pytest.raises(ValueError, match="different features"):
        moment_check(model, _points_model(seed=1), data, n_samples=100)
