"""The bodies of the CLI's commands on a run directory: open the run, do the task, write the
files, return a summary. `shortrun sample|interpolate|reconstruct` each call one of these;
`shortrun evaluate` is `evaluation.evaluate`.
"""
from __future__ import annotations

import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch

from . import distributed
from .atomic import atomic_write
from .config import DataConfig
from .data import load_dataset
from .data.transforms import fit_images
from .errors import UserError
from .evaluation.task_figures import check_images, interpolation_figure, reconstruction_figure, train_and_heldout
from .images import MAX_GRID_PIXELS, npz_layout, save_examples, write_npz_stream
from .paths import companions_free, nearest_existing, output_path
from .progress import bar as progress_bar
from .run import Run, open_run
from .tasks.interpolation import default_rhos
from .tasks.synthesis import shard_range, synthesize, synthesize_sharded


def sample_job(run_dir, out, *, n: int = 64, seed: int = 0, batch_size: int = 64, nrow: int | None = None,
               overrides=None, progress: bool = True, weights: str = "average", checkpoint: str = "latest") -> dict:
    if n < 1:
        raise UserError("--n must be at least 1")
    out = output_path(out, (".png", ".npz"), option="out")  # before the work, not after it
    world = distributed.setup(overrides_device(overrides))
    run = open_run(run_dir, overrides, device=distributed.device_for(world, "auto"), weights=weights,
                   checkpoint=checkpoint)
    if Path(out).suffix == ".npz":
        sample_npz(run, Path(out), n, world=world, seed=seed, batch_size=batch_size, progress=progress)
    else:  # a grid or a scatter plot needs every example at once (and is small)
        pixels = n * int(np.prod(run.codec.shape[1:]))
        if run.codec.kind == "image" and pixels > MAX_GRID_PIXELS:
            raise UserError(f"a grid of {n} images would have {pixels / 1e6:.0f}M pixels, more than image viewers "
                            f"open; write FILE.npz, or draw fewer (--n)")
        x = synthesize_sharded(run.model, n, world=world, seed=seed, batch_size=batch_size, progress=progress)
        if world.is_main:
            warn_nonfinite(_count_nonfinite(x), n, out)
            save_examples(run.codec.from_model(x), out, kind=run.codec.kind, nrow=nrow, lim=1.05 * run.codec.scale)
    distributed.barrier(world)
    return {"n": n, "out": str(out)}


def _check_room(out: Path, size: int) -> None:
    """Refuses, before any chain runs, a file the disk under OUT has no room for (shards and the
    joined file side by side under torchrun)."""
    free = shutil.disk_usage(nearest_existing(out.parent)).free  # OUT's folder may not exist yet
    if size > free:
        raise UserError(f"{out} would take {size / 1e9:.2f} GB, but its disk has {free / 1e9:.2f} GB free; "
                        "draw fewer samples (--n) or write elsewhere")


def sample_npz(run: Run, out: Path, n: int, *, world, seed: int = 0, batch_size: int = 64,
               progress: bool = False) -> None:
    """Writes samples to OUT.npz a batch at a time, so memory stays flat in n. Under torchrun each
    rank writes the raw bytes of its own examples to a shard beside OUT, and rank 0 joins the shards,
    in rank order, into the .npz: the same file as one process writes (each example has its seed)."""
    c, *rest = run.codec.shape
    item, dtype = ((*rest, c), np.uint8) if run.codec.kind == "image" else ((c, *rest), np.float32)
    mine = shard_range(n, world)
    _check_room(out, n * int(np.prod(item)) * np.dtype(dtype).itemsize * (2 if world.size > 1 else 1))

    bad = [0]  # examples whose chain left the finite numbers, counted as they are drawn

    with progress_bar(total=len(mine), disable=not (progress and world.is_main), desc="sample") as bar:
        def parts():
            for start in range(mine.start, mine.stop, batch_size):
                m = min(batch_size, mine.stop - start)
                x = synthesize(run.model, m, seed=seed, batch_size=m, first=start)
                bad[0] += _count_nonfinite(x)
                bar.update(m)
                yield npz_layout(run.codec.from_model(x), run.codec.kind)

        if world.size == 1:
            write_npz_stream(out, (n, *item), dtype, parts())
            warn_nonfinite(bad[0], n, out)
            return
        shards = [out.with_name(f"{out.name}.rank{r}.tmp") for r in range(world.size)]
        try:
            atomic_write(shards[world.rank], lambda fh: [fh.write(p.tobytes()) for p in parts()])
            warn_nonfinite(bad[0], len(mine), out)
            distributed.barrier(world)
            if world.is_main:
                try:
                    write_npz_stream(out, (n, *item), dtype, _read_chunks(shards))
                finally:  # past the barrier every shard is complete: rank 0 owns them all
                    for shard in shards:
                        shard.unlink(missing_ok=True)
        except BaseException:
            shards[world.rank].unlink(missing_ok=True)
            raise


def _count_nonfinite(x: torch.Tensor) -> int:
    return int((~torch.isfinite(x.flatten(1))).any(dim=1).sum()) if len(x) else 0


def warn_nonfinite(bad: int, n: int, out) -> None:
    """Chains that overflowed give NaN or inf, which no image format holds: say so rather than write
    them silently as arbitrary pixels."""
    if bad:
        print(f"warning: {bad} of {n} samples in {out} are not finite (the chain overflowed); their pixels "
              f"are meaningless. A smaller sampler.step_size, or the run's --checkpoint best-healthy, may help",
              file=sys.stderr)


def _read_chunks(paths: list[Path], size: int = 1 << 22):
    for path in paths:
        with open(path, "rb") as fh:
            while chunk := fh.read(size):
                yield chunk


def overrides_device(overrides) -> str:
    """The train.device given with --set, if any (it decides gloo or nccl)."""
    for item in overrides or []:
        if item.replace(" ", "").startswith("train.device="):
            return item.split("=", 1)[1].strip()
    return "auto"


def load_images(path: str | Path, run: Run) -> torch.Tensor:
    """A folder of images, one image file or an .npz (arr_0 uint8 [N, H, W, C]), brought to the run's
    size and channels."""
    path = Path(path)
    c, size = run.codec.shape[0], run.codec.shape[-1]
    if path.suffix == ".npz":
        return fit_images(torch.from_numpy(_npz_images(path)).permute(0, 3, 1, 2), size, c)
    from .data.vision import IMAGE_EXTS, LOADERS
    if not path.exists():
        raise UserError(f"--images {path}: no such file or folder")
    if path.is_file() and path.suffix.lower() not in IMAGE_EXTS:
        raise UserError(f"--images {path}: expected a folder of images, one image file "
                        f"({', '.join(sorted(e[1:] for e in IMAGE_EXTS))}) or an .npz")
    return LOADERS["folder"](DataConfig(name="folder", root=str(path), image_size=size, channels=c,
                                        holdout=0)).train


def _npz_images(path: Path) -> np.ndarray:
    """arr_0 of an .npz as uint8 [N, H, W, C]; anything else is one line naming the file and arr_0."""
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):  # else numpy tries it as a pickle and suggests allow_pickle
        raise UserError(f"{path}: not an .npz archive (a zip of .npy arrays, as numpy.savez writes)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "arr_0" not in npz.files:
                raise UserError(f"{path}: no arr_0 in the archive (it holds: {', '.join(npz.files) or 'nothing'})")
            arr = npz["arr_0"]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        reason = "it holds Python objects" if "allow_pickle" in str(e) else " ".join(str(e).split())
        raise UserError(f"{path}: cannot read arr_0 as uint8 images ({reason})") from None
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or arr.dtype != np.uint8:
        raise UserError(f"{path}: arr_0 must be uint8 [N, H, W, C], got {arr.dtype} {list(arr.shape)}")
    if min(arr.shape[:3]) == 0:
        raise UserError(f"{path}: arr_0 holds no images (shape {list(arr.shape)})")
    if arr.shape[3] not in (1, 3, 4):
        raise UserError(f"{path}: arr_0 has {arr.shape[3]} channels; images have 1 (grey), 3 (RGB) or 4 (RGBA)")
    return arr


def interpolate_job(run_dir, out, *, pairs: int = 8, n_rho: int = 10, rhos=None, seed: int = 0,
                    observed: bool = False, steps: int = 200, lr: float = 0.05, overrides=None, checkpoint: str = "latest") -> dict:
    out = output_path(out, (".png",), option="out")  # before the work, not after it
    run = open_run(run_dir, overrides, checkpoint=checkpoint)
    return interpolation_figure(run, out, pairs=pairs, rhos=list(rhos) if rhos else default_rhos(n_rho), seed=seed,
                                observed=observed, steps=steps, lr=lr)


def reconstruct_job(run_dir, out, *, n: int = 8, steps: int = 200, lr: float = 0.05, images=None,
                    seed: int = 0, segments: int = 0, overrides=None, progress: bool = True, checkpoint: str = "latest") -> dict:
    """Reconstructs n training and n held-out images (or the given ones); writes out.png and out.json."""
    out = output_path(out, (".png",), option="out")  # before the work, not after it
    stem = Path(out).with_suffix("")
    companions_free([f"{stem}.json", f"{stem}_curve.png"], option="out")
    run = open_run(run_dir, overrides, checkpoint=checkpoint)
    check_images(run)
    sets = {"given": load_images(images, run)[:n]} if images else train_and_heldout(load_dataset(run.cfg.data), n, seed)
    return reconstruction_figure(run, out, sets, steps=steps, lr=lr, seed=seed, segments=segments, progress=progress)
