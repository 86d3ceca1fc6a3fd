"""The authors' short-run sampler as their minimal CIFAR-10 script writes it, kept inside the
tests as the correctness reference for our chain (benchmarks time against ../shared/bench/).

Their f: conv3×3 → three stride-2 conv4×4 stages doubling the width → conv4×4 to one value,
LeakyReLU between. Their chain: x from U(-1, 1), then K times x.data += ∇f(x) + s·N(0, I), the
noise drawn from torch's global generator right after x. Written here independently, in the
same order of random draws, so a test can replay the draws and compare.
"""
import torch
from torch import nn


def authors_net(channels: int = 3, n_f: int = 64, leak: float = 0.2) -> nn.Module:
    widths = [n_f, 2 * n_f, 4 * n_f, 8 * n_f]
    layers = [nn.Conv2d(channels, widths[0], 3, 1, 1), nn.LeakyReLU(leak)]
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Conv2d(a, b, 4, 2, 1), nn.LeakyReLU(leak)]
    layers.append(nn.Conv2d(widths[-1], 1, 4, 1, 0))
    return nn.Sequential(*layers, nn.Flatten(0))


def authors_chain(f: nn.Module, n: int, K: int, s: float, size: int = 32, channels: int = 3) -> torch.Tensor:
    x = torch.empty(n, channels, size, size).uniform_(-1, 1).requires_grad_(True)
    for _ in range(K):
        grad = torch.autograd.grad(f(x).sum(), [x], retain_graph=True)[0]
        x.data += grad + s * torch.randn_like(x)
    return x.detach()
