"""The hand-written ∇ₓ f (inputgrad.py) against autograd, on fresh random nets and inputs."""
import pytest
import torch
from torch import nn

from shortrun.config import ModelConfig, SamplerConfig
from shortrun.energy import build_energy
from shortrun.sampler.inputgrad import InputGrad
from shortrun.model import ShortRun

CPU = torch.device("cpu")
NETS = [("convnet", (3, 32, 32)), ("convnet", (1, 16, 16)), ("convnet", (3, 64, 64)), ("digits", (1, 8, 8))]


def _net(name, shape, seed, **kw):
    torch.manual_seed(seed)
    net = build_energy(ModelConfig(name=name, n_f=8, **kw), shape)
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def _autograd(net, x, dtype):
    x = x.detach().requires_grad_(True)
    with torch.enable_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16,
                                             cache_enabled=False):
        return torch.autograd.grad(net(x).float().sum(), x)[0]


def _rel(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize("name,shape", NETS)
def test_float32_matches_autograd(name, shape):
    for seed in range(3):
        net = _net(name, shape, seed)
        x = torch.rand(5, *shape, generator=torch.Generator().manual_seed(100 + seed)) * 2 - 1
        fast = InputGrad.build(net, x.shape, torch.float32, CPU)
        assert fast is not None
        g = fast(x)
        assert g.dtype == x.dtype and g.shape == x.shape and g.is_contiguous()
        assert _rel(g, _autograd(net, x, torch.float32)) < 1e-5


@pytest.mark.parametrize("name,shape", NETS)
def test_bfloat16_as_close_as_autocast(name, shape):
    """In bf16 both paths round; the fast one must be no further from the float32 gradient."""
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        pytest.skip("no bf16 oneDNN kernels on this CPU")
    net = _net(name, shape, 7)
    x = torch.rand(6, *shape, generator=torch.Generator().manual_seed(3)) * 2 - 1
    exact = _autograd(net, x, torch.float32)
    g = InputGrad.build(net, x.shape, torch.bfloat16, CPU)(x)
    err_fast, err_autocast = _rel(g, exact), _rel(_autograd(net, x, torch.bfloat16), exact)
    assert err_fast < 1.5 * err_autocast + 1e-2, (err_fast, err_autocast)


def test_leak_and_bias_are_used():
    net = _net("convnet", (3, 16, 16), 1, leak=0.05)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                m.bias.uniform_(-0.5, 0.5)
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    g = InputGrad.build(net, x.shape, torch.float32, CPU)(x)
    assert _rel(g, _autograd(net, x, torch.float32)) < 1e-5


def test_unsupported_nets_fall_back():
    silu = _net("convnet", (3, 16, 16), 0, activation="silu")
    assert InputGrad.build(silu, (2, 3, 16, 16), torch.float32, CPU) is None
    mlp = _net("mlp", (2,), 0)
    assert InputGrad.build(mlp, (2, 2), torch.float32, CPU) is None
    conv = _net("convnet", (3, 16, 16), 0)
    assert InputGrad.build(conv, (2, 3, 16, 16), torch.float32, torch.device("meta")) is None
    assert InputGrad.build(conv, (2, 3, 16, 16), torch.float16, CPU) is None
    # a last conv that does not reduce the map to one value: its gradient is no longer w_L
    assert InputGrad.build(conv, (2, 3, 32, 32), torch.float32, CPU) is None

    class Scaled(type(conv)):  # a changed forward: the hand-written gradient would be wrong
        def forward(self, x):
            return 2 * self.f(x).flatten()
    scaled = Scaled(ModelConfig(n_f=8), 3, 16)
    assert InputGrad.build(scaled, (2, 3, 16, 16), torch.float32, CPU) is None


def test_wrong_shape_is_refused():
    net = _net("convnet", (3, 16, 16), 0)
    fast = InputGrad.build(net, (2, 3, 16, 16), torch.float32, CPU)
    with pytest.raises(ValueError, match="packed for"):
        fast(torch.zeros(3, 3, 16, 16))


def test_chain_equals_autograd_chain_and_follows_weight_updates():
    """ShortRun.run takes the fast path by default; it must track the weights after each update."""
    shape = (3, 16, 16)
    net = _net("convnet", shape, 2)
    sampler = SamplerConfig(n_steps=4, step_size=1.0, noise_std=0.01)
    fast = ShortRun(net, sampler, shape, CPU, fused_grad=True)
    plain = ShortRun(net, sampler, shape, CPU, fused_grad=False)
    assert fast.input_grad((4, *shape)) is not None and plain.input_grad((4, *shape)) is None
    for _ in range(2):
        z = torch.rand(4, *shape) * 2 - 1
        u = torch.randn(4, 4, *shape)
        with fast.frozen():
            a, b = fast.chain(z, noise=u), plain.chain(z, noise=u)
        assert _rel(a, b) < 1e-4
        with torch.no_grad():  # a learning step changes θ; the next chain must see it
            for p in net.parameters():
                p.add_(0.05 * torch.randn_like(p))
