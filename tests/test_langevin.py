"""The sampler's update against the plain loop, and its limit on an analytic Gaussian."""
import pytest
import torch

from shortrun import langevin
from shortrun.sampler import initial

from authors_loop import authors_chain, authors_net


def _plain_chain(f, z, noise, a, b):
    """The authors' loop written out: x += a * f'(x) + b * u_k."""
    x = z.clone().requires_grad_(True)
    for k in range(len(noise)):
        g = torch.autograd.grad(f(x).sum(), [x])[0]
        x.data += a * g + b * noise[k]
    return x.detach()


def test_matches_plain_update_float64():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, 1, 1), torch.nn.LeakyReLU(0.2),
                              torch.nn.Conv2d(8, 1, 8, 1, 0)).double()
    f = lambda x: net(x).flatten()
    z = initial((5, 3, 8, 8), dtype=torch.float64)
    u = torch.randn(7, 5, 3, 8, 8, dtype=torch.float64)
    ours = langevin(f, z, n_steps=7, step_size=0.7, noise_std=0.05, noise=u)
    assert torch.allclose(ours, _plain_chain(f, z, u, 0.7, 0.05), atol=1e-9, rtol=0)


def test_matches_the_authors_loop_float64():
    torch.set_default_dtype(torch.float64)
    try:
        torch.manual_seed(3)
        f = authors_net(channels=3, n_f=4)
        n, K, s = 4, 6, 0.01
        torch.manual_seed(11)
        theirs = authors_chain(f, n, K, s)
        torch.manual_seed(11)  # replay the same draws: z first, then one N(0, I) per step
        z = torch.empty(n, 3, 32, 32).uniform_(-1, 1)
        u = torch.stack([torch.randn(n, 3, 32, 32) for _ in range(K)])
        ours = langevin(f, z, n_steps=K, step_size=1.0, noise_std=s, noise=u)
    finally:
        torch.set_default_dtype(torch.float32)
    assert ours.dtype == torch.float64
    assert (ours - theirs).abs().max().item() < 1e-9


def test_gaussian_limit():
    # f(x) = -|x - mu|^2 / (2 s^2): exact Langevin (a = dt/2, b = sqrt(dt)) converges to N(mu, s^2)
    mu, s, dt = 0.5, 0.7, 0.02
    f = lambda x: -((x - mu) ** 2).sum(1) / (2 * s * s)
    g = torch.Generator().manual_seed(0)
    x = langevin(f, initial((10000, 2), generator=g), n_steps=600, step_size=dt / 2, noise_std=dt ** 0.5,
                 generator=g)
    assert abs(x.mean().item() - mu) < 0.03
    # the Euler discretisation inflates the variance by 1 / (1 - dt / (4 s^2)) ~ 1 %
    assert abs(x.var().item() - s * s) < 0.03


def test_noise_shape_checked_and_generator_reproducible():
    f = lambda x: -(x ** 2).sum(1)
    z = torch.zeros(3, 2)
    with pytest.raises(ValueError):
        langevin(f, z, n_steps=2, step_size=0.1, noise_std=0.1, noise=torch.zeros(3, 3, 2))
    a = langevin(f, z, n_steps=4, step_size=0.1, noise_std=0.1, generator=torch.Generator().manual_seed(5))
    b = langevin(f, z, n_steps=4, step_size=0.1, noise_std=0.1, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_create_graph_reaches_z_and_trajectory():
    w = torch.tensor([1.5, -0.5], dtype=torch.float64)
    f = lambda x: -((x - w) ** 2).sum(1)
    z = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    u = torch.randn(5, 3, 2, dtype=torch.float64)
    x, traj = langevin(f, z, n_steps=5, step_size=0.1, noise_std=0.1, noise=u, create_graph=True,
                       return_trajectory=True)
    assert len(traj) == 6 and torch.equal(traj[0], z.detach())
    # each step is x <- x + 0.1 * (-2)(x - w) + ...: linear with factor 0.8, so dx_K/dz = 0.8^5
    (grad,) = torch.autograd.grad(x.sum(), z)
    assert torch.allclose(grad, torch.full_like(grad, 0.8 ** 5))
    assert torch.autograd.gradcheck(lambda z_: langevin(f, z_, n_steps=3, step_size=0.1, noise_std=0.1,
                                                        noise=u[:3], create_graph=True), (z,))


def test_uniform_and_gaussian_init():
    g = torch.Generator().manual_seed(0)
    u = initial((10000,), generator=g)
    assert u.min() >= -1 and u.max() <= 1 and abs(u.mean()) < 0.03
    n = initial((10000,), kind="gaussian", std=2.0, generator=g)
    assert abs(n.std() - 2.0) < 0.1
    # a scale on the uniform draw (tighter starts at sampling time): the same draw, shrunk
    wide = initial((1000,), generator=torch.Generator().manual_seed(3))
    tight = initial((1000,), std=0.6, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(tight, 0.6 * wide) and tight.abs().max() <= 0.6 < wide.abs().max()


def test_graphed_chain_body_equals_plain_sampler():
    """The body captured as a CUDA graph on GPUs, run eagerly here, against the plain sampler."""
    from shortrun.config import SamplerConfig
    from shortrun.sampler.cuda_graph import GraphedChain
    from shortrun.model import ShortRun

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, 1, 1), torch.nn.LeakyReLU(0.2), torch.nn.Conv2d(4, 1, 8),
                              torch.nn.Flatten(0))
    model = ShortRun(net, SamplerConfig(n_steps=6, step_size=0.5, noise_std=0.02), (1, 8, 8), torch.device("cpu"))
    z = torch.rand(5, 1, 8, 8) * 2 - 1
    u = torch.randn(6, 5, 1, 8, 8)
    fast = GraphedChain(model, 5)(z, u)
    with model.frozen():
        plain = model.chain(z, noise=u)
    assert torch.allclose(fast, plain, atol=1e-6)
