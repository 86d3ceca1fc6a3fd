"""One short GPU check, prepared for a session that is lent a GPU (see benchmarks/RESULTS.md):

    python benchmarks/gpu_check.py            # ~2 minutes on one H100/H200-class GPU

1. correctness: the CUDA-graph chain against the eager chain, same z, same step noise u, fp32;
2. speed: `shortrun bench` at the paper's CIFAR-10 setting (n_f = 128, K = 100, batch 64), bf16,
   with and without the CUDA graph, and the plain reference loop at the same setting.
Prints one JSON line per measurement.
"""
import json
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def graph_vs_eager():
    from shortrun.presets import resolve
    from shortrun.sampler.cuda_graph import GraphedChain
    from shortrun.model import ShortRun
    cfg = resolve("cifar10", ["model.n_f=32", "sampler.n_steps=10", "train.precision=fp32", "train.device=cuda"])
    model = ShortRun.from_config(cfg, (3, 32, 32))
    g = torch.Generator("cuda").manual_seed(0)
    z = model.init(16, g)
    u = torch.randn((cfg.sampler.n_steps, 16, 3, 32, 32), device="cuda", generator=g)
    chain = GraphedChain(model, 16)
    chain(z, u)  # capture
    fast = chain(z, u)
    with model.frozen():
        eager = model.chain(z, noise=u)
    return {"check": "graph_vs_eager", "max_abs_diff": float((fast - eager).abs().max())}


def bench(extra):
    cmd = [sys.executable, "-m", "shortrun", "bench", "--config", "cifar10", "--iters", "10",
           "--set", "train.device=cuda", *extra]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT).stdout
    return {"check": "bench", "extra": extra, "report": out.strip().splitlines()}


def reference():
    ref = ROOT.parent / "shared" / "bench" / "reference.py"
    if not ref.exists():
        return {"check": "reference", "skipped": str(ref)}
    src = ref.read_text().replace("torch.empty(n, c, im, im)", "torch.empty(n, c, im, im, device='cuda')")
    src = src.replace("f = F(n_f=a.n_f)", "f = F(n_f=a.n_f).cuda()").replace(
        "data = torch.rand(1024, 3, 32, 32) * 2 - 1", "data = torch.rand(1024, 3, 32, 32, device='cuda') * 2 - 1")
    src = src.replace("times.append(", "torch.cuda.synchronize(); times.append(")
    tmp = Path("/tmp/reference_cuda.py")
    tmp.write_text(src)
    out = subprocess.run([sys.executable, str(tmp), "--n-f", "128", "--batch", "64", "--K", "100", "--iters", "5"],
                         capture_output=True, text=True).stdout
    return {"check": "reference_cuda", "out": out.strip().splitlines()[-1:]}


if __name__ == "__main__":
    print(json.dumps(graph_vs_eager()))
    print(json.dumps(bench(["--set", "train.cuda_graph=true"])))
    print(json.dumps(bench(["--set", "train.cuda_graph=false"])))
    print(json.dumps(reference()))
