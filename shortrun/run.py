"""Opening a trained run directory: its config, its newest weights, and the map back to data space.

    run = open_run("runs/d1")     # run.model (a ShortRun), run.codec, run.cfg, run.iter
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .config import Config, apply_overrides, validate
from .data import Codec, shape_of
from .errors import UserError
from .model import ShortRun
from .sampler.fitted import FittedStart
from .training import checkpoint as checkpoints
from .training.ema import average_in


@dataclass
class Run:
    path: Path
    cfg: Config
    model: ShortRun
    codec: Codec  # the run's examples: shape, kind, scale (to_model / from_model)
    iter: int
    provenance: dict | None = None  # {"version", "commit"} of the code that wrote the checkpoint


def open_run(run: str | Path, overrides: list[str] | None = None, device: str | None = None,
             weights: str = "average", checkpoint: str = "latest") -> Run:
    """Loads RUN's newest loadable checkpoint; `overrides` (--set key=value) may change the sampler
    (e.g. a long-run chain) or the device, not the network. `device` (if given and the overrides
    name none) places the model, e.g. cuda:LOCAL_RANK under torchrun. `weights`: "average" uses the
    weight average where training kept one (train.ema), "raw" the last iterate. `checkpoint`:
    "latest", "best-healthy" (the one kept from before any divergence) or an iteration number."""
    if weights not in ("average", "raw"):
        raise UserError(f"weights must be average or raw, got {weights!r}")
    path, state = checkpoints.load_selected(run, str(checkpoint))
    meta = state["meta"]
    cfg = Config.from_dict(meta["config"], where=str(path))
    before = cfg.model.__dict__.copy()
    cfg.train.device = "auto"  # where it was trained says nothing about where it is used
    if device is not None:
        cfg.train.device = device
    apply_overrides(cfg, overrides or [])
    if cfg.model.__dict__ != before:
        raise UserError("model.* cannot be changed when loading a trained run")
    validate(cfg)
    shape = tuple(meta["shape"])
    given = shape_of(cfg.data)
    if len(given) != len(shape) or (len(shape) == 3 and given != shape):  # e.g. data.image_size=16 on a 32×32 run
        raise UserError(f"the run was trained on examples of shape {list(shape)}; the data settings given "
                        f"make {list(given)} (drop the --set data.* that changes it)")
    model = ShortRun.from_config(cfg, shape)
    average = average_in(state["extra"]) if weights == "average" else None
    try:
        model.net.load_state_dict(average or state["model"])
    except RuntimeError as e:
        raise UserError(f"{path} does not fit its config's model ({str(e).splitlines()[0]})") from None
    model.net.eval()
    model.start = FittedStart.from_tensors(state["extra"], shape)  # the fitted p_0, where training fitted one
    codec = Codec(meta["kind"], meta.get("scale", 1.0), shape)
    trained_with = {k: meta.get(k) for k in ("version", "commit")} if "version" in meta else None
    return Run(Path(run), cfg, model, codec, meta["iter"], trained_with)
