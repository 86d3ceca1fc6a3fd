"""Algorithm 1's iteration t, on its own: no run directory, no logging, no checkpoints.

Each iteration draws m observed examples and adds N(0, σ²) noise, draws m fresh z ~ p_0
(never persistent chains), runs the K-step sampler with the weights frozen, and ascends
mean f(x_obs) − mean f(x_neg) with Adam. The negatives are detached: no gradient flows
through the chain while learning.

    step = LearningStep(model, optimizer, dataset, cfg.train)
    row = step(t)          # {"loss", "f_data", "f_sample", "energy_diff", "lr", "data_noise", ...}

All randomness of iteration t comes from one generator seeded by (seed, t), so a resumed or
rolled-back run replays it exactly, and N processes see exactly the numbers one would.
"""
from __future__ import annotations

import torch
from torch import nn

from ..config import TrainConfig
from ..data import Dataset
from ..distributed import World
from ..model import ShortRun
from ..seeding import ITERATION, derive_seed
from .schedule import batch_indices, lr_at, sigma_at

SATURATED = 1.5  # |x| beyond this in model space counts as a saturated (run-away) chain value


def short_run_loss(f_obs: torch.Tensor, f_neg: torch.Tensor, energy_l2: float = 0.0) -> torch.Tensor:
    """mean f(x_neg) − mean f(x_obs) (minimising it ascends the paper's objective), plus the
    optional penalty energy_l2 · mean f² over both (not in the paper: it stops f drifting to huge
    magnitudes, where ∇f grows until the chain overshoots and learning diverges; Du & Mordatch 2019)."""
    loss = f_neg.mean() - f_obs.mean()
    if energy_l2 > 0:
        loss = loss + energy_l2 * torch.cat([f_obs, f_neg]).square().mean()
    return loss


def mirror(x: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
    """x [B, C, H, W] with the examples where `which` [B] is true mirrored left-right: an
    augmentation for photographs, whose statistics do not change under a horizontal flip."""
    return torch.where(which.view(-1, *([1] * (x.dim() - 1))), x.flip(-1), x)


class LearningStep:
    """One learning iteration of `model` with `optimizer` on `data` (settings from cfg.train).

    world: this process's place among N (each rank takes its slice of the global batch);
    loss_net: the network the loss's forward runs through (a DDP wrapper averages gradients);
    graphed: a GraphedChain that replaces the eager chain when given (GPU)."""

    def __init__(self, model: ShortRun, optimizer: torch.optim.Optimizer, data: Dataset, cfg: TrainConfig,
                 world: World | None = None, loss_net: nn.Module | None = None, graphed=None):
        self.model, self.opt, self.data, self.cfg = model, optimizer, data, cfg
        self.world = world or World()
        self.loss_net, self.graphed = loss_net, graphed

    def __call__(self, it: int, lr_scale: float = 1.0, diagnostics: bool = False, horizon: int | None = None) -> dict:
        """Runs iteration `it` (0-based) and returns its statistics, averaged over ranks.
        `diagnostics` also records the mean ‖∇f‖ along the chain (row["grad_norm"]); `horizon` is
        the iteration count the schedules are laid out over (train.iters when None)."""
        t, world, model = self.cfg, self.world, self.model
        B = t.batch_size
        m = B // world.size
        mine = slice(world.rank * m, (world.rank + 1) * m)
        for group in self.opt.param_groups:
            group["lr"] = lr_at(t, it, horizon) * lr_scale
        g = torch.Generator(model.device).manual_seed(derive_seed(t.seed, it, ITERATION))
        shape, device = self.data.shape, model.device
        # every rank draws the global batch's noise and keeps its slice: N processes then see exactly
        # the numbers one process would (cheap next to the K network passes)
        draw = lambda: torch.randn((B, *shape), generator=g, device=device)[mine]
        idx = batch_indices(len(self.data.train), B, it, t.seed, world.rank, world.size)
        sigma = sigma_at(t, it, horizon)
        x_obs = self.data.to_model(self.data.train[idx]).to(device) + sigma * draw()

        grad_norms = []
        on_step = (lambda k, x, grad: grad_norms.append(grad.flatten(1).norm(dim=1).mean())) if diagnostics else None
        with model.frozen():
            z = model.init(B, g)[mine]
            if self.graphed is not None and not diagnostics:
                # the same u as the eager chain below, drawn up front for the graph's static buffer
                noise = torch.stack([draw() for _ in range(model.sampler.n_steps)])
                x_neg = self.graphed(z, noise)
            else:
                x_neg = model.chain(z, noise=lambda k: draw(), on_step=on_step)
        if t.flip:  # drawn after the chain's numbers, so that flip=false replays the runs made before it
            x_obs = mirror(x_obs, torch.rand(B, generator=g, device=device)[mine] < 0.5)

        f = model.energy(torch.cat([x_obs, x_neg]), net=self.loss_net)
        f_obs, f_neg = f[:m], f[m:]
        loss = short_run_loss(f_obs, f_neg, t.energy_l2)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        zero = torch.zeros((), device=device)
        stats = torch.stack([loss.detach(), f_obs.detach().mean(), f_neg.detach().mean(),
                             (~torch.isfinite(x_neg).all()).float(),
                             torch.stack(grad_norms).mean() if grad_norms else zero,
                             # the data lie within ±1 in model space: chains far outside have run away
                             (x_neg.detach().abs() > SATURATED).float().mean()])
        if world.size > 1:
            torch.distributed.all_reduce(stats)
            stats /= world.size  # means over ranks (the flag becomes > 0 if any rank saw non-finite samples)
        loss_v, f_obs_v, f_neg_v, bad, gn, sat = stats.tolist()
        row = {"loss": loss_v, "f_data": f_obs_v, "f_sample": f_neg_v, "energy_diff": f_obs_v - f_neg_v,
               "samples_finite": bad == 0, "saturation": sat}
        if grad_norms:
            row["grad_norm"] = gn
        row["lr"], row["data_noise"] = self.opt.param_groups[0]["lr"], sigma
        return row
