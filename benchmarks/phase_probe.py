"""Watches this machine's speed phases: the same packed convolution (64→128 channels, 16×16,
batch 64) in bf16 (AMX) and fp32, an in-place add and a 1024² bf16 matmul, timed in turn and
reported as medians per window. `--fp32-only` times the fp32 work and only probes bf16 every 50th
round, to tell whether our own AMX load brings the slow phase on.

  python benchmarks/phase_probe.py [--seconds 30] [--window 2] [--fp32-only]
"""
import argparse
import statistics
import time

import torch

mk = torch.ops.mkldnn


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--window", type=float, default=2)
    p.add_argument("--fp32-only", action="store_true")
    a = p.parse_args()
    bf, cl = torch.bfloat16, torch.channels_last
    n, ci, co, hw = 64, 64, 128, 16
    x = torch.randn(n, ci, hw, hw).contiguous(memory_format=cl)
    w = (0.05 * torch.randn(co, ci, 4, 4)).contiguous(memory_format=cl)
    b = torch.zeros(co)
    packed32 = mk._reorder_convolution_weight(w, [1, 1], [2, 2], [1, 1], 1, [n, ci, hw, hw])
    packed16 = mk._reorder_convolution_weight(w.to(bf), [1, 1], [2, 2], [1, 1], 1, [n, ci, hw, hw])
    x16, b16 = x.to(bf), b.to(bf)
    m1, m2 = torch.randn(1024, 1024, dtype=bf), torch.randn(1024, 1024, dtype=bf)
    v = torch.randn(196608)
    ops = {
        "fp32 conv": lambda: mk._convolution_pointwise(x, packed32, b, [1, 1], [2, 2], [1, 1], 1, "none", [], ""),
        "bf16 conv": lambda: mk._convolution_pointwise(x16, packed16, b16, [1, 1], [2, 2], [1, 1], 1, "none", [], ""),
        "add": lambda: v.add_(1.0),
        "bf16 mm1024": lambda: m1 @ m2,
    }
    end = time.time() + a.seconds
    while time.time() < end:
        times = {k: [] for k in ops}
        window_end, rounds = time.time() + a.window, 0
        while time.time() < window_end:
            rounds += 1
            for name, op in ops.items():
                if a.fp32_only and name.startswith("bf16") and rounds % 50:
                    continue
                t0 = time.perf_counter()
                op()
                times[name].append(time.perf_counter() - t0)
        print("  ".join(f"{k} {1e3 * statistics.median(t):.3f} ms" for k, t in times.items() if t), flush=True)


if __name__ == "__main__":
    main()
