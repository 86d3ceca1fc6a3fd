"""Interleaved A/B timing of training iterations: one long-lived process per variant, stepping in
turn (A, B, A, B, ...), so that a machine whose speed drifts by 2× within minutes (ours does)
affects both sides alike. Reports per variant the median ms/iter, the median of the per-round
speed-up over the first variant, and the page faults per iteration.

  python benchmarks/ab.py --config cifar10 --set data.name=fake --set model.n_f=32 \\
      --set train.batch_size=64 --set sampler.n_steps=20 \\
      --variant autograd:train.fused_grad=false --variant fused: --rounds 14
  python benchmarks/ab.py ... --variant default:@malloc=default --variant kept:

A variant is NAME:KEY=VALUE,KEY=VALUE (config overrides); `@malloc=default` leaves glibc's allocator
alone in that process (the others call shortrun.allocator.keep_freed_memory()).
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import statistics
import time


def _worker(conn, config: str, overrides: list[str], keep_memory: bool) -> None:
    if keep_memory:
        from shortrun.allocator import keep_freed_memory
        keep_freed_memory()
    from shortrun.presets import resolve
    from shortrun.data import load_dataset
    from shortrun.training import Trainer

    cfg = resolve(config, overrides + ["data.name=fake", "train.tensorboard=false"])
    cfg.data.fake_size = max(cfg.data.fake_size, 2 * cfg.train.batch_size)
    trainer = Trainer(cfg, "/nonexistent", data=load_dataset(cfg.data))
    for _ in range(2):  # warm-up: oneDNN primitive creation, first-touch of the heap
        trainer.step()
    while conn.recv():
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t0 = time.perf_counter()
        trainer.step()
        conn.send((1e3 * (time.perf_counter() - t0), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="cifar10")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--variant", action="append", required=True, help="NAME:KEY=VALUE,... (repeatable)")
    p.add_argument("--rounds", type=int, default=12)
    a = p.parse_args()

    mp.set_start_method("spawn")
    workers = []
    for spec in a.variant:
        name, _, rest = spec.partition(":")
        items = [s for s in rest.split(",") if s]
        keep = "@malloc=default" not in items
        overrides = a.overrides + [s for s in items if not s.startswith("@")]
        here, there = mp.Pipe()
        proc = mp.Process(target=_worker, args=(there, a.config, overrides, keep))
        proc.start()
        workers.append((name, here, proc))
    times = {name: [] for name, _, _ in workers}
    faults = {name: [] for name, _, _ in workers}
    for _ in range(a.rounds):
        for name, conn, _ in workers:
            conn.send(True)
            ms, n = conn.recv()
            times[name].append(ms)
            faults[name].append(n)
    for _, conn, proc in workers:
        conn.send(False)
        proc.join()
    first = times[workers[0][0]]
    for name, _, _ in workers:
        t = times[name]
        speedup = statistics.median(f / x for f, x in zip(first, t))
        print(f"{name:14s} median {statistics.median(t):8.1f} ms/iter  speed-up over {workers[0][0]} "
              f"{speedup:.2f}  page faults/iter {int(statistics.median(faults[name]))}")


if __name__ == "__main__":
    main()
