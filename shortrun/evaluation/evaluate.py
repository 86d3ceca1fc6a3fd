"""`shortrun evaluate --run RUN`: every number and figure that judges a trained run, written to
RUN/eval.json, RUN/report/*.png and RUN/report.html.

- images: FID and IS (torch-fidelity, Inception weights from a local file only), and for the
  built-in digits a Fréchet distance in a small digits classifier's features plus its label
  entropy; reconstruction error on training and held-out images;
- 2-D toys: KL and total variation between the true density, exp f_θ and the samples' density;
- moment-matching models: ‖E_q[h] − E_data[h]‖ / ‖E_data[h]‖;
- diagnostics: training curves and long-run chains.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


from .. import distributed
from ..atomic import write_text_atomic
from ..data import load_dataset
from ..errors import UserError
from ..images import save_examples
from ..model import ShortRun
from ..paths import companions_free, unwritable
from ..run import open_run
from ..tasks.synthesis import synthesize_sharded
from ..version import provenance
from .diagnostics import long_run_figure, training_curves
from .report import write_report
from .task_figures import interpolation_figure, reconstruction_figure, train_and_heldout


def _image_metrics(run, ds, samples, n, inception_weights, notes) -> dict:
    from ..data.download import cache_dir
    from .metrics.fid import fid_is, inception_weights_path, missing_message

    m = {}
    if ds.name == "digits":
        from .metrics.digits import digits_scale, digits_scores
        m.update({k: v for k, v in digits_scores(samples).items() if k != "n"})
        m.update(digits_scale(len(samples)))
    try:
        weights = inception_weights_path(inception_weights)
        if weights is None:
            raise UserError(missing_message())
        reference = ds.train[:max(n, 1)]
        cache_key = f"{ds.name}-{run.codec.shape[-1]}px-{run.codec.shape[0]}c-{len(reference)}"
        m.update(fid_is(samples, reference, weights, cache_dir() / "fid_stats", cache_key))
    except UserError as e:
        m["fid"] = None
        notes.append(f"FID/IS not computed: {e}")
        print(f"warning: FID/IS not computed: {e}", file=sys.stderr)
    return m


def evaluate(run_dir, *, n: int = 1000, seed: int = 0, inception_weights: str | None = None,
             rec_n: int = 16, rec_steps: int = 200, overrides=None, progress: bool = True,
             checkpoint: str = "latest") -> dict:
    run_dir = Path(run_dir)
    if n < 2:  # the metrics compare means and covariances of the samples
        raise UserError(f"--n must be at least 2 to evaluate (got {n})")
    if inception_weights is not None:  # given by hand: a wrong path is an error, not a note after the work
        from .metrics.fid import check_weights_file
        check_weights_file(inception_weights)
    world = distributed.setup("auto")
    run = open_run(run_dir, overrides, device=distributed.device_for(world, "auto"), checkpoint=checkpoint)
    problem = unwritable(run_dir)  # before the sampling, not after; on every rank, so none waits
    if problem:
        raise UserError(f"{problem} (evaluate writes eval.json and report/ there; copy the run somewhere writable)")
    companions_free([run_dir / "eval.json", run_dir / "report.html"], option=None)
    if (run_dir / "report").exists() and not (run_dir / "report").is_dir():
        raise UserError(f"{run_dir / 'report'} is a file, where evaluate writes its figures; move it")
    x = synthesize_sharded(run.model, n, world=world, seed=seed, progress=progress)
    if not world.is_main:
        distributed.barrier(world)
        return {}
    samples = run.codec.from_model(x)
    figs = run_dir / "report"
    figs.mkdir(parents=True, exist_ok=True)
    notes, metrics = [], {"n_samples": n, "iter": run.iter}
    ds = load_dataset(run.cfg.data)  # once: decoding a large image set is slow
    if run.codec.kind == "image":
        save_examples(samples[:100], figs / "samples.png", kind="image", nrow=10)
        metrics.update(_image_metrics(run, ds, samples, n, inception_weights, notes))
        sets = train_and_heldout(ds, rec_n, seed)
        rec = reconstruction_figure(run, figs / "reconstruction.png", sets, steps=rec_steps, seed=seed,
                                    progress=progress)
        # the scale: predicting every image by the mean training image
        mean = ds.train.float().mean(0) / 255
        metrics["reconstruction_mse_mean_image"] = float(((sets["train"].float() / 255 - mean) ** 2).mean())
        metrics["reconstruction_mse_train"] = rec["splits"]["train"]["mse"]
        if "heldout" in rec["splits"]:
            metrics["reconstruction_mse_heldout"] = rec["splits"]["heldout"]["mse"]
        interpolation_figure(run, figs / "interpolation.png", pairs=8, seed=seed)
        long_run_figure(run.model, run.codec.from_model, figs / "long_run.png", seed=seed)
    else:
        from .metrics.toy import toy_panels
        save_examples(samples, figs / "samples.png", kind="points", lim=1.05 * run.codec.scale)
        metrics.update(toy_panels(figs / "toy_panels.png", run.model, run.cfg.data.name, samples))
    if run.cfg.model.name == "moments":  # the gap before learning (θ = 0, same h) and after
        from .moments import moment_check
        untrained = ShortRun.from_config(run.cfg, run.codec.shape)
        untrained.start = run.model.start  # the same p_0 (sampler.init=fitted), only θ = 0
        check = moment_check(run.model, untrained, ds.to_model(ds.train[:n]), n_samples=n, seed=seed)
        metrics.update({f"moment_{k}": v for k, v in check.items()})
    if (run_dir / "metrics.jsonl").exists():
        training_curves(run_dir / "metrics.jsonl", figs / "training.png")
    result = {"iter": run.iter, "metrics": metrics, "notes": notes,
              "settings": {"n": n, "seed": seed, "rec_n": rec_n, "rec_steps": rec_steps, "checkpoint": checkpoint},
              "code": {"evaluated_with": provenance(), "trained_with": run.provenance}}
    write_text_atomic(run_dir / "eval.json", json.dumps(result, indent=2, default=float) + "\n")
    write_report(run_dir)
    distributed.barrier(world)
    return result


def format_table(result: dict) -> str:
    rows = [(k, v) for k, v in result["metrics"].items() if not isinstance(v, (list, dict))]
    width = max(len(k) for k, _ in rows)
    fmt = lambda v: "n/a" if v is None else (f"{v:.5g}" if isinstance(v, float) else str(v))
    return "\n".join(f"{k:<{width}}  {fmt(v)}" for k, v in rows)
