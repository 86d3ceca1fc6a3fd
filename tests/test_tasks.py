"""Interpolation and reconstruction through the sampler (issue: paper's capabilities 2 and 3)."""
import torch

from shortrun.config import SamplerConfig
from shortrun.model import ShortRun
from shortrun.evaluation.diagnostics import long_run
from shortrun.tasks import draw_latents, interpolate, reconstruct, synthesize
from shortrun.tasks.interpolation import mix
from shortrun.tasks.reconstruction import pixel_mse


class Quadratic(torch.nn.Module):
    """f(x) = -|x - w|^2 / 2 per example: an analytic energy with a trainable centre."""

    def __init__(self, shape):
        super().__init__()
        self.w = torch.nn.Parameter(torch.linspace(-0.5, 0.5, int(torch.Size(shape).numel())).view(shape))

    def forward(self, x):
        return -0.5 * ((x - self.w) ** 2).flatten(1).sum(1)


def _conv_model(dtype=torch.float32, n_steps=4):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, 1, 1), torch.nn.SiLU(), torch.nn.Conv2d(4, 1, 4, 1, 0),
                              torch.nn.Flatten(0))
    net = net.to(dtype)
    sampler = SamplerConfig(n_steps=n_steps, step_size=0.1, noise_std=0.05)
    return ShortRun(net, sampler, (1, 4, 4), torch.device("cpu"))


def test_gradients_reach_z_gradcheck_float64():
    model = _conv_model(torch.float64, n_steps=3)
    z = torch.rand(2, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    u = torch.randn(3, 2, 1, 4, 4, dtype=torch.float64)
    with model.frozen():
        assert torch.autograd.gradcheck(lambda z_: model.chain_differentiable(z_, u), (z,))
        assert torch.autograd.gradcheck(lambda z_: model.chain_differentiable(z_, u, segments=2), (z,))


def test_checkpointed_and_plain_backprop_agree():
    model = _conv_model(torch.float64, n_steps=9)
    z = torch.rand(3, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    u = torch.randn(9, 3, 1, 4, 4, dtype=torch.float64)
    target = torch.randn(3, 1, 4, 4, dtype=torch.float64)
    grads = []
    with model.frozen():
        for segments in (0, 3, 4):
            x = model.chain_differentiable(z, u, segments=segments)
            (g,) = torch.autograd.grad(((x - target) ** 2).sum(), z)
            grads.append(g)
    assert torch.allclose(grads[0], grads[1], atol=1e-10) and torch.allclose(grads[0], grads[2], atol=1e-10)


def test_interpolation_endpoints_are_the_chains_of_z1_and_z2():
    model = _conv_model()
    rows = interpolate(model, n_pairs=2, rhos=[1.0, 0.5, 0.0], seed=3)
    assert rows.shape == (2, 3, 1, 4, 4)
    z1, u = draw_latents(model, range(0, 4, 2), 3)
    z2, _ = draw_latents(model, range(1, 4, 2), 3)
    with model.frozen():
        for i in range(2):
            assert torch.allclose(rows[i, 0], model.chain(z1[i:i + 1], noise=u[:, i:i + 1])[0], atol=1e-6)
            assert torch.allclose(rows[i, 2], model.chain(z2[i:i + 1], noise=u[:, i:i + 1])[0], atol=1e-6)
    assert torch.allclose(mix(z1[0], z2[0], [0.6])[0], 0.6 * z1[0] + 0.8 * z2[0])


def test_reconstruction_lowers_the_error():
    shape = (1, 4, 4)
    model = ShortRun(Quadratic(shape), SamplerConfig(n_steps=5, step_size=0.2, noise_std=0.01), shape,
                     torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    # targets the sampler can reach: chains from known codes
    z_true, u = draw_latents(model, range(4), seed=7)
    with model.frozen():
        target = model.chain(torch.rand(4, *shape, generator=g) * 2 - 1, noise=u)
    rec = reconstruct(model, target, steps=60, lr=0.05, seed=1, record=(0, 60))
    assert rec.curve[-1] < 0.1 * rec.curve[0]
    assert set(rec.frames) == {0, 60} and rec.x.shape == target.shape


def test_reconstruction_does_not_start_from_the_samples_of_the_same_seed():
    """Reconstructing synthesize()'s output with the same seed must not start at the answer."""
    model = _conv_model()
    with model.frozen():
        samples = synthesize(model, 3, seed=0)
    rec = reconstruct(model, samples, steps=0, seed=0)
    assert rec.curve[0] > 1e-3
    z_sample, _ = draw_latents(model, range(3), seed=0)
    assert not torch.allclose(rec.z, z_sample)


def test_long_run_keeps_each_recorded_state():
    """The state at k = K is the short-run sample of the same seed, and later states move on
    (the chain updates x in place: each recorded state must be a copy, not x itself)."""
    model = _conv_model(n_steps=4)
    steps, states = long_run(model, n=3, seed=2, steps=[0, 4, 8, 12])
    short = synthesize(model, 3, seed=2)
    z, _ = draw_latents(model, range(3), 2)
    assert steps == [0, 4, 8, 12] and states.shape == (3, 4, 1, 4, 4)
    assert torch.equal(states[:, 0], z) and torch.allclose(states[:, 1], short, atol=1e-6)
    for a, b in zip(steps[1:], steps[2:]):
        assert (states[:, steps.index(b)] - states[:, steps.index(a)]).abs().max() > 1e-3


def test_reconstruction_frames_are_copies_when_the_chain_is_empty():
    """With K = 0 the chain returns the code z itself; each recorded frame must still be the
    code at its own step t, not the final one."""
    model = _conv_model(n_steps=0)
    target = torch.rand(2, 1, 4, 4) * 2 - 1
    rec = reconstruct(model, target, steps=10, lr=0.1, seed=0, record=(0, 10))
    first, last = (pixel_mse(rec.frames[t], target).mean().item() for t in (0, 10))
    assert abs(first - rec.curve[0]) < 1e-6 and abs(last - rec.curve[-1]) < 1e-6
    assert rec.curve[-1] < rec.curve[0] - 1e-3
