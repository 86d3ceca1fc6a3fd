"""The `shortrun` command line: it parses, calls the library, and turns bad input into one line.

Each command has a Python equivalent, shown in the README.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import traceback

from . import argtypes as T
from .errors import UserError


def _say(*args) -> None:
    """Prints on rank 0 only, so N processes under torchrun report once."""
    if os.environ.get("RANK", "0") == "0":
        print(*args)


def _add_run(p: argparse.ArgumentParser, checkpoint: bool = False) -> None:
    # --run-dir: torchrun's own parser takes --run for an abbreviation of its --run-path
    p.add_argument("--run", "--run-dir", dest="run", required=True, type=T.in_path,
                   help="run directory (--run-dir: the same, for use under torchrun)")
    if checkpoint:
        _add_checkpoint(p)


def _finish(p: argparse.ArgumentParser, fn, overrides: bool = True) -> None:
    """The options every command shares (--quiet, --set), then the function it runs; --quiet is
    accepted even where there are no progress bars, so scripts can pass it to every command."""
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    # also after the command, where users type it when an error line says "rerun with --debug";
    # SUPPRESS leaves the flag given before the command in place when it is absent here
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks for errors")
    if overrides:
        _add_set(p)
    p.set_defaults(fn=fn)


def _add_checkpoint(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", default="latest", metavar="ITER|latest|best-healthy",
                   help="which checkpoint: the newest (default), the one kept from before any divergence, or "
                        "an iteration number")


def _add_set(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set sampler.n_steps=40 (repeatable)")


def _print_dry_run(cfg) -> None:
    from .data import shape_of
    from .energy import build_energy, count_parameters
    n = count_parameters(build_energy(cfg.model, shape_of(cfg.data)))  # refuses bad settings before printing
    print(json.dumps(cfg.to_dict(), indent=2))
    print(f"parameters {n}")


def cmd_train(a) -> int:
    """Exit code 0 when the iterations or --max-time are reached; 128 + the signal's number
    (130 SIGINT, 143 SIGTERM) when a signal stopped the run, so `train && evaluate` stops too."""
    import signal

    from .presets import resolve
    from .training import train

    if a.resume:
        ignored = [flag for flag, given in (("--config", a.config), ("--set", a.overrides),
                                            ("--seed", a.seed is not None)) if given]
        if ignored:
            print(f"note: --resume continues with the run's saved config and seed; {', '.join(ignored)} "
                  f"ignored", file=sys.stderr)
        if a.dry_run:
            from .training import resumed_config
            it, cfg = resumed_config(a.out, a.iters)
            _print_dry_run(cfg)
            print(f"would resume from iteration {it} of {cfg.train.iters}")
            return 0
        result = train(None, a.out, resume=True, iters=a.iters, max_time=a.max_time, progress=not a.quiet)
    else:
        overrides = list(a.overrides) + ([f"train.seed={a.seed}"] if a.seed is not None else [])
        cfg = resolve(a.config or "digits", overrides)
        if a.dry_run:
            if a.iters is not None:
                cfg.train.iters = a.iters
            _print_dry_run(cfg)
            return 0
        result = train(cfg, a.out, iters=a.iters, max_time=a.max_time, progress=not a.quiet)
    last = result["last"]
    summary = f"stopped at iteration {result['iter']} ({result['reason']})"
    if last:
        summary += f"; energy_diff {last['energy_diff']:.4g}, {last['ms_per_iter']:.0f} ms/iter"
    _say(summary)
    _say(f"run directory: {a.out}  (samples in {a.out}/samples, checkpoints in {a.out}/checkpoints)")
    return 128 + signal.Signals[result["signal"]].value if result.get("signal") else 0


def cmd_sample(a) -> None:
    from .commands import sample_job

    sample_job(a.run, a.out, n=a.n, seed=a.seed, batch_size=a.batch_size, nrow=a.nrow, overrides=a.overrides,
               progress=not a.quiet, weights=a.weights, checkpoint=a.checkpoint)
    _say(f"wrote {a.n} samples to {a.out}")


def cmd_interpolate(a) -> None:
    from .commands import interpolate_job

    interpolate_job(a.run, a.out, pairs=a.pairs, n_rho=a.columns, rhos=a.rho, seed=a.seed, observed=a.observed,
                    steps=a.steps, lr=a.lr, overrides=a.overrides, checkpoint=a.checkpoint)
    _say(f"wrote {a.out}")


def cmd_reconstruct(a) -> None:
    from .commands import reconstruct_job

    r = reconstruct_job(a.run, a.out, n=a.n, steps=a.steps, lr=a.lr, images=a.images, seed=a.seed,
                        segments=a.segments, overrides=a.overrides, progress=not a.quiet, checkpoint=a.checkpoint)
    line = f"mse {r['mse']:.5f} ({r['split']} images)"
    if "mse_heldout" in r:
        line += f", mse_heldout {r['mse_heldout']:.5f}"
    _say(line)
    _say(f"wrote {a.out} and {a.out.rsplit('.', 1)[0]}.json")


def cmd_evaluate(a) -> None:
    from .evaluation import evaluate, format_table

    r = evaluate(a.run, n=a.n, seed=a.seed, inception_weights=a.inception_weights, rec_n=a.rec_n,
                 rec_steps=a.rec_steps, overrides=a.overrides, progress=not a.quiet, checkpoint=a.checkpoint)
    if r:
        _say(format_table(r))
        _say(f"wrote {a.run}/eval.json and {a.run}/report.html")


def cmd_report(a) -> None:
    from .evaluation.report import write_report

    _say(f"wrote {write_report(a.run)}")


def cmd_bench(a) -> None:
    from .bench import bench, format_report
    from .presets import resolve

    cfg = resolve(a.config, a.overrides)
    print(format_report(bench(cfg, iters=a.iters, warmup=a.warmup)))


def cmd_download(a) -> None:
    from .data.download import download

    _say(f"ready: {download(a.name, a.root, a.url, progress=not a.quiet)}")


def build_parser() -> argparse.ArgumentParser:
    p = T.OneLineParser(prog="shortrun", description="Learn and use short-run MCMC toward an EBM.")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    from .version import __version__, git_commit
    commit = git_commit()
    p.add_argument("--version", action="version",
                   version=f"shortrun {__version__}" + (f" (commit {commit})" if commit else ""))
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="learn a short-run sampler (Algorithm 1)")
    from .presets import PRESETS
    t.add_argument("--config", type=T.in_path, help=f"preset name ({', '.join(PRESETS)}; *_paper: the authors' exact settings) "
                   "or a .json/.toml file; default digits")
    t.add_argument("--out", required=True, type=T.out_dir, help="run directory")
    t.add_argument("--iters", type=T.at_least(0), help="total iterations (overrides train.iters)")
    t.add_argument("--max-time", type=T.positive, help="stop cleanly after this many seconds")
    t.add_argument("--seed", type=T.seed, help="random seed (train.seed)")
    t.add_argument("--resume", action="store_true", help="continue RUN from its latest checkpoint")
    t.add_argument("--dry-run", action="store_true", help="print the resolved config and parameter count, "
                   "and with --resume the iteration it would continue from; nothing is trained")
    _finish(t, cmd_train)

    s = sub.add_parser("sample", help="synthesize examples with a trained run")
    _add_run(s, checkpoint=True)
    s.add_argument("--n", "--num-samples", dest="n", type=T.at_least(1), default=64,
                   help="number of samples (--num-samples: the same, for use under torchrun)")
    s.add_argument("--out", required=True, type=T.out_file(".png", ".npz"),
                   help="FILE.png (grid or scatter) or FILE.npz (arr_0)")
    s.add_argument("--seed", type=T.seed, default=0, help="same seed, same samples, whatever the batch size")
    s.add_argument("--batch-size", type=T.at_least(1), default=64, help="chains run at once")
    s.add_argument("--nrow", type=T.at_least(1), help="images per grid row")
    s.add_argument("--weights", choices=("average", "raw"), default="average",
                   help="the weight average where training kept one (train.ema), or the last iterate")
    _finish(s, cmd_sample)

    i = sub.add_parser("interpolate", help="interpolate between noise codes (or observed images)")
    _add_run(i, checkpoint=True)
    i.add_argument("--out", required=True, type=T.out_file(".png"), help="FILE.png")
    i.add_argument("--pairs", type=T.at_least(1), default=8, help="rows: pairs of endpoints")
    i.add_argument("--columns", type=T.at_least(1), default=10, help="number of rho values from 1 to 0")
    i.add_argument("--rho", type=T.rhos, help="explicit comma-separated rho values in [0, 1], e.g. 1,0.75,0.5,0.25,0")
    i.add_argument("--observed", action="store_true", help="between observed training images via their codes")
    i.add_argument("--steps", type=T.at_least(0), default=200, help="descent steps to infer codes (with --observed)")
    i.add_argument("--lr", type=T.positive, default=0.05, help="Adam step size for inferring codes")
    i.add_argument("--seed", type=T.seed, default=0)
    _finish(i, cmd_interpolate)

    r = sub.add_parser("reconstruct", help="reconstruct observed images by descent on z through the sampler")
    _add_run(r, checkpoint=True)
    r.add_argument("--out", required=True, type=T.out_file(".png"),
                   help="FILE.png; FILE.json gets the errors and settings")
    r.add_argument("--n", type=T.at_least(1), default=8, help="images per split (training and held-out)")
    r.add_argument("--images", type=T.in_path, help="a folder of images, one image file, or an .npz (arr_0 uint8 [N,H,W,C]) instead")
    r.add_argument("--steps", type=T.at_least(0), default=200, help="gradient-descent steps on z (the paper: 200)")
    r.add_argument("--lr", type=T.positive, default=0.05, help="Adam step size on z")
    r.add_argument("--segments", type=T.at_least(0), default=0,
                   help="gradient checkpointing: keep only this many states along the chain (0 = off)")
    r.add_argument("--seed", type=T.seed, default=0)
    _finish(r, cmd_reconstruct)

    e = sub.add_parser("evaluate", help="metrics, diagnostics and RUN/report.html for a trained run")
    _add_run(e, checkpoint=True)
    e.add_argument("--n", "--num-samples", dest="n", type=T.at_least(2), default=1000,
                   help="samples to evaluate (the paper: 40,000 for FID); --num-samples under torchrun")
    e.add_argument("--seed", type=T.seed, default=0)
    e.add_argument("--inception-weights", help="local Inception file for FID/IS (or SHORTRUN_INCEPTION_WEIGHTS)")
    e.add_argument("--rec-n", type=T.at_least(1), default=16, help="images per split to reconstruct")
    e.add_argument("--rec-steps", type=T.at_least(0), default=200, help="descent steps per reconstruction")
    _finish(e, cmd_evaluate)

    rp = sub.add_parser("report", help="(re)write RUN/report.html from what RUN holds")
    _add_run(rp)
    _finish(rp, cmd_report, overrides=False)

    from .data.download import NAMES  # standard library only: cheap to import
    d = sub.add_parser("download", help="fetch a dataset or the Inception weights (the only command that "
                       "uses the network; files are checksummed)")
    d.add_argument("name", choices=NAMES, help="what to fetch")
    d.add_argument("--root", help="destination (default ./data/NAME, where the loaders look when data.root is "
                   "empty; inception: the cache folder, where evaluate looks)")
    d.add_argument("--url", help="a mirror: the full file URL of a one-file source, or the base URL of a set")
    _finish(d, cmd_download, overrides=False)

    b = sub.add_parser("bench", help="time training iterations and synthesis on fake data")
    b.add_argument("--config", default="cifar10", type=T.in_path, help="preset or config file (data.name is set to fake)")
    b.add_argument("--iters", type=T.at_least(1), default=5, help="timed iterations (median reported)")
    b.add_argument("--warmup", type=T.at_least(0), default=2, help="untimed iterations first")
    _finish(b, cmd_bench)
    for command in sub.choices.values():
        command.formatter_class = _WithDefaults
    return p


class _WithDefaults(argparse.HelpFormatter):
    """--help names each option's default, where it has one its help does not already give."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if (action.option_strings and default is not None and default is not False and default != argparse.SUPPRESS
                and "default" not in text and not isinstance(default, list)):
            text += " (default: %(default)s)"
        return text


class Terminated(BaseException):
    """SIGTERM (sent by `timeout`, SLURM, torchrun) as an exception, so that what a command was
    writing is cleaned up on the way out, as for Ctrl-C; `train` installs its own clean stop."""


def _on_sigterm(signum, frame):
    raise Terminated


def _out_of_memory(e: RuntimeError) -> bool:
    """torch reports a failed allocation as a RuntimeError (std::bad_alloc on the CPU, OutOfMemoryError
    on GPUs), not as Python's MemoryError."""
    text = str(e)
    return ("bad_alloc" in text or "can't allocate memory" in text or "out of memory" in text.lower()
            or type(e).__name__ == "OutOfMemoryError")


def main(argv: list[str] | None = None) -> None:
    import signal

    args = build_parser().parse_args(argv)
    from .allocator import keep_freed_memory
    keep_freed_memory()  # before the first tensor: see allocator.py
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (main() called from a thread): keep the default
        previous = None
    try:
        code = args.fn(args)
        from .distributed import shutdown
        shutdown()
        if code:
            sys.exit(code)
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
    except RuntimeError as e:
        if not _out_of_memory(e):
            raise
        if args.debug:
            traceback.print_exc()
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        print(f"shortrun: error: out of memory ({first}); lower --batch-size, --n or train.batch_size",
              file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("shortrun: interrupted", file=sys.stderr)
        sys.exit(130)
    except Terminated:
        print("shortrun: terminated", file=sys.stderr)
        sys.exit(143)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
