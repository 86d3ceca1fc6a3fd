"""One point of the equal-time comparison on the photo benchmark: train shortrun for --seconds on
the training patches at the reference's n_f, K and batch, draw --n samples, score them with fd.py,
and append a row to --results (JSON lines).

  python benchmarks/photos/recipe.py PATCHES_DIR --name paper --seconds 480 --seed 1 \
      [--config folder] [--set key=value ...] [--results benchmarks/photos/results.jsonl]

The plain loop's point is `reference_train.py` followed by `fd.py` (README.md beside this file).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_has_amx() -> bool:
    """The model name does not tell AMX machines from others of the same name, so each row records
    AMX and the precision train.precision=auto picks on this CPU (auto_precision)."""
    try:
        return any(line.startswith("flags") and "amx_bf16" in line.split() for line in open("/proc/cpuinfo"))
    except OSError:
        return False


def auto_precision() -> str:
    import torch
    from shortrun.model import pick_precision
    return "bf16" if pick_precision("auto", torch.device("cpu")) == torch.bfloat16 else "fp32"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("patches", help="folder with train/ and heldout/ (make_patches.py)")
    p.add_argument("--name", required=True)
    p.add_argument("--config", default="folder")
    p.add_argument("--seconds", type=float, default=480)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--out", default="/tmp/shortrun_recipes")
    p.add_argument("--results", default=str(HERE / "results.jsonl"))
    a = p.parse_args()
    patches = Path(a.patches)
    run = Path(a.out) / f"{a.name}_s{a.seed}"
    exe = [sys.executable, "-m", "shortrun"]
    fixed = [f"data.root={patches / 'train'}", "data.image_size=32", "data.channels=3", "data.holdout=0",
             "model.n_f=32", "sampler.n_steps=40", "train.batch_size=64"]  # the reference's settings
    sets = [x for kv in fixed + a.overrides for x in ("--set", kv)]
    subprocess.run(exe + ["train", "--config", a.config, "--out", str(run), "--seed", str(a.seed),
                          "--max-time", str(a.seconds), "--quiet"] + sets, check=True)
    # the final checkpoint's iteration (metrics.jsonl logs only every train.log_every iterations)
    iters = max(int(p.stem.split("_")[1]) for p in (run / "checkpoints").glob("ckpt_*.safetensors"))
    samples = run / "samples.npz"
    subprocess.run(exe + ["sample", "--run", str(run), "--n", str(a.n), "--out", str(samples), "--quiet"], check=True)
    subprocess.run(exe + ["sample", "--run", str(run), "--n", "64", "--out", str(run / "samples.png"), "--quiet"],
                   check=True)
    fd_json = run / "fd.json"
    subprocess.run([sys.executable, str(HERE / "fd.py"), str(samples), str(patches / "heldout"),
                    "--json", str(fd_json)], check=True)
    fd = json.loads(fd_json.read_text())
    extra = {}
    if any(kv.startswith("train.ema=") and float(kv.split("=")[1]) > 0 for kv in a.overrides):
        # the same run's last iterate: the weight average's effect, paired
        raw = run / "samples_raw.npz"
        subprocess.run(exe + ["sample", "--run", str(run), "--n", str(a.n), "--out", str(raw), "--quiet",
                              "--weights", "raw"], check=True)
        subprocess.run([sys.executable, str(HERE / "fd.py"), str(raw), str(patches / "heldout"),
                        "--json", str(run / "fd_raw.json")], check=True)
        extra["fd_raw_weights"] = json.loads((run / "fd_raw.json").read_text())["fd"]
    row = {"name": a.name, "seed": a.seed, "seconds": a.seconds, "iters": iters, "fd": fd["fd"], "n": fd["n"], **extra,
           "config": a.config, "overrides": a.overrides, "cpu": cpu_model(), "amx": cpu_has_amx(),
           "auto_precision": auto_precision(), "threads": os.cpu_count(),
           "run": str(run), "when": time.strftime("%Y-%m-%d %H:%M")}
    with open(a.results, "a") as fh:
        fh.write(json.dumps(row) + "\n")
    print(json.dumps(row))


if __name__ == "__main__":
    main()
