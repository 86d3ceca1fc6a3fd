"""Grid divergences for 2-D toy runs, checked against the toys' exact densities and samplers."""
import pytest
import torch
from torch import nn

from shortrun.config import SamplerConfig
from shortrun.data.toys import TOYS
from shortrun.errors import UserError
from shortrun.evaluation.metrics.toy import divergence_of_densities, toy_divergences, toy_panels
from shortrun.model import ShortRun

GRID = 100  # coarser than the default 200: enough for the checks, a quarter of the work


class _LogDensity(nn.Module):
    """f(x) = log p(x·scale) - f takes model coordinates - so exp f is exactly the toy's density."""

    def __init__(self, toy):
        super().__init__()
        self.toy = toy

    def forward(self, x):
        return self.toy.log_density(x * self.toy.scale).clamp_min(-1e4)


class _Flat(nn.Module):
    def forward(self, x):
        return torch.zeros(len(x))


def _model(net):
    return ShortRun(net, SamplerConfig(), (2,), torch.device("cpu"))


def test_divergence_of_densities():
    g = torch.linspace(-3, 3, 60)
    p = torch.exp(-0.5 * (g[:, None] ** 2 + g[None] ** 2))
    same = divergence_of_densities(p, 5 * p)  # normalised inside: scale does not matter
    assert same["kl"] < 1e-9 and same["tv"] < 1e-6  # float32 input: round-off only
    shifted = divergence_of_densities(p, torch.roll(p, 20, dims=0))
    uniform = divergence_of_densities(p, torch.ones_like(p))
    assert shifted["kl"] > 1.0 and shifted["tv"] > 0.5
    assert uniform["kl"] > 0.5 and 0.3 < uniform["tv"] <= 1.0
    gap = divergence_of_densities(p, torch.where(g[:, None] > 0, p, torch.zeros_like(p)))  # q drops half of p
    assert gap["kl"] > 5 and gap["tv"] == pytest.approx(0.5, abs=0.02)  # finite although q = 0 there
    with pytest.raises(ValueError):
        divergence_of_densities(p, -p)


@pytest.mark.parametrize("name", ["8gaussians", "rings"])
def test_exact_samples_and_exact_model_score_near_zero(name):
    toy = TOYS[name]
    samples = toy.sample(20000, torch.Generator().manual_seed(3))
    good = toy_divergences(_model(_LogDensity(toy)), name, samples, grid_size=GRID)
    assert good["kl_p_ptheta"] < 1e-6 and good["tv_p_ptheta"] < 1e-4
    assert good["kl_p_q"] < 0.1 and good["tv_p_q"] < 0.15
    assert good["kl_p_q"] == pytest.approx(good["kl_p_q_floor"], abs=0.02)  # a perfect sampler scores the floor

    wrong = toy_divergences(_model(_Flat()), name, samples + 0.4 * toy.scale, grid_size=GRID)
    assert wrong["kl_p_q"] > 2.0 and wrong["tv_p_q"] > 0.5  # shifted samples
    assert wrong["kl_p_ptheta"] > 0.5 and wrong["tv_p_ptheta"] > 0.5  # flat exp f on a concentrated toy
    spread = toy_divergences(_model(_Flat()), name, (2 * torch.rand(20000, 2) - 1) * toy.scale, grid_size=GRID)
    assert spread["kl_p_q"] > 0.5 and spread["tv_p_q"] > 0.4


def test_panels_written(tmp_path):
    toy = TOYS["moons"]
    samples = toy.sample(3000, torch.Generator().manual_seed(0))
    out = toy_panels(tmp_path / "sub" / "toy.png", _model(_LogDensity(toy)), "moons", samples, grid_size=GRID)
    data = (tmp_path / "sub" / "toy.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert {"kl_p_q", "tv_p_q", "kl_p_ptheta", "tv_p_ptheta"} <= set(out)


def test_bad_input():
    with pytest.raises(UserError, match="unknown toy"):
        toy_divergences(_model(_Flat()), "spiral", torch.zeros(10, 2))
    with pytest.raises(UserError, match=r"\[N, 2\]"):
        toy_divergences(_model(_Flat()), "moons", torch.zeros(10, 3))
