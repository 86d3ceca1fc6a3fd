"""Every registered network: the shape contract f: [B, *shape] -> [B], gradients, and one chain."""
import pytest
import torch

from shortrun.config import ModelConfig, SamplerConfig
from shortrun.energy import NETWORKS, build_energy
from shortrun.model import ShortRun

SHAPES = {"convnet": (3, 16, 16), "digits": (1, 8, 8), "mlp": (2,), "moments": (1, 8, 8)}


def test_every_network_has_a_test_shape():
    assert set(NETWORKS) == set(SHAPES)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_network_maps_a_batch_to_one_value_each(name):
    torch.manual_seed(0)
    shape = SHAPES[name]
    net = build_energy(ModelConfig(name=name, n_f=4), shape)
    x = torch.rand(5, *shape) * 2 - 1
    f = net(x)
    assert f.shape == (5,) and f.dtype == torch.float32
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(net(x).sum(), x)
    assert grad.shape == x.shape and torch.isfinite(grad).all()
    assert any(p.requires_grad for p in net.parameters())
    model = ShortRun(net, SamplerConfig(n_steps=3), shape, torch.device("cpu"))
    with model.frozen():
        out = model.chain(model.init(5, torch.Generator().manual_seed(1)), generator=torch.Generator().manual_seed(2))
    assert out.shape == x.shape and torch.isfinite(out).all()
