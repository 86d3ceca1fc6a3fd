"""Algorithm 1: learning the short-run MCMC.

Each iteration draws m observed examples and adds N(0, σ²) noise, draws m fresh z ~ p_0
(never persistent chains), runs the K-step sampler with the weights frozen, and ascends
mean f(x_obs) − mean f(x_neg) with Adam. The negatives are detached: no gradient flows
through the chain while learning. `Trainer` only wires the parts together; state that
must survive a restart (weights, Adam, iteration, RNG, lr scale) lives in `checkpoint`.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import random
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch
from .progress import bar as progress_bar

from . import checkpoint, distributed
from .config import Config
from .data import Dataset, load_dataset
from .energy import count_parameters
from .errors import UserError
from .images import save_examples
from .model import ShortRun
from .runlog import RunLog, repair_metrics
from .distributed import World
from .schedule import batch_indices, lr_at, sigma_at


class Trainer:
    def __init__(self, cfg: Config, run: str | Path, data: Dataset | None = None, world: World | None = None):
        self.cfg, self.run = cfg, Path(run)
        t = cfg.train
        self.world = world or distributed.setup(t.device)
        if t.batch_size % self.world.size:
            raise UserError(f"train.batch_size ({t.batch_size}) must be divisible by the number of "
                            f"processes ({self.world.size}): it is the global batch")
        if t.threads:
            torch.set_num_threads(t.threads)
        self.data = data if data is not None else load_dataset(cfg.data)
        torch.manual_seed(t.seed)  # weight initialisation: the same on every rank
        device_cfg = dataclasses.replace(cfg, train=dataclasses.replace(
            t, device=distributed.device_for(self.world, t.device)))
        self.model = ShortRun.from_config(device_cfg, self.data.shape)
        self.opt = torch.optim.Adam(self.model.net.parameters(), lr=t.lr, betas=(t.beta1, t.beta2))
        # DDP cannot differentiate through its forward with autograd.grad, so the chain runs on the
        # plain module and only the loss's forward goes through DDP, which averages the gradients
        self.loss_net = None
        if self.world.size > 1:
            from torch.nn.parallel import DistributedDataParallel
            ids = [self.model.device.index] if self.model.device.type == "cuda" else None
            self.loss_net = DistributedDataParallel(self.model.net, device_ids=ids)
        self.graphed = None
        if t.cuda_graph and self.model.device.type == "cuda":
            from .graphed import GraphedChain
            self.graphed = GraphedChain(self.model, t.batch_size // self.world.size)
        self.iter = 0
        self.lr_scale = 1.0  # lowered after each divergence rollback
        self.rollbacks = 0
        self.snapshot = None  # in memory, so a rollback loses at most train.snapshot_every iterations
        self.diverged_at = -1  # iteration of the last divergence

    # ----- one iteration -------------------------------------------------------------
    def _generator(self) -> torch.Generator:
        """All randomness of iteration t comes from a generator seeded by (seed, t): a resumed or
        rolled-back run replays it exactly, and no generator state needs saving."""
        return torch.Generator(self.model.device).manual_seed(self._seed())

    def _seed(self) -> int:
        return (self.cfg.train.seed * 2654435761 + self.iter + 0x5BD1E995) % 2**32

    def step(self) -> dict:
        t, world = self.cfg.train, self.world
        B = t.batch_size
        m = B // world.size
        mine = slice(world.rank * m, (world.rank + 1) * m)
        for group in self.opt.param_groups:
            group["lr"] = lr_at(t, self.iter) * self.lr_scale
        g, device, shape = self._generator(), self.model.device, self.data.shape
        # every rank draws the global batch's noise and keeps its slice: N processes then see exactly
        # the numbers one process would (cheap next to the K network passes)
        draw = lambda: torch.randn((B, *shape), generator=g, device=device)[mine]
        idx = batch_indices(len(self.data.train), B, self.iter, t.seed, world.rank, world.size)
        x_obs = self.data.to_model(self.data.train[idx]).to(device)
        sigma = sigma_at(t, self.iter)
        x_obs = x_obs + sigma * draw()

        grad_norms = []
        log_now = (self.iter + 1) % t.log_every == 0
        on_step = (lambda k, x, grad: grad_norms.append(grad.flatten(1).norm(dim=1).mean())) if log_now else None
        with self.model.frozen():
            z = self.model.init(B, g)[mine]
            if self.graphed is not None and not log_now:
                # one replay of the captured chain; its noise is seeded per (iteration, rank)
                x_neg = self.graphed(z, seed=self._seed() * 64 + world.rank)
            else:
                x_neg = self.model.run(z, noise=lambda k: draw(), on_step=on_step)

        f = self.model.energy(torch.cat([x_obs, x_neg]), net=self.loss_net)
        f_obs, f_neg = f[:m].mean(), f[m:].mean()
        loss = f_neg - f_obs  # minimising it ascends mean f(x_obs) − mean f(x_neg)
        if t.energy_l2 > 0:
            # not in the paper: a penalty on f² (Du & Mordatch, 2019) that stops f drifting to huge
            # magnitudes, where ∇f grows until the chain overshoots and learning diverges
            loss = loss + t.energy_l2 * f.square().mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.iter += 1
        stats = torch.stack([loss.detach(), f_obs.detach(), f_neg.detach(),
                             (~torch.isfinite(x_neg).all()).float(),
                             torch.stack(grad_norms).mean() if grad_norms else torch.zeros((), device=device)])
        if world.size > 1:
            torch.distributed.all_reduce(stats)
            stats /= world.size  # means over ranks (the flag becomes > 0 if any rank saw non-finite samples)
        loss_v, f_obs_v, f_neg_v, bad, gn = stats.tolist()
        row = {"loss": loss_v, "f_data": f_obs_v, "f_sample": f_neg_v, "energy_diff": f_obs_v - f_neg_v,
               "samples_finite": bad == 0}
        if grad_norms:
            row["grad_norm"] = gn
        row["lr"], row["data_noise"] = self.opt.param_groups[0]["lr"], sigma
        return row

    # ----- state -----------------------------------------------------------------------
    def state_meta(self) -> dict:
        return {"iter": self.iter, "lr_scale": self.lr_scale, "config": self.cfg.to_dict(),
                "shape": list(self.data.shape), "kind": self.data.kind, "scale": self.data.scale,
                "dataset": self.data.name, "rng_numpy": _numpy_state(), "rng_python": _python_state(),
                "n_parameters": count_parameters(self.model.net)}

    def save(self) -> Path:
        """Rank 0 writes; every rank waits until the file is there (a rollback may read it next)."""
        path = self.run / "checkpoints" / f"ckpt_{self.iter:08d}.safetensors"
        if self.world.is_main:
            checkpoint.save(path, net=self.model.net, meta=self.state_meta(), optimizer=self.opt,
                            extra_tensors={"rng_torch": torch.get_rng_state()})
            checkpoint.prune(self.run, self.cfg.train.keep_checkpoints)
        distributed.barrier(self.world)
        return path

    def restore(self, state: dict) -> None:
        meta = state["meta"]
        try:
            self.model.net.load_state_dict(state["model"])
        except RuntimeError as e:
            raise UserError(f"checkpoint does not fit this model ({str(e).splitlines()[0]})") from None
        if state["optimizer"] is not None:
            self.opt.load_state_dict(state["optimizer"])
        self.iter, self.lr_scale = meta["iter"], meta.get("lr_scale", 1.0)
        torch.set_rng_state(state["extra"]["rng_torch"])
        _set_numpy_state(meta["rng_numpy"])
        _set_python_state(meta["rng_python"])

    def sample_grid(self, name: str) -> Path | None:
        """A grid from fixed z and u, so grids over training are comparable (rank 0 only)."""
        from .tasks import synthesize
        if not self.world.is_main:
            return None
        n = self.cfg.train.n_grid
        examples = synthesize(self.model, n, seed=self.cfg.train.seed, to_data=self.data.from_model)
        return save_examples(examples, self.run / "samples" / f"{name}.png", kind=self.data.kind,
                             lim=1.05 * self.data.scale, title=name)

    # ----- the loop --------------------------------------------------------------------
    def fit(self, max_time: float | None = None, progress: bool = True, until: int | None = None) -> dict:
        """Runs Algorithm 1 to train.iters (or only up to iteration `until`, as a stop would, with
        the schedules still laid out over train.iters); always ends with a checkpoint."""
        t = self.cfg.train
        last_iter = t.iters if until is None else min(until, t.iters)
        log = RunLog(self.run, enabled=self.world.is_main, tensorboard=t.tensorboard)
        start, window, last = time.perf_counter(), time.perf_counter(), {}
        stop = _StopFlag()
        bar = progress_bar(total=t.iters, initial=self.iter, disable=not (progress and self.world.is_main),
                           desc="train", dynamic_ncols=True)
        reason, healthy, in_step = "iterations reached", True, False
        if t.divergence_check and not checkpoint.list_checkpoints(self.run):
            self.save()  # a rollback needs a good state to return to
        try:
            while self.iter < last_iter:
                in_step = True
                row = self.step()
                in_step = False
                if self._diverged(row):
                    self._rollback(row, log)
                    bar.n = self.iter
                    continue
                if self.iter > self.diverged_at:  # past the last divergence: the rollback worked
                    self.rollbacks = 0
                if t.divergence_check and self.iter % t.snapshot_every == 0:
                    self._take_snapshot()
                if self.iter % t.log_every == 0:
                    now = time.perf_counter()
                    last = {"iter": self.iter, **row, "ms_per_iter": 1e3 * (now - window) / t.log_every}
                    window = now
                    log.write(last)
                    bar.set_postfix(diff=f"{row['energy_diff']:.3g}", ms=f"{last['ms_per_iter']:.0f}")
                bar.update(1)
                if self.iter % t.checkpoint_every == 0:
                    self.save()
                if self.iter % t.sample_every == 0:
                    self.sample_grid(f"iter_{self.iter:08d}")
                out_of_time = max_time is not None and time.perf_counter() - start >= max_time
                if distributed.any_rank(self.world, out_of_time or bool(stop.raised), self.model.device):
                    reason = f"stopped by {stop.raised}" if stop.raised else f"--max-time {max_time:g}s reached"
                    break
        except KeyboardInterrupt:
            reason = "aborted"
            healthy = not in_step  # an iteration cut short may have half-updated the weights
        except UserError:
            healthy = False  # a diverged model is not saved over the good checkpoints
            raise
        finally:
            bar.close()
            stop.restore()
            if healthy:
                self.save()
                self.sample_grid("final")
            log.close()
        return {"iter": self.iter, "reason": reason, "last": last}

    # ----- divergence ------------------------------------------------------------------
    def _diverged(self, row: dict) -> bool:
        if not self.cfg.train.divergence_check:
            return False
        return (not math.isfinite(row["loss"]) or not row["samples_finite"]
                or abs(row["energy_diff"]) > self.cfg.train.max_energy_gap)

    def _rollback(self, row: dict, log: RunLog) -> None:
        t = self.cfg.train
        self.rollbacks += 1
        at = self.diverged_at = self.iter
        say = print if self.world.is_main else (lambda *a, **k: None)
        say(f"\ndivergence at iteration {at}: loss={row['loss']:.4g}, energy_diff={row['energy_diff']:.4g}, "
              f"finite samples={row['samples_finite']}", file=sys.stderr)
        if self.rollbacks > t.max_rollbacks:
            raise UserError(f"training diverged {self.rollbacks} times in a row (last at iteration {at}); "
                            f"lower train.lr or sampler.step_size")
        scale = self.lr_scale * t.rollback_lr_factor  # compounds over repeated rollbacks
        if scale < t.min_lr_scale:
            # divergences spaced past each other reset the count; this bounds them all together
            raise UserError(f"training kept diverging (last at iteration {at}) until the learning rate fell "
                            f"to x{scale:g} of train.lr (below train.min_lr_scale={t.min_lr_scale:g}); "
                            f"lower train.lr or sampler.step_size, or add train.energy_l2=0.1")
        on_disk = checkpoint.list_checkpoints(self.run)
        disk_iter = int(checkpoint.NAME.match(on_disk[-1].name).group(1)) if on_disk else -1
        if self.snapshot is not None and self.snapshot["iter"] >= disk_iter:
            self._restore_snapshot()
        elif on_disk:
            self.restore(checkpoint.load_latest(self.run)[1])
        else:
            raise UserError(f"training diverged at iteration {at} before any checkpoint was written; "
                            f"lower train.lr or sampler.step_size")
        self.lr_scale = scale
        log.write({"iter": at, "event": "rollback", "to_iter": self.iter, "lr_scale": self.lr_scale})
        say(f"rolled back to iteration {self.iter}; learning rate x{self.lr_scale:g}", file=sys.stderr)


    def _take_snapshot(self) -> None:
        self.snapshot = {"iter": self.iter, "model": copy.deepcopy(self.model.net.state_dict()),
                         "optimizer": copy.deepcopy(self.opt.state_dict()), "rng": torch.get_rng_state()}

    def _restore_snapshot(self) -> None:
        snap = self.snapshot
        self.model.net.load_state_dict(snap["model"])
        self.opt.load_state_dict(copy.deepcopy(snap["optimizer"]))
        torch.set_rng_state(snap["rng"])
        self.iter = snap["iter"]


class _StopFlag:
    """Turns SIGTERM (as sent by schedulers such as SLURM) and a first Ctrl-C into a clean stop at
    the end of the current iteration, with a checkpoint; a second Ctrl-C aborts at once."""

    def __init__(self):
        self.raised = None
        self._old = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not in the main thread: leave the default behaviour
                pass

    def _handle(self, signum, frame):
        if signum == signal.SIGINT and self.raised:
            raise KeyboardInterrupt
        self.raised = signal.Signals(signum).name
        if signum == signal.SIGINT:
            print("\nstopping after this iteration (Ctrl-C again to abort without saving)", file=sys.stderr)

    def restore(self):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _numpy_state():
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return [name, keys.tolist(), pos, has_gauss, cached]


def _set_numpy_state(s):
    np.random.set_state((s[0], np.array(s[1], dtype=np.uint32), s[2], s[3], s[4]))


def _python_state():
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def _set_python_state(s):
    random.setstate((s[0], tuple(s[1]), s[2]))


def train(cfg: Config | None, run: str | Path, *, max_time: float | None = None, resume: bool = False,
          iters: int | None = None, progress: bool = True) -> dict:
    """Trains a new run directory, or with resume=True continues it with its saved config
    (cfg is then ignored; `iters` may raise the total). Returns {"iter", "reason", "last"}."""
    run = Path(run)
    if resume:
        path, state = checkpoint.load_latest(run)
        cfg = Config.from_dict(state["meta"]["config"], where=str(path))
        if iters is not None:
            cfg.train.iters = iters
        trainer = Trainer(cfg, run)
        trainer.restore(state)
        if trainer.world.is_main:
            repair_metrics(run / "metrics.jsonl", trainer.iter)
    else:
        if iters is not None:
            cfg.train.iters = iters
        if checkpoint.list_checkpoints(run):
            raise UserError(f"{run} already holds a run; use --resume to continue it or choose another --out")
        trainer = Trainer(cfg, run)
        if trainer.world.is_main:
            try:
                run.mkdir(parents=True, exist_ok=True)
                (run / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
            except OSError as e:
                raise UserError(f"cannot write to {run}: {e.strerror or e}") from None
    return trainer.fit(max_time=max_time, progress=progress)
