"""The bodies of the CLI's commands on a run directory: open the run, do the task, write the
files, return a summary. `shortrun sample|interpolate|reconstruct` each call one of these;
`shortrun evaluate` is `evaluation.evaluate`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from . import distributed
from .config import DataConfig
from .data import load_dataset
from .data.transforms import fit_images
from .errors import UserError
from .evaluation.task_figures import check_images, interpolation_figure, reconstruction_figure, train_and_heldout
from .images import save_examples
from .run import Run, open_run
from .tasks.interpolation import default_rhos
from .tasks.synthesis import synthesize_sharded


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


def interpolate_job(run_dir, out, *, pairs: int = 8, n_rho: int = 10, rhos=None, seed: int = 0,
                    observed: bool = False, steps: int = 200, lr: float = 0.05, overrides=None) -> dict:
    run = open_run(run_dir, overrides)
    return interpolation_figure(run, out, pairs=pairs, rhos=list(rhos) if rhos else default_rhos(n_rho), seed=seed,
                                observed=observed, steps=steps, lr=lr)


def reconstruct_job(run_dir, out, *, n: int = 8, steps: int = 200, lr: float = 0.05, images=None,
                    seed: int = 0, segments: int = 0, overrides=None, progress: bool = True) -> dict:
    """Reconstructs n training and n held-out images (or the given ones); writes out.png and out.json."""
    run = open_run(run_dir, overrides)
    check_images(run)
    sets = {"given": load_images(images, run)[:n]} if images else train_and_heldout(load_dataset(run.cfg.data), n, seed)
    return reconstruction_figure(run, out, sets, steps=steps, lr=lr, seed=seed, segments=segments, progress=progress)
