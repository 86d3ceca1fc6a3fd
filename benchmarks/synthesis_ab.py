"""Synthesis (one K-step chain on a batch) with the hand-written ∇ₓf and with autograd, timed in
turn in one process: `python benchmarks/synthesis_ab.py [--n-f 32] [--K 20] [--batch 64] [--rounds 12]`."""
import argparse
import statistics
import time

import torch

from shortrun.allocator import keep_freed_memory
from shortrun.presets import resolve
from shortrun.model import ShortRun


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n-f", type=int, default=32)
    p.add_argument("--K", type=int, default=20)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--rounds", type=int, default=12)
    a = p.parse_args()
    keep_freed_memory()
    model = ShortRun.from_config(resolve("cifar10", [f"model.n_f={a.n_f}", f"sampler.n_steps={a.K}"]), (3, 32, 32))
    gen = torch.Generator()

    def synth(fused: bool) -> float:
        model.fused_grad = fused
        gen.manual_seed(0)
        t0 = time.perf_counter()
        with model.frozen():
            model.chain(model.init(a.batch, gen), generator=gen)
        return time.perf_counter() - t0

    for fused in (True, False, True, False):  # warm-up
        synth(fused)
    plain, fused = zip(*[(synth(False), synth(True)) for _ in range(a.rounds)])
    print(f"synthesis, batch {a.batch}, K {a.K}, n_f {a.n_f}, {model.dtype}: autograd "
          f"{1e3 * statistics.median(plain):.0f} ms, fused {1e3 * statistics.median(fused):.0f} ms, "
          f"speed-up {statistics.median(p / f for p, f in zip(plain, fused)):.2f}")


if __name__ == "__main__":
    main()
