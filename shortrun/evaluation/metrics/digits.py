"""A small CNN classifier of the 8×8 digits, trained once on the training split and cached.

Inception features mean little at 8×8, so digits samples are judged in this network's
penultimate features: a Fréchet distance to real held-out digits (lower is better), the
classifier's confidence on each sample, and the entropy of the predicted label histogram
(ln 10 ≈ 2.303 when all ten classes are equally present).
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from ...data import digits_split
from ...data.download import cache_dir
from .frechet import frechet_between

VERSION = 1


class DigitsClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, 32, 3, 1, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU())
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(64 * 16, 128), nn.ReLU())
        self.head = nn.Linear(128, 10)

    def features(self, x):
        return self.fc(self.conv(x))

    def forward(self, x):
        return self.head(self.features(x))


def _to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 [N, C, H, W] at any size -> float [N, 1, 8, 8] in [-1, 1]."""
    x = images.float().div(127.5).sub(1)
    if x.shape[1] != 1:
        x = x.mean(1, keepdim=True)
    if x.shape[-1] != 8:
        x = F.interpolate(x, size=(8, 8), mode="bilinear", antialias=True, align_corners=False)
    return x


def train_classifier(seed: int = 0, epochs: int = 40) -> DigitsClassifier:
    x, y, _, _ = digits_split()
    torch.manual_seed(seed)
    net = DigitsClassifier()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(seed)
    xin = _to_input(x)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=g).split(64):
            # small shifts and noise make the features robust to sampler artefacts
            xb = xin[idx] + 0.1 * torch.randn(xin[idx].shape, generator=g)
            loss = F.cross_entropy(net(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


def load_classifier() -> DigitsClassifier:
    """The cached classifier, trained (a few seconds) on first use."""
    path = cache_dir() / f"digits_classifier_v{VERSION}.safetensors"
    net = DigitsClassifier()
    try:
        net.load_state_dict(load_file(path))
        return net.eval()
    except Exception:  # missing or damaged cache: train again
        net = train_classifier()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        save_file(net.state_dict(), tmp)
        os.replace(tmp, path)
        return net


@torch.no_grad()
def _predict(net: DigitsClassifier, images: torch.Tensor):
    x = _to_input(images)
    feats = torch.cat([net.features(b) for b in x.split(512)])
    probs = net.head(feats).softmax(1)
    return feats.numpy(), probs


def digits_scores(images: torch.Tensor, net: DigitsClassifier | None = None) -> dict:
    """Scores uint8 images against the held-out real digits."""
    net = net or load_classifier()
    _, _, x_test, _ = digits_split()
    feats, probs = _predict(net, images)
    real_feats, _ = _predict(net, x_test)
    hist = torch.bincount(probs.argmax(1), minlength=10).double()
    p = hist / hist.sum()
    label_entropy = float(-(p[p > 0] * p[p > 0].log()).sum())
    return {
        "digits_fd": frechet_between(feats, real_feats),
        "digits_confidence": float(probs.max(1).values.mean()),
        "digits_label_entropy": label_entropy,
        "digits_classes_present": int((hist > 0).sum()),
        "n": int(len(images)),
    }


def digits_scale(n: int, seed: int = 0, net: DigitsClassifier | None = None) -> dict:
    """What gives digits_fd its scale: real training digits (the floor a perfect sampler would
    reach with n samples) and uniform noise (the ceiling), scored as samples are."""
    net = net or load_classifier()
    x_train = digits_split()[0]
    g = torch.Generator().manual_seed(seed)
    real = x_train[torch.randperm(len(x_train), generator=g)[:n]]
    noise = torch.randint(0, 256, (n, *x_train.shape[1:]), generator=g, dtype=torch.uint8)
    return {"digits_fd_real_train": digits_scores(real, net)["digits_fd"],
            "digits_fd_noise": digits_scores(noise, net)["digits_fd"]}
