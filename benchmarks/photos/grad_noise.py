"""How noisy is a trained run's learning gradient? Per-example ∇_θ f for observed examples (with the
run's data noise σ) and for negatives (K-step chains from p₀), in float32, and:
  * the trace of their covariance, per example and for a batch mean of --batch;
  * the squared signal ‖E ∇_θ f(x_obs) − E ∇_θ f(x_neg)‖²;
  * the share of the observed examples' variance left within k-means strata of them (what stratified
    batches would keep), on the images as they are and shrunk to 8×8.

  python benchmarks/photos/grad_noise.py RUN [--checkpoint latest|ITER] [--n-obs 2048] [--n-neg 512]

Memory: (n_obs + n_neg) × the parameter count floats (2,560 × 0.7 M ≈ 7 GB at the benchmark's net).
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from shortrun.data import load_dataset
from shortrun.run import open_run
from shortrun.sampler.kmeans import kmeans

CHUNK = 64


def per_example_grads(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    params = {k: v.detach() for k, v in net.named_parameters()}
    one = lambda p, xi: functional_call(net, p, (xi[None],))[0]
    each = vmap(grad(one), in_dims=(None, 0))
    out = torch.empty(len(x), sum(p.numel() for p in params.values()))
    for i in range(0, len(x), CHUNK):
        out[i:i + CHUNK] = torch.cat([g.flatten(1) for g in each(params, x[i:i + CHUNK]).values()], 1)
    return out


def variance(g: torch.Tensor) -> float:
    """Trace of the covariance of the rows of g, without centring a copy of g."""
    return (g.square().sum(1).mean() - g.mean(0).square().sum()).item()


def within_strata(g: torch.Tensor, features: torch.Tensor, k: int) -> float:
    labels, counts = kmeans(lambda i: features[i:i + 1024], len(features), k, torch.Generator().manual_seed(0))
    within = sum((g[labels == c].square().sum() - counts[c] * g[labels == c].mean(0).square().sum()).item()
                 for c in range(k) if counts[c] > 0)
    return within / len(g)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("--checkpoint", default="latest")
    p.add_argument("--n-obs", type=int, default=2048)
    p.add_argument("--n-neg", type=int, default=512)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    run = open_run(a.run, weights="raw", checkpoint=a.checkpoint)
    model, t = run.model, run.cfg.train
    model.dtype = torch.float32  # the measurement in float32 whatever the run trained in
    net = model.net.float()
    data = load_dataset(run.cfg.data)
    g = torch.Generator().manual_seed(a.seed)
    pick = torch.randperm(len(data.train), generator=g)[:a.n_obs]
    x_obs = data.to_model(data.train[pick]).float()
    x_obs = x_obs + t.data_noise * torch.randn(x_obs.shape, generator=g)
    with model.frozen():
        z = model.init(a.n_neg, g)
        x_neg = model.chain(z, noise=lambda k: torch.randn(z.shape, generator=g))
    g_obs, g_neg = per_example_grads(net, x_obs), per_example_grads(net, x_neg.float())
    v_obs, v_neg = variance(g_obs), variance(g_neg)
    signal = (g_obs.mean(0) - g_neg.mean(0)).square().sum().item()
    print(f"{a.run} at iteration {run.iter}: {g_obs.shape[1]} parameters")
    print(f"per-example variance: observed {v_obs:.4g}, negatives {v_neg:.4g}")
    print(f"batch mean of {a.batch}: observed {v_obs / a.batch:.4g}, negatives {v_neg / a.batch:.4g}; "
          f"squared signal {signal:.4g}")
    views = [("as they are", x_obs.flatten(1))]
    if x_obs.dim() == 4:
        views.append(("shrunk to 8x8", F.adaptive_avg_pool2d(x_obs, 8).flatten(1)))
    for name, features in views:
        for k in (16, 64):
            share = within_strata(g_obs, features, k) / v_obs
            print(f"observed variance left within {k} k-means strata ({name}): {share:.2f}")


if __name__ == "__main__":
    main()
