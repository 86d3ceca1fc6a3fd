"""`make demo`: learn the built-in digits on the CPU and write every figure to runs/demo/.

    python -m shortrun.demo [--out runs/demo] [--max-time 300]

Training stops at the preset's iteration count or after --max-time seconds, whichever
comes first; with the time limit the learning-rate schedule is laid out over the iterations that
time allows, so a slower CPU still anneals. 300 s of training leave the evaluation room within the
8 minutes the README promises on a 2-core CPU. A second call reuses (or resumes) the run.
"""
from __future__ import annotations

import argparse
import shutil
import signal
import sys
from pathlib import Path

from .commands import interpolate_job, sample_job
from .errors import UserError
from .evaluation import evaluate, format_table
from .presets import resolve
from .training import checkpoint, train


def demo(out: str | Path = "runs/demo", max_time: float = 300.0) -> dict:
    out = Path(out)
    cfg = resolve("digits")
    done = checkpoint.list_checkpoints(out)
    if not done:
        print(f"training the digits preset for at most {max_time:.0f} s ({cfg.train.iters} iterations) ...")
        result = train(cfg, out, max_time=max_time)
    else:
        _, state = checkpoint.load_latest(out)
        # a run that Ctrl-C stopped is resumed; one the time limit stopped (the demo then ran to its
        # end and wrote eval.json) is reused as it is, not trained for another max_time
        if state["meta"]["iter"] < cfg.train.iters and not (out / "eval.json").exists():
            print(f"resuming {out} at iteration {state['meta']['iter']} ...")
            result = train(None, out, resume=True, max_time=max_time)
        else:
            print(f"{out} is already trained ({state['meta']['iter']} iterations); delete it to train again")
            result = {"iter": state["meta"]["iter"], "reason": "already trained"}
    if result.get("signal"):  # Ctrl-C or SIGTERM: stop as `shortrun train` does, not go on to evaluate
        print(f"stopped by {result['signal']}; run the demo again to resume", file=sys.stderr)
        sys.exit(128 + signal.Signals[result["signal"]].value)
    print("synthesis ...")
    sample_job(out, out / "samples.png", n=100, seed=0, nrow=10)
    sample_job(out, out / "samples.npz", n=1000, seed=1, batch_size=250)
    print("interpolation between observed digits (codes inferred through the sampler) ...")
    interpolate_job(out, out / "interpolation_observed.png", pairs=4, n_rho=8, observed=True)
    print("evaluation, reconstruction, interpolation, diagnostics and report ...")
    ev = evaluate(out, n=1000)
    for name in ("interpolation.png", "reconstruction.png", "reconstruction_curve.png", "reconstruction.json"):
        shutil.copyfile(out / "report" / name, out / name)
    m = ev["metrics"]
    return {"train": result, "reconstruction_mse": m["reconstruction_mse_train"],
            "reconstruction_mse_heldout": m.get("reconstruction_mse_heldout"), "metrics": m}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--max-time", type=float, default=300.0, help="training time limit in seconds")
    a = p.parse_args()
    try:
        r = demo(a.out, a.max_time)
    except UserError as e:
        print(f"shortrun demo: error: {e}", file=sys.stderr)
        sys.exit(2)
    out = Path(a.out)
    print(f"\ntrained {r['train']['iter']} iterations ({r['train']['reason']})")
    print(format_table({"metrics": r["metrics"]}))
    print(f"reconstruction mse: {r['reconstruction_mse']:.4f} on training digits, "
          f"{r['reconstruction_mse_heldout']:.4f} on held-out digits")
    print(f"outputs in {out}/:")
    for name in ("report.html", "samples.png", "samples.npz", "interpolation.png", "interpolation_observed.png",
                 "reconstruction.png", "reconstruction_curve.png", "reconstruction.json", "eval.json", "report/",
                 "samples/", "metrics.jsonl", "checkpoints/", "tb/"):
        print(f"  {out / name}")


if __name__ == "__main__":
    main()
