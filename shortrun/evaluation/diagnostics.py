"""Diagnostics the authors used (and their companion "anatomy of MCMC learning" work):

- the energy difference f(x_obs) − f(x_neg) and the gradient magnitude ‖∇f‖ along the chain,
  over training (from metrics.jsonl);
- long-run chains: the same chains continued to K' ≫ K steps, shown beside the short-run
  samples. The learned model is the K-step sampler, not p_θ: running longer typically drifts
  away from the data (oversaturated or collapsed images), which is what non-convergence means.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..model import ShortRun
from ..plotting import pyplot, save_figure
from ..tasks import synthesize
from ..training.metrics_log import read_metrics
from .figures import image_table


def training_curves(metrics_path: str | Path, out: str | Path) -> Path | None:
    """Four panels over iterations: energy difference, ‖∇f‖ along the chain, f on data and samples, lr."""
    plt = pyplot()

    rows = [r for r in read_metrics(metrics_path) if "event" not in r]
    if not rows:
        return None
    it = np.array([r["iter"] for r in rows])
    col = lambda k: np.array([_number(r.get(k)) for r in rows], dtype=float)
    fig, ax = plt.subplots(2, 2, figsize=(10, 6), dpi=100)
    ax[0, 0].plot(it, col("energy_diff"), lw=0.8)
    ax[0, 0].axhline(0, color="k", lw=0.5)
    ax[0, 0].set_title("energy difference f(x_obs) − f(x_neg)")
    ax[0, 1].plot(it, col("grad_norm"), lw=0.8, color="C1")
    ax[0, 1].set_title("gradient magnitude ‖∇ₓf‖ along the chain (mean)")
    ax[1, 0].plot(it, col("f_data"), lw=0.8, label="f(x_obs)")
    ax[1, 0].plot(it, col("f_sample"), lw=0.8, label="f(x_neg)")
    ax[1, 0].legend()
    ax[1, 0].set_title("negative energy of data and samples")
    ax[1, 1].plot(it, col("lr"), lw=0.8, color="C2", label="learning rate")
    ax[1, 1].set_yscale("log")
    ax[1, 1].set_title("learning rate")
    for events in [r for r in read_metrics(metrics_path) if r.get("event") == "rollback"]:
        for a in ax.flat:
            a.axvline(events["iter"], color="r", lw=0.8, ls="--")
    for a in ax.flat:
        a.set_xlabel("iteration")
        a.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, out)
    return Path(out)


def _number(value) -> float:
    """A logged value as a float; NaN (a gap in the curve) for a missing or damaged one."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else np.nan


def long_run(model: ShortRun, n: int = 8, steps=None, seed: int = 0) -> tuple[list[int], torch.Tensor]:
    """Chains from z ~ p_0 continued far past K; returns the recorded step counts and the states
    [n, len(steps), *shape] (model space). The state at k = K is exactly the short-run sample of
    the same seed: the learned sampler."""
    K = model.sampler.n_steps
    steps = sorted(set(steps or [0, K, 2 * K, 5 * K, 10 * K, 25 * K]))
    return steps, synthesize(model, n, seed=seed, record=steps)


def long_run_figure(model: ShortRun, to_data, out: str | Path, n: int = 8, seed: int = 0) -> Path:
    steps, states = long_run(model, n=n, seed=seed)
    table = to_data(states.flatten(0, 1)).unflatten(0, states.shape[:2])
    K = model.sampler.n_steps
    labels = [f"k={k}" + (" (K)" if k == K else "") for k in steps]
    return image_table(out, [("the same chains run past K: short-run (k = K) vs long-run", table)], labels,
                       title=f"Langevin chains from noise; the learned sampler stops at K = {K}")
