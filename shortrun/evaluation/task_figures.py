"""The figures of the paper's three uses of a trained sampler, drawn from an opened run:
interpolation (Fig. 3) and reconstruction (Fig. 4, with its error curves). The CLI commands
and `evaluate` both draw them here, from a run and a dataset they opened once.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from ..atomic import write_text_atomic
from ..data import Dataset, load_dataset
from ..errors import UserError
from ..run import Run
from ..tasks import interpolate, interpolate_observed, reconstruct
from ..tasks.interpolation import default_rhos
from .figures import curve_plot, image_table


def check_images(run: Run) -> None:
    if run.codec.kind != "image":
        raise UserError("interpolation and reconstruction figures need an image run, not 2-D points")


def observed_images(ds: Dataset, split: str, n: int, seed: int = 0) -> torch.Tensor:
    """n stored examples of a dataset ('train' or 'test'), picked by a seeded permutation."""
    pool = ds.train if split == "train" else ds.test
    if pool is None or len(pool) == 0:
        raise UserError(f"dataset '{ds.name}' has no {split} images")
    pick = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))[:n]
    return pool[pick]


def interpolation_figure(run: Run, out, *, pairs: int = 8, rhos=None, seed: int = 0, observed: bool = False,
                         steps: int = 200, lr: float = 0.05, ds: Dataset | None = None) -> dict:
    """Rows of M_θ(z_ρ, u) from ρ = 1 to 0; with `observed`, between training images via their codes."""
    check_images(run)
    rhos = list(rhos) if rhos else default_rhos(10)
    if observed:
        ds = ds or load_dataset(run.cfg.data)
        have = len(ds.train) if ds.train is not None else 0
        if 2 * pairs > have:
            raise UserError(f"--observed --pairs {pairs} needs {2 * pairs} distinct training images; "
                            f"dataset '{ds.name}' has {have}, so at most --pairs {have // 2}")
        x = run.codec.to_model(observed_images(ds, "train", 2 * pairs, seed)).to(run.model.device)
        rows = interpolate_observed(run.model, x[:pairs], x[pairs:], rhos, seed=seed, steps=steps, lr=lr)
        ends = run.codec.from_model(x)
        middle = run.codec.from_model(rows.flatten(0, 1)).unflatten(0, rows.shape[:2])
        table = torch.cat([ends[:pairs, None], middle, ends[pairs:, None]], dim=1)
        labels = ["x₁"] + [f"ρ={r:.2f}" for r in rhos] + ["x₂"]
    else:
        rows = interpolate(run.model, pairs, rhos, seed=seed)
        table = run.codec.from_model(rows.flatten(0, 1)).unflatten(0, rows.shape[:2])
        labels = [f"ρ={r:.2f}" for r in rhos]
    title = "M(μ + ρ (z₁−μ) + √(1−ρ²) (z₂−μ), u), u fixed along each row (μ: p₀'s mean)"
    image_table(out, [(("between observed images" if observed else "between noise codes"), table)], labels, title)
    return {"out": str(out), "pairs": pairs, "rhos": rhos}


def reconstruction_figure(run: Run, out, sets: dict[str, torch.Tensor], *, steps: int = 200, lr: float = 0.05,
                          seed: int = 0, segments: int = 0, progress: bool = True) -> dict:
    """Reconstructs each named set of stored images; writes OUT (M_θ(z_t) over t beside the
    images), OUT_curve.png (the error curves) and OUT.json. Returns what OUT.json holds: "mse" (of
    the first set), "split", "splits" ({name: {"mse", "curve", "n", "seconds"}}), "mse_heldout"
    where a held-out set was given, and the settings."""
    check_images(run)
    out = Path(out)
    record = tuple(sorted({0, steps // 20, steps // 8, steps // 4, steps // 2, steps}))
    summary, panels, curves = {}, [], {}
    for name, imgs in sets.items():
        start = time.perf_counter()
        rec = reconstruct(run.model, run.codec.to_model(imgs), steps=steps, lr=lr, seed=seed,
                          segments=segments, record=record, progress=progress)
        summary[name] = {"mse": rec.mse, "curve": rec.curve, "n": len(imgs),
                         "seconds": time.perf_counter() - start}
        frames = [run.codec.from_model(rec.frames[t]) for t in record]
        # one column per image, one row per descent step: wide and short, whatever the number of images
        panels.append((f"{name} images: observed (top), then M(z_t) over descent steps t (final mse {rec.mse:.4f})",
                       torch.stack([imgs] + frames, dim=0)))
        curves[name] = rec.curve
    image_table(out, panels, None, row_labels=["observed"] + [f"t={t}" for t in record])
    curve_plot(out.with_name(out.stem + "_curve.png"), curves, "descent step t", "mse ([0, 1] scale)",
               "reconstruction error", logy=True)
    first = next(iter(summary))
    result = {"mse": summary[first]["mse"], "split": first, "splits": summary,
              "settings": {"n": max(len(v) for v in sets.values()), "steps": steps, "lr": lr, "optimizer": "adam",
                           "seed": seed, "segments": segments, "n_steps": run.model.sampler.n_steps,
                           "run_iter": run.iter}}
    if "heldout" in summary:
        result["mse_heldout"] = summary["heldout"]["mse"]
    write_text_atomic(out.with_suffix(".json"), json.dumps(result, indent=2) + "\n")
    return result


def train_and_heldout(ds: Dataset, n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """n training and n held-out images (training only, with a note, where there is no held-out split)."""
    sets = {"train": observed_images(ds, "train", n, seed)}
    try:
        sets["heldout"] = observed_images(ds, "test", n, seed)
    except UserError:
        print("note: the dataset has no held-out split; reconstructing training images only", file=sys.stderr)
    return sets
