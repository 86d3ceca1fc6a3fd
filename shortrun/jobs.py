"""Whole jobs on a run directory, as the CLI runs them: load the run, do the task, write the
files, return a summary. `shortrun sample|interpolate|reconstruct` each call one of these.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .config import DataConfig
from .data import load_dataset
from .data.transforms import fit_images
from .errors import UserError
from .figures import curve_plot, image_table
from .images import save_examples
from .run import Run, open_run
from . import distributed
from .tasks import interpolate, interpolate_observed, reconstruct
from .tasks.synthesis import synthesize_sharded
from .tasks.interpolation import default_rhos


def sample_job(run_dir, out, *, n: int = 64, seed: int = 0, batch_size: int = 64, nrow: int | None = None,
               overrides=None, progress: bool = True) -> dict:
    if n < 1:
        raise UserError("--n must be at least 1")
    world = distributed.setup(overrides_device(overrides))
    run = open_run(run_dir, overrides, device=distributed.device_for(world, "auto"))
    x = run.codec.from_model(synthesize_sharded(run.model, n, world=world, seed=seed, batch_size=batch_size,
                                                progress=progress))
    if world.is_main:
        save_examples(x, out, kind=run.codec.kind, nrow=nrow, lim=1.05 * run.codec.scale)
    distributed.barrier(world)
    return {"n": n, "out": str(out)}


def overrides_device(overrides) -> str:
    """The train.device given with --set, if any (it decides gloo or nccl)."""
    for item in overrides or []:
        if item.replace(" ", "").startswith("train.device="):
            return item.split("=", 1)[1].strip()
    return "auto"


def observed_images(run: Run, split: str, n: int, seed: int = 0) -> torch.Tensor:
    """n stored examples of the run's dataset ('train' or 'test'), picked by a seeded permutation."""
    ds = load_dataset(run.cfg.data)
    pool = ds.train if split == "train" else ds.test
    if pool is None or len(pool) == 0:
        raise UserError(f"dataset '{ds.name}' has no {split} images")
    pick = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))[:n]
    return pool[pick]


def load_images(path: str | Path, run: Run) -> torch.Tensor:
    """A folder of images or an .npz (arr_0 uint8 [N, H, W, C]), brought to the run's size and channels."""
    path = Path(path)
    c, size = run.codec.shape[0], run.codec.shape[-1]
    if path.suffix == ".npz":
        try:
            arr = np.load(path, allow_pickle=False)["arr_0"]
        except (OSError, KeyError, ValueError) as e:
            raise UserError(f"cannot read images from {path}: {e}") from None
        if arr.ndim == 3:
            arr = arr[..., None]
        if arr.ndim != 4 or arr.dtype != np.uint8:
            raise UserError(f"{path}: arr_0 must be uint8 [N, H, W, C], got {arr.dtype} {list(arr.shape)}")
        return fit_images(torch.from_numpy(arr).permute(0, 3, 1, 2), size, c)
    from .data.vision import LOADERS
    return LOADERS["folder"](DataConfig(name="folder", root=str(path), image_size=size, channels=c,
                                        holdout=0)).train


def _check_images(run: Run):
    if run.codec.kind != "image":
        raise UserError("interpolation and reconstruction figures need an image run, not 2-D points")


def interpolate_job(run_dir, out, *, pairs: int = 8, n_rho: int = 10, rhos=None, seed: int = 0,
                    observed: bool = False, steps: int = 200, lr: float = 0.05, overrides=None) -> dict:
    run = open_run(run_dir, overrides)
    _check_images(run)
    rhos = list(rhos) if rhos else default_rhos(n_rho)
    if observed:  # between pairs of observed images, through their reconstructed codes
        x = run.codec.to_model(observed_images(run, "train", 2 * pairs, seed)).to(run.model.device)
        rows = interpolate_observed(run.model, x[:pairs], x[pairs:], rhos, seed=seed, steps=steps, lr=lr)
        ends = run.codec.from_model(x)
        table = torch.cat([ends[:pairs, None], run.codec.from_model(rows.flatten(0, 1)).unflatten(0, rows.shape[:2]),
                           ends[pairs:, None]], dim=1)
        labels = ["x₁"] + [f"ρ={r:.2f}" for r in rhos] + ["x₂"]
    else:
        rows = interpolate(run.model, pairs, rhos, seed=seed)
        table = run.codec.from_model(rows.flatten(0, 1)).unflatten(0, rows.shape[:2])
        labels = [f"ρ={r:.2f}" for r in rhos]
    title = "M(ρ z₁ + √(1−ρ²) z₂, u), u fixed along each row"
    image_table(out, [(("between observed images" if observed else "between noise codes"), table)], labels, title)
    return {"out": str(out), "pairs": pairs, "rhos": rhos}


def reconstruct_job(run_dir, out, *, n: int = 8, steps: int = 200, lr: float = 0.05, images=None,
                    seed: int = 0, segments: int = 0, overrides=None, progress: bool = True) -> dict:
    """Reconstructs n training and n held-out images (or the given ones); writes out.png and out.json."""
    out = Path(out)
    run = open_run(run_dir, overrides)
    _check_images(run)
    if images:
        sets = {"given": load_images(images, run)[:n]}
    else:
        sets = {"train": observed_images(run, "train", n, seed)}
        try:
            sets["heldout"] = observed_images(run, "test", n, seed)
        except UserError:
            print("note: the dataset has no held-out split; reconstructing training images only", file=sys.stderr)
    record = tuple(sorted({0, steps // 20, steps // 8, steps // 4, steps // 2, steps}))
    summary, panels, curves = {}, [], {}
    for name, imgs in sets.items():
        start = time.perf_counter()
        rec = reconstruct(run.model, run.codec.to_model(imgs), steps=steps, lr=lr, seed=seed,
                          segments=segments, record=record, progress=progress)
        summary[name] = {"mse": rec.mse, "curve": rec.curve, "n": len(imgs),
                         "seconds": time.perf_counter() - start}
        frames = [run.codec.from_model(rec.frames[t]) for t in record]
        panels.append((f"{name} images: observed, then M(z_t) over descent steps t (final mse {rec.mse:.4f})",
                       torch.stack([imgs] + frames, dim=1)))
        curves[name] = rec.curve
    image_table(out, panels, ["observed"] + [f"t={t}" for t in record])
    curve_plot(out.with_name(out.stem + "_curve.png"), curves, "descent step t", "mse ([0, 1] scale)",
               "reconstruction error", logy=True)
    first = next(iter(summary))
    result = {"mse": summary[first]["mse"], "split": first, "splits": summary,
              "settings": {"n": n, "steps": steps, "lr": lr, "optimizer": "adam", "seed": seed,
                           "segments": segments, "n_steps": run.model.sampler.n_steps, "run_iter": run.iter}}
    if "heldout" in summary:
        result["mse_heldout"] = summary["heldout"]["mse"]
    try:
        out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    except OSError as e:
        raise UserError(f"cannot write {out.with_suffix('.json')}: {e.strerror}") from None
    return result
