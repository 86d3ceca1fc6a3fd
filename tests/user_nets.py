"""Networks of one's own, as a user would write them, for tests/test_user_networks.py."""
import torch
from torch import nn


class TinyEnergy(nn.Module):
    """f(x) = -‖conv(x)‖²/2 + a linear read-out: any [B, *shape] -> [B] net will do."""

    def __init__(self, shape):
        super().__init__()
        c = shape[0]
        self.conv = nn.Conv2d(c, 4, 3, padding=1)
        self.out = nn.Linear(4, 1)

    def forward(self, x):
        h = torch.tanh(self.conv(x)).mean((2, 3))
        return self.out(h).flatten() - 0.5 * x.flatten(1).pow(2).mean(1)


class WrongOutput(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.lin = nn.Linear(1, 1)

    def forward(self, x):
        return x  # not one value per example


NOT_A_CLASS = 42
