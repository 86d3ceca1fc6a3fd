"""The training loop: it wires Algorithm 1's step, the divergence guard, checkpoints, the
metrics log and the sample grids together, and stops cleanly on a time limit or a signal.

    train(cfg, "runs/d1", max_time=600)        # a new run
    train(None, "runs/d1", resume=True)        # continue it from its newest checkpoint
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import signal
import sys
import time
from pathlib import Path

import torch

from .. import distributed
from ..atomic import write_text_atomic
from ..config import Config, validate
from ..data import Dataset, load_dataset
from ..distributed import World
from ..errors import UserError
from ..images import save_examples
from ..energy.user import name_of
from ..model import ShortRun
from ..paths import unwritable
from ..sampler.fitted import FittedStart
from ..version import provenance
from ..progress import bar as progress_bar
from . import checkpoint
from .ema import WeightAverage
from .guard import DivergenceGuard
from .metrics_log import MetricsLog, repair_metrics
from .runlock import RunLock
from .schedule import budget_end, budget_horizon
from .state import load_state, run_meta, save_state
from .step import LearningStep


class Trainer:
    """A run directory being trained: the model, Adam, the step, the guard, and the loop (`fit`)."""

    def __init__(self, cfg: Config, run: str | Path, data: Dataset | None = None, world: World | None = None,
                 net: torch.nn.Module | None = None, fit_start: bool = True):
        """fit_start=False leaves p_0 unfitted for `restore` to load (a resumed run: no wasted fit)."""
        validate(cfg)  # the Python API refuses what the CLI refuses
        self.cfg, self.run = cfg, Path(run)
        t = cfg.train
        self.world = world or distributed.setup(t.device)
        if t.batch_size % self.world.size:
            raise UserError(f"train.batch_size ({t.batch_size}) must be divisible by the number of "
                            f"processes ({self.world.size}): it is the global batch")
        if t.threads:
            torch.set_num_threads(t.threads)
        self.data = data if data is not None else load_dataset(cfg.data)
        if t.flip and len(self.data.shape) != 3:
            raise UserError(f"train.flip mirrors images, but data.name={cfg.data.name} gives examples of "
                            f"shape {tuple(self.data.shape)}; leave train.flip=false")
        torch.manual_seed(t.seed)  # weight initialisation: the same on every rank
        device_cfg = dataclasses.replace(cfg, train=dataclasses.replace(
            t, device=distributed.device_for(self.world, t.device)))
        self.model = ShortRun.from_config(device_cfg, self.data.shape, net=net)
        if fit_start:
            self._fit_start()
        self.opt = torch.optim.Adam(self.model.net.parameters(), lr=t.lr, betas=(t.beta1, t.beta2))
        # DDP cannot differentiate through its forward with autograd.grad, so the chain runs on the
        # plain module and only the loss's forward goes through DDP, which averages the gradients
        loss_net = None
        if self.world.size > 1:
            from torch.nn.parallel import DistributedDataParallel
            ids = [self.model.device.index] if self.model.device.type == "cuda" else None
            loss_net = DistributedDataParallel(self.model.net, device_ids=ids)
        graphed = None
        if t.cuda_graph and self.model.device.type == "cuda":
            from ..sampler.cuda_graph import GraphedChain
            graphed = GraphedChain(self.model, t.batch_size // self.world.size)
        self.learn = LearningStep(self.model, self.opt, self.data, t, self.world, loss_net, graphed)
        say = print if self.world.is_main else (lambda *a, **k: None)
        self.guard = DivergenceGuard(t, say=lambda *a: say(*a, file=sys.stderr))
        self.ema = WeightAverage(self.model.net, t.ema) if t.ema > 0 else None
        self.horizon: int | None = None  # iterations a time budget allows (the schedules' length)
        self.iter = 0
        self.damaged: list[Path] = []  # checkpoints skipped on restore, removed at the next save

    @property
    def lr_scale(self) -> float:
        """The rollbacks' multiplier on the scheduled lr (1 until the guard has rolled back)."""
        return self.guard.lr_scale

    def step(self) -> dict:
        """One learning iteration (Algorithm 1); logging iterations also record ‖∇f‖ along the chain."""
        log_now = (self.iter + 1) % self.cfg.train.log_every == 0
        row = self.learn(self.iter, self.guard.lr_scale, diagnostics=log_now, horizon=self.horizon)
        if self.ema is not None:
            self.ema.update(self.model.net)
        self.iter += 1
        return row

    # ----- state: checkpoints on disk, snapshots in memory (the guard's four calls) -----------
    def save(self) -> Path:
        """Rank 0 writes; every rank waits until the file is there (a rollback may read it next)."""
        meta = run_meta(self.cfg, self.data.codec, self.data.name, self.model.net, self.iter, self.guard.lr_scale)
        meta["horizon"] = self.horizon
        meta["guard"] = self.guard.state_dict()  # so a resumed run judges divergence as this one would
        path, damaged, self.damaged = None, self.damaged, []
        if self.world.is_main:
            extra = {**(self.ema.tensors() if self.ema is not None else {}),
                     **(self.model.start.tensors() if self.model.start is not None else {})}
            checkpoint.remove_damaged(damaged)  # before the save: it may reuse a damaged file's name
            path = save_state(self.run, self.iter, self.model.net, self.opt, meta, self.cfg.train.keep_checkpoints,
                              extra_tensors=extra)
            if self.cfg.train.divergence_check and self.guard.healthy():
                checkpoint.keep_healthy(path)
        distributed.barrier(self.world)
        return path

    def _fit_start(self) -> None:
        t = self.cfg.train
        self.model.fit_start(self.data.train, self.data.to_model, t.seed)  # only when sampler.init=fitted
        if self.model.start is not None:  # rank 0's fit on every rank
            distributed.same_tensors_on_all_ranks(self.world, self.model.start, self.model.device)

    def restore(self, state: dict) -> None:
        self.iter, self.guard.lr_scale = load_state(state, self.model.net, self.opt)
        # only a run that saves may delete them: sample and evaluate open runs read-only
        self.damaged += [p for p in state.get("skipped", []) if p not in self.damaged]
        self.horizon = state["meta"].get("horizon")
        saved_start = FittedStart.from_tensors(state["extra"], self.data.shape)
        if saved_start is not None:  # the p_0 the run was trained from, even if the data changed since
            self.model.start = saved_start
        elif self.model.start is None:  # a checkpoint without one (sampler.init is not fitted)
            self._fit_start()
        if self.ema is not None and not self.ema.load(state["extra"]):
            self.ema = WeightAverage(self.model.net, self.cfg.train.ema)  # a checkpoint from before train.ema

    def capture(self) -> dict:
        return {"iter": self.iter, "model": self.model.net.state_dict(), "optimizer": self.opt.state_dict(),
                "ema": self.ema.state() if self.ema is not None else None}

    def restore_capture(self, snapshot: dict) -> None:
        self.model.net.load_state_dict(snapshot["model"])
        self.opt.load_state_dict(snapshot["optimizer"])
        if self.ema is not None:
            self.ema.restore(snapshot["ema"])
        self.iter = snapshot["iter"]

    def checkpoint_iter(self) -> int:
        on_disk = checkpoint.list_checkpoints(self.run)
        return int(checkpoint.NAME.match(on_disk[-1].name).group(1)) if on_disk else -1

    def restore_checkpoint(self) -> None:
        horizon = self.horizon  # a rollback returns the weights, not the session's schedule length
        self.restore(checkpoint.load_latest(self.run)[1])
        self.horizon = horizon

    def sample_grid(self, name: str) -> Path | None:
        """A grid from fixed z and u, so grids over training are comparable (rank 0 only)."""
        from ..tasks import synthesize
        if not self.world.is_main:
            return None
        n = self.cfg.train.n_grid
        with self.ema.applied(self.model.net) if self.ema is not None else contextlib.nullcontext():
            examples = synthesize(self.model, n, seed=self.cfg.train.seed, to_data=self.data.from_model)
        return save_examples(examples, self.run / "samples" / f"{name}.png", kind=self.data.kind,
                             lim=1.05 * self.data.scale, title=name)

    def fit(self, max_time: float | None = None, progress: bool = True, until: int | None = None) -> dict:
        """Runs Algorithm 1 to train.iters (or only up to iteration `until`, as a stop would); always
        ends with a checkpoint. The schedules are laid out over train.iters, or, in a new run with
        `max_time` (and train.budget_schedule), over the iterations that time allows."""
        t = self.cfg.train
        last_iter = t.iters if until is None else min(until, t.iters)
        log = MetricsLog(self.run, enabled=self.world.is_main, tensorboard=t.tensorboard)
        start, window, last, first_iter = time.perf_counter(), time.perf_counter(), {}, self.iter
        window_steps = 0  # iterations run since `window` (fewer than log_every after a resume or rollback)
        # a run's first session with a time budget sets the schedules' length; a resumed session keeps
        # the saved one (so the schedule continues as if never stopped)
        plan_budget = max_time is not None and t.budget_schedule and first_iter == 0
        stop = StopFlag()
        bar = progress_bar(total=t.iters, initial=self.iter, disable=not (progress and self.world.is_main),
                           desc="train", dynamic_ncols=True)
        reason, healthy, in_step, unlogged = "iterations reached", True, False, None

        def log_row(row: dict) -> dict:
            nonlocal window, window_steps, unlogged
            now = time.perf_counter()
            logged = {"iter": self.iter, **row, "ms_per_iter": 1e3 * (now - window) / window_steps}
            window, window_steps, unlogged = now, 0, None
            log.write(logged)
            return logged
        if t.divergence_check and not checkpoint.list_checkpoints(self.run):
            self.save()  # a rollback needs a good state to return to
        try:
            while self.iter < last_iter:
                in_step = True
                row = self.step()
                in_step = False
                window_steps += 1
                if plan_budget:  # lay the schedules out over the iterations the budget allows
                    self.horizon = distributed.same_on_all_ranks(self.world, budget_horizon(
                        t, self.iter, self.iter - first_iter, time.perf_counter() - start, max_time, self.horizon),
                        self.model.device)
                if self.guard.diverged(row):
                    event = self.guard.rollback(row, self)
                    log.cut(self.iter)  # the rows past the state returned to will be logged again
                    log.write(event)
                    bar.n = self.iter
                    unlogged = None
                    continue
                self.guard.passed(self, row)
                unlogged = row
                if self.iter % t.log_every == 0:
                    last = log_row(row)
                    if max_time is not None:  # the bar ends where the time budget will stop the run
                        bar.total = budget_end(self.iter, self.iter - first_iter, time.perf_counter() - start,
                                               max_time, last_iter)
                    bar.set_postfix(diff=f"{row['energy_diff']:.3g}", ms=f"{last['ms_per_iter']:.0f}")
                bar.update(1)
                if self.iter % t.checkpoint_every == 0:
                    self.save()
                if self.iter % t.sample_every == 0:
                    self.sample_grid(f"iter_{self.iter:08d}")
                out_of_time = max_time is not None and time.perf_counter() - start >= max_time
                if distributed.any_rank(self.world, out_of_time or bool(stop.raised), self.model.device):
                    reason = f"stopped by {stop.raised}" if stop.raised else f"--max-time {max_time:g}s reached"
                    if not stop.raised:
                        bar.total = self.iter  # the budget's end, reached: the bar closes full
                    break
            if unlogged is not None:  # the final iteration is logged too, where it is not a multiple of log_every
                last = log_row(unlogged)
        except KeyboardInterrupt:
            reason = "aborted"
            healthy = not in_step  # an iteration cut short may have half-updated the weights
        except UserError:
            healthy = False  # a diverged model is not saved over the good checkpoints
            raise
        finally:
            bar.close()
            stop.restore()
            if healthy:  # after a second Ctrl-C: the last whole iteration is kept, but no grid is drawn
                self.save()
                if reason != "aborted":
                    self.sample_grid("final")
            log.close()
        # the signal that stopped the run, for the CLI's exit code (a second Ctrl-C aborts)
        by = stop.raised or ("SIGINT" if reason == "aborted" else None)
        return {"iter": self.iter, "reason": reason, "last": last, "signal": by}


class StopFlag:
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
            print("\nstopping after this iteration (Ctrl-C again to abort; an unfinished iteration is not saved)",
                  file=sys.stderr)

    def restore(self):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def train(cfg: Config | None, run: str | Path, *, max_time: float | None = None, resume: bool = False,
          iters: int | None = None, progress: bool = True, net: torch.nn.Module | None = None) -> dict:
    """Trains a new run directory, or with resume=True continues it with its saved config
    (cfg is then ignored; `iters` may raise the total). Returns {"iter", "reason", "last", "signal"}.
    `net`, a network instance of one's own, replaces the one cfg.model names; the run records its
    class as model.name=MODULE:CLASS, rebuilt as CLASS(shape) when the run is reopened.
    The caller's cfg is never changed. RUN is locked while training (rank 0 of N holds the lock)."""
    run = Path(run)
    if max_time is not None and not 0 < max_time < float("inf"):  # NaN fails both comparisons
        raise UserError(f"max_time (--max-time) must be a finite number of seconds > 0, got {max_time}")
    problem = unwritable(run)  # before the data is read, not at the first save
    if problem:
        raise UserError(problem)
    lock = RunLock(run)
    try:
        if resume:
            trainer = _resumed(run, iters, lock)
        else:
            trainer = _new_run(cfg, run, iters, lock, net)
        return trainer.fit(max_time=max_time, progress=progress)
    finally:
        lock.release()


def resumed_config(run: str | Path, iters: int | None = None) -> tuple[int, Config]:
    """The iteration a resume would start from and the config it would run with (`train --resume --dry-run`)."""
    run = Path(run)
    if not run.is_dir():
        raise UserError(f"run directory {run} does not exist")
    _, state, cfg = _latest(run, iters)
    return state["meta"]["iter"], cfg


def _latest(run: Path, iters: int | None) -> tuple[Path, dict, Config]:
    path, state = checkpoint.load_latest(run)
    cfg = Config.from_dict(state["meta"]["config"], where=str(path))
    if iters is not None:
        if iters < state["meta"]["iter"]:
            raise UserError(f"{run} is already at iteration {state['meta']['iter']}; --iters {iters} would not "
                            f"continue it (give a larger total, or none to finish the planned {cfg.train.iters})")
        cfg.train.iters = iters
    return path, state, cfg


def _resumed(run: Path, iters: int | None, lock: RunLock) -> Trainer:
    if not run.is_dir():
        raise UserError(f"run directory {run} does not exist")
    if distributed.env_rank() == 0:
        lock.acquire()  # before reading: another writer's newer checkpoint would be missed
    path, state, cfg = _latest(run, iters)
    trainer = Trainer(cfg, run, fit_start=False)  # restore loads the run's own p_0
    trainer.restore(state)
    trainer.guard.load_state_dict(state["meta"].get("guard"))  # not in restore(): a rollback keeps its own count
    if iters is not None:
        trainer.horizon = None  # a new total: the schedules follow it
    if trainer.world.is_main:
        repair_metrics(run / "metrics.jsonl", trainer.iter)
        _record_config(run, cfg, keep_provenance=True)  # the total this session trains to (--iters or the checkpoint's)
    return trainer


def _new_run(cfg: Config | None, run: Path, iters: int | None, lock: RunLock, net=None) -> Trainer:
    if cfg is None:
        raise UserError("train() needs a config for a new run (or resume=True to continue one)")
    cfg = copy.deepcopy(cfg)
    if iters is not None:
        cfg.train.iters = iters
    if net is not None:
        cfg.model.name = name_of(net)
    if checkpoint.list_checkpoints(run):  # early, before the data is read
        if distributed.env_rank() == 0:
            lock.acquire()  # if that run is still being trained, name its process instead
        raise UserError(f"{run} already holds a run; use --resume to continue it or choose another --out")
    trainer = Trainer(cfg, run, net=net)  # reads only: bad settings or data leave no folder behind
    if trainer.world.is_main:
        lock.acquire()
        if checkpoint.list_checkpoints(run):  # again, under the lock: a run started meanwhile
            raise UserError(f"{run} already holds a run; use --resume to continue it or choose another --out")
        _clear_unfinished(run)
        _record_config(run, cfg)
    return trainer


def _record_config(run: Path, cfg: Config, keep_provenance: bool = False) -> None:
    """RUN/config.json: the run's settings and which code made the run (kept when a resume changes them)."""
    made_by = provenance()
    if keep_provenance:
        try:
            made_by = json.loads((run / "config.json").read_text())["shortrun"]
        except (OSError, ValueError, TypeError, KeyError):
            pass
    write_text_atomic(run / "config.json", json.dumps({**cfg.to_dict(), "shortrun": made_by}, indent=2) + "\n")


def _clear_unfinished(run: Path) -> None:
    """A new run in a folder that holds no checkpoint: refuses a config.json that shortrun did not
    write (the folder is someone else's), and removes what a run killed before its first checkpoint
    left (its metrics rows and TensorBoard events), which this run's would otherwise be mixed with."""
    config, metrics = run / "config.json", run / "metrics.jsonl"
    events = list((run / "tb").glob("events.out.tfevents.*"))
    try:
        record = json.loads(config.read_text())
        ours = isinstance(record, dict) and "shortrun" in record
    except (OSError, ValueError):  # missing, unreadable or not JSON
        ours = False
    if not ours and (config.exists() or metrics.exists() or events):
        what = next(str(p.relative_to(run)) for p in (config, metrics, *events) if p.exists())
        raise UserError(f"{run} holds {what}, which shortrun did not write; choose another --out")
    metrics.unlink(missing_ok=True)  # only a shortrun run killed before its first checkpoint gets here
    for path in events:
        path.unlink(missing_ok=True)
