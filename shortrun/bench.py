"""`shortrun bench`: how fast one learning iteration and one synthesis batch run, and how close
that is to the device's own matrix-multiply peak measured in the same process.

Timings are medians over repeated runs after warm-up iterations; FLOPs are counted by
torch's FlopCounterMode on one real iteration, not estimated.
"""
from __future__ import annotations

import statistics
import time

import torch

from .allocator import kept as memory_kept
from .config import Config
from .data import load_dataset
from .learn import Trainer


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device, repeats: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of an n×n matrix product at `dtype` on `device` (the practical peak)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    times = _timed(lambda: a @ b, device, repeats, warmup=2)
    return 2 * n ** 3 / statistics.median(times)


def count_flops(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def bench(cfg: Config, iters: int = 5, warmup: int = 2, sample_batches: int = 3, run_dir: str = "/nonexistent") -> dict:
    cfg.data.name = "fake"
    cfg.data.fake_size = max(cfg.data.fake_size, 2 * cfg.train.batch_size)
    cfg.train.tensorboard = False
    trainer = Trainer(cfg, run_dir, data=load_dataset(cfg.data))
    model, device = trainer.model, trainer.model.device
    m, K = cfg.train.batch_size, cfg.sampler.n_steps

    # count on the autograd path: the same arithmetic, but FlopCounterMode knows only aten's ops
    # (not the oneDNN ones of inputgrad.py), and a CUDA-graph capture would count its warm-up runs
    graphed, fused = trainer.graphed, model.fused_grad
    trainer.graphed, model.fused_grad = None, False
    flops = count_flops(trainer.step)
    trainer.graphed, model.fused_grad = graphed, fused
    times = _timed(trainer.step, device, iters, warmup)
    ms = 1e3 * statistics.median(times)

    gen = torch.Generator(device).manual_seed(0)

    def synth():
        with model.frozen():
            model.run(model.init(m, gen), generator=gen)
    sample_times = _timed(synth, device, sample_batches, warmup=1)

    dtype = model.dtype
    peak = matmul_peak(device, dtype)
    return {
        "device": str(device), "dtype": str(dtype).replace("torch.", ""), "threads": torch.get_num_threads(),
        "fused_grad": model.input_grad((m // trainer.world.size, *model.shape)) is not None,
        "keep_freed_memory": memory_kept(),
        "batch": m, "n_steps": K, "ms_per_iter": ms, "ms_per_iter_all": [1e3 * t for t in times],
        "langevin_steps_per_s": K / (ms / 1e3), "images_per_s": m / (ms / 1e3),
        "flops_per_iter": flops, "achieved_tflops": flops / (ms / 1e3) / 1e12,
        "peak_tflops": peak / 1e12, "fraction_of_peak": flops / (ms / 1e3) / peak,
        "sample_images_per_s": m / statistics.median(sample_times),
    }


def format_report(r: dict) -> str:
    lines = [
        f"device {r['device']}  dtype {r['dtype']}  threads {r['threads']}  batch {r['batch']}  K {r['n_steps']}",
        f"fused_grad {'on' if r['fused_grad'] else 'off'}  keep_freed_memory {'on' if r['keep_freed_memory'] else 'off'}",
        f"langevin_steps_per_s {r['langevin_steps_per_s']:.1f}",
        f"images_per_s {r['images_per_s']:.1f}  (training)",
        f"sample_images_per_s {r['sample_images_per_s']:.1f}  (synthesis, K steps)",
        f"flops_per_iter {r['flops_per_iter'] / 1e9:.4g} GFLOP (counted)",
        f"achieved {r['achieved_tflops']:.3f} TFLOP/s of a measured {r['dtype']} matmul peak "
        f"{r['peak_tflops']:.3f} TFLOP/s ({100 * r['fraction_of_peak']:.0f} %)",
        f"ms_per_iter {r['ms_per_iter']:.1f}",
    ]
    return "\n".join(lines)
