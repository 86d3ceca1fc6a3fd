"""Peak memory and time of one reconstruction descent step (backpropagation through all K
Langevin steps), with and without gradient checkpointing along the chain.

    python benchmarks/reconstruct_memory.py [--size 64] [--n-f 64] [--K 100] [--batch 16] [--segments 0 10]

Each setting runs in its own process, so the peak resident memory (ru_maxrss) is that
setting's alone; the baseline RSS after building the model is subtracted. On a GPU, the
peak is torch.cuda.max_memory_allocated instead.
"""
import argparse
import json
import subprocess
import sys

CHILD = r'''
import json, resource, sys, time, torch
from shortrun.presets import resolve
from shortrun.model import ShortRun
from shortrun.tasks.synthesis import draw_latents
size, n_f, K, batch, segments, device = sys.argv[1:7]
size, n_f, K, batch, segments = map(int, (size, n_f, K, batch, segments))
cfg = resolve("celeba64", [f"data.image_size={size}", f"model.n_f={n_f}", f"sampler.n_steps={K}",
                           f"train.device={device}", "train.precision=fp32"])
model = ShortRun.from_config(cfg, (3, size, size))
z, u = draw_latents(model, range(batch), 0)
target = torch.rand_like(z) * 2 - 1
z.requires_grad_(True)
cuda = model.device.type == "cuda"
base = torch.cuda.memory_allocated() if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
t0 = time.perf_counter()
with model.frozen():
    x = model.chain_differentiable(z, u, segments=segments)
    ((x - target) ** 2).sum().backward()
if cuda:
    torch.cuda.synchronize()
seconds = time.perf_counter() - t0
peak = torch.cuda.max_memory_allocated() if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"segments": segments, "peak_gib": (peak - base) / 2**30, "seconds": seconds,
                  "grad_norm": float(z.grad.norm())}))
'''


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--n-f", type=int, default=64)
    p.add_argument("--K", type=int, default=100)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--segments", type=int, nargs="+", default=[0, 10])
    p.add_argument("--device", default="auto")
    a = p.parse_args()
    for s in a.segments:
        args = [str(v) for v in (a.size, a.n_f, a.K, a.batch, s, a.device)]
        r = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True)
        if r.returncode != 0:
            print(json.dumps({"segments": s, "failed": r.stderr.strip().splitlines()[-1:]}))
        else:
            print(r.stdout.strip())


if __name__ == "__main__":
    main()
