"""`shortrun bench`: how fast one learning iteration and one synthesis batch run, and how close
that is to the device's own matrix-multiply peak measured in the same process.

Timings are medians over repeated runs after warm-up iterations; FLOPs are counted by
torch's FlopCounterMode on one real iteration, not estimated.
"""
from __future__ import annotations

import copy
import statistics
import time

import torch

from .allocator import kept as memory_kept
from .config import Config
from .data import load_dataset
from .distributed import World
from .model import ShortRun
from .tasks import synthesize
from .training import LearningStep


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


def bench(cfg: Config, iters: int = 5, warmup: int = 2, sample_batches: int = 3) -> dict:
    """Times learning iterations (Algorithm 1's step, on `fake` data of cfg's shape) and synthesis
    batches; cfg itself is not changed."""
    cfg = copy.deepcopy(cfg)
    cfg.data.name = "fake"
    cfg.data.fake_size = max(cfg.data.fake_size, 2 * cfg.train.batch_size)
    t = cfg.train
    if t.threads:
        torch.set_num_threads(t.threads)
    data = load_dataset(cfg.data)
    torch.manual_seed(t.seed)
    model = ShortRun.from_config(cfg, data.shape)
    model.fit_start(data.train, data.to_model, t.seed)  # sampler.init=fitted: p_0 from the fake data
    device, m, K = model.device, t.batch_size, cfg.sampler.n_steps
    opt = torch.optim.Adam(model.net.parameters(), lr=t.lr, betas=(t.beta1, t.beta2))
    graphed = None
    if t.cuda_graph and device.type == "cuda":
        from .sampler.cuda_graph import GraphedChain
        graphed = GraphedChain(model, m)
    it = iter(range(10**9))
    step = LearningStep(model, opt, data, t, World(), graphed=graphed)
    timed_step = lambda: step(next(it))

    # count on the autograd path: the same arithmetic, but FlopCounterMode knows only aten's ops
    # (not the oneDNN ones of sampler/inputgrad.py), and a CUDA-graph capture would count its warm-up runs
    plain = LearningStep(model, opt, data, t, World())
    fused = model.fused_grad
    model.fused_grad = False
    try:
        flops = count_flops(lambda: plain(0))
    finally:
        model.fused_grad = fused
    times = _timed(timed_step, device, iters, warmup)
    ms = 1e3 * statistics.median(times)
    sample_times = _timed(lambda: synthesize(model, m, seed=0, batch_size=m), device, sample_batches, warmup=1)

    dtype = model.dtype
    peak = matmul_peak(device, dtype)
    return {
        "device": str(device), "dtype": str(dtype).replace("torch.", ""), "threads": torch.get_num_threads(),
        "fused_grad": model.input_grad((m, *model.shape)) is not None,
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
