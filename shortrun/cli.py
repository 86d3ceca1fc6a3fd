"""The `shortrun` command line: it parses, calls the library, and turns bad input into one line.

Each command has a Python equivalent, shown in the README.
"""
from __future__ import annotations

import argparse
import json
import sys
import traceback

from .errors import UserError


def _add_set(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set sampler.n_steps=40 (repeatable)")


def cmd_train(a) -> None:
    from .config import resolve
    from .data import shape_of
    from .energy import build_energy, count_parameters
    from .learn import train

    if a.resume:
        if a.overrides or a.config:
            print("note: --resume continues with the run's saved config; --config and --set are ignored",
                  file=sys.stderr)
        result = train(None, a.out, resume=True, iters=a.iters, max_time=a.max_time, progress=not a.quiet)
    else:
        overrides = list(a.overrides) + ([f"train.seed={a.seed}"] if a.seed is not None else [])
        cfg = resolve(a.config or "digits", overrides)
        if a.dry_run:
            if a.iters is not None:
                cfg.train.iters = a.iters
            print(json.dumps(cfg.to_dict(), indent=2))
            print(f"parameters {count_parameters(build_energy(cfg.model, shape_of(cfg.data)))}")
            return
        result = train(cfg, a.out, iters=a.iters, max_time=a.max_time, progress=not a.quiet)
    last = result["last"]
    summary = f"stopped at iteration {result['iter']} ({result['reason']})"
    if last:
        summary += f"; energy_diff {last['energy_diff']:.4g}, {last['ms_per_iter']:.0f} ms/iter"
    print(summary)
    print(f"run directory: {a.out}  (samples in {a.out}/samples, checkpoints in {a.out}/checkpoints)")


def cmd_sample(a) -> None:
    from .images import save_examples
    from .run import open_run
    from .tasks import synthesize

    if a.n < 1:
        raise UserError("--n must be at least 1")
    run = open_run(a.run, a.overrides)
    x = synthesize(run.model, a.n, seed=a.seed, batch_size=a.batch_size, to_data=run.codec.from_model,
                   progress=not a.quiet)
    save_examples(x, a.out, kind=run.codec.kind, nrow=a.nrow, lim=1.05 * run.codec.scale)
    print(f"wrote {a.n} samples to {a.out}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="shortrun", description="Learn and use short-run MCMC toward an EBM.")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="learn a short-run sampler (Algorithm 1)")
    t.add_argument("--config", help="preset name (digits, cifar10, celeba64, lsun64, mnist, folder, "
                   "8gaussians, rings, checkerboard, moons) or a .json/.toml file; default digits")
    t.add_argument("--out", required=True, help="run directory")
    t.add_argument("--iters", type=int, help="total iterations (overrides train.iters)")
    t.add_argument("--max-time", type=float, help="stop cleanly after this many seconds")
    t.add_argument("--seed", type=int, help="random seed (train.seed)")
    t.add_argument("--resume", action="store_true", help="continue RUN from its latest checkpoint")
    t.add_argument("--dry-run", action="store_true", help="print the resolved config and parameter count")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_set(t)
    t.set_defaults(fn=cmd_train)

    s = sub.add_parser("sample", help="synthesize examples with a trained run")
    s.add_argument("--run", required=True, help="run directory")
    s.add_argument("--n", type=int, default=64, help="number of samples")
    s.add_argument("--out", required=True, help="FILE.png (grid or scatter) or FILE.npz (arr_0)")
    s.add_argument("--seed", type=int, default=0, help="same seed, same samples, whatever the batch size")
    s.add_argument("--batch-size", type=int, default=64, help="chains run at once")
    s.add_argument("--nrow", type=int, help="images per grid row")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_set(s)
    s.set_defaults(fn=cmd_sample)
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.fn(args)
    except UserError as e:
        if args.debug:
            traceback.print_exc()
        print(f"shortrun: error: {e}", file=sys.stderr)
        sys.exit(2)
    except (OSError, MemoryError) as e:
        if args.debug:
            traceback.print_exc()
        print(f"shortrun: error: {type(e).__name__}: {e} (rerun with --debug for details)", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("shortrun: interrupted", file=sys.stderr)
        sys.exit(130)
