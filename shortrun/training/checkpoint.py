"""Checkpoints: one safetensors file per save, tensors plus JSON metadata, never a pickle.

Loading a checkpoint can therefore never run code. A save writes a temporary file, fsyncs it
and renames it over the final name, so a kill or a full disk at any instant leaves the
previous checkpoints intact. Files are RUN/checkpoints/ckpt_<iter>.safetensors; the newest one
that loads is the latest.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ..atomic import atomic_write
from ..errors import UserError
from ..paths import read_input
from .schema import check_meta, check_optimizer

FORMAT = "shortrun-checkpoint/1"
NAME = re.compile(r"^ckpt_(\d+)\.safetensors$")


def _flatten_optimizer(state: dict, tensors: dict) -> dict:
    """Adam's per-parameter tensors go into `tensors`; the rest is returned as JSON-able data."""
    plain = {}
    for idx, per_param in state["state"].items():
        for key, value in per_param.items():
            if torch.is_tensor(value):
                tensors[f"optim.{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                plain[f"{idx}.{key}"] = value
    return {"param_groups": state["param_groups"], "plain": plain}


def _unflatten_optimizer(meta: dict, tensors: dict) -> dict:
    state: dict = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = value
    for name, value in meta.get("plain", {}).items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save(path: str | Path, *, net: torch.nn.Module, meta: dict, optimizer=None,
         extra_tensors: dict | None = None) -> Path:
    """Atomically writes weights, optimizer state, extra tensors (the weight average) and JSON metadata."""
    path = Path(path)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    meta = dict(meta, format=FORMAT)
    if optimizer is not None:
        meta["optimizer"] = _flatten_optimizer(optimizer.state_dict(), tensors)
    for k, v in (extra_tensors or {}).items():
        tensors[f"extra.{k}"] = v.detach().cpu().contiguous()
    blob = st_save(tensors, metadata={"shortrun": json.dumps(meta)})
    try:  # a temp file renamed into place: a kill or a full disk never leaves a half checkpoint
        atomic_write(path, lambda fh: fh.write(blob))
    except UserError as e:
        raise UserError(f"{e}; earlier checkpoints are intact") from None
    return path


def load(path: str | Path) -> dict:
    """Returns {"meta", "model", "optimizer", "extra"}; refuses anything that is not our format."""
    path = Path(path)
    blob = read_input(path, "checkpoint")
    try:
        # copies: safetensors' tensors view the file's bytes, which Adam would otherwise update in place
        tensors = {k: v.clone() for k, v in st_load(blob).items()}
        header_len = int.from_bytes(blob[:8], "little")
        header = json.loads(blob[8:8 + header_len])
        meta = json.loads(header["__metadata__"]["shortrun"])
    except (SafetensorError, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise UserError(f"{path} is not a shortrun checkpoint (corrupt, truncated, or another format; "
                        "pickled checkpoints are never loaded)") from None
    broken = sorted(k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all())
    if broken:  # bit rot, or a run saved after diverging with the guard off: never train or sample from it
        raise UserError(f"{path} holds non-finite values ({', '.join(broken[:3])}{', ...' if len(broken) > 3 else ''}); "
                        "the checkpoint is damaged")
    if isinstance(meta, dict) and meta.get("format") != FORMAT:
        raise UserError(f"{path}: unsupported checkpoint format {meta.get('format')!r}")
    check_meta(meta, str(path))  # untrusted: every field the loaders use, before they use it
    model = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    extra = {k[len("extra."):]: v for k, v in tensors.items() if k.startswith("extra.")}
    try:
        optimizer = _unflatten_optimizer(meta.pop("optimizer"), tensors) if "optimizer" in meta else None
    except (KeyError, TypeError, ValueError, AttributeError):
        raise UserError(f"{path}: checkpoint field 'optimizer' is damaged") from None
    if optimizer is not None:  # torch loads Adam's state unlooked-at: a bad one fails or NaNs the next step
        check_optimizer(optimizer, str(path))
    return {"meta": meta, "model": model, "optimizer": optimizer, "extra": extra}


def list_checkpoints(run: str | Path) -> list[Path]:
    """Checkpoint files of a run, oldest first."""
    folder = Path(run) / "checkpoints"
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def load_latest(run: str | Path) -> tuple[Path, dict]:
    """The newest checkpoint that loads; a damaged newer one is reported and passed over, and named
    in the state's "skipped" list (a run that trains on removes them: Trainer.restore)."""
    paths = list_checkpoints(run)
    if not paths:
        if not Path(run).exists():
            raise UserError(f"run directory {run} does not exist")
        healthy = Path(run) / "checkpoints" / HEALTHY
        hint = " (only the healthy copy is left: use --checkpoint best-healthy)" if healthy.is_file() else ""
        raise UserError(f"no checkpoint in {Path(run) / 'checkpoints'}{hint}")
    errors = []
    for path in reversed(paths):
        try:
            state = load(path)
        except UserError as e:
            errors.append(str(e))
            continue
        for skipped in errors:  # warned only when an older one loads: else the error below is the one line
            print(f"warning: skipping damaged checkpoint: {skipped}", file=sys.stderr)
        state["skipped"] = paths[len(paths) - len(errors):]  # the newer ones, which failed
        return path, state
    older = len(errors) - 1
    more = f" (nor did the {older} older one{'s' * (older > 1)})" if older else ""
    raise UserError(errors[0] + more)


def prune(run: str | Path, keep: int, saved: int | None = None) -> None:
    """Keeps the newest `keep` checkpoints and removes temporary files left by a killed save. With
    `saved` (the iteration just saved), first deletes the files of later iterations that do not
    load: a damaged one, skipped on resume, would otherwise hold a kept slot, and push the good ones
    out, until the run overtook it. (Later files exist only in that case, so the loading costs
    nothing in a healthy run.)"""
    paths = list_checkpoints(run)
    for path in [p for p in paths if saved is not None and int(NAME.match(p.name).group(1)) > saved]:
        try:
            load(path)
        except UserError:
            remove_damaged([path])
            paths.remove(path)
    for path in paths[:-keep] if keep > 0 else []:
        path.unlink(missing_ok=True)
    # a writer killed mid-save (kill -9) leaves its temporary file; the run lock says none writes now
    for tmp in (Path(run) / "checkpoints").glob("*.tmp"):
        tmp.unlink(missing_ok=True)


def remove_damaged(paths: list[Path]) -> None:
    """Deletes checkpoints found damaged (skipped by load_latest): kept, each would hold one of the
    keep_checkpoints slots, and pruning would delete good ones, older, in its place."""
    for path in paths:
        print(f"warning: removing damaged checkpoint {path}", file=sys.stderr)
        path.unlink(missing_ok=True)


HEALTHY = "healthy.safetensors"  # a copy of the newest checkpoint saved while the run was clean


def keep_healthy(path: Path) -> Path:
    """Makes `path` the run's healthy checkpoint (checkpoints/healthy.safetensors), which pruning
    never deletes: after a divergence that the guard caught late, or missed, it is the state to
    sample from (`--checkpoint best-healthy`). A hard link costs no space; a copy where links fail."""
    target = path.parent / HEALTHY
    tmp = path.parent / (HEALTHY + ".tmp")
    tmp.unlink(missing_ok=True)
    try:
        try:
            os.link(path, tmp)
        except OSError:
            shutil.copyfile(path, tmp)
        os.replace(tmp, target)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        print(f"warning: could not keep the healthy checkpoint: {e.strerror or e}", file=sys.stderr)
    return target


def load_selected(run: str | Path, which: str = "latest") -> tuple[Path, dict]:
    """`which`: "latest" (the newest that loads), "best-healthy" (the kept healthy one) or an
    iteration number."""
    folder = Path(run) / "checkpoints"
    if which == "latest":
        return load_latest(run)
    if which == "best-healthy":
        path = folder / HEALTHY
        if not path.is_file():
            raise UserError(f"{run} has no healthy checkpoint ({path}); use --checkpoint latest or an iteration")
        return path, load(path)
    if not str(which).isdigit():
        raise UserError(f"--checkpoint must be latest, best-healthy or an iteration number, got {which!r}")
    path = folder / f"ckpt_{int(which):08d}.safetensors"
    if not path.is_file():
        kept = ", ".join(NAME.match(p.name).group(1).lstrip("0") or "0" for p in list_checkpoints(run)) or "none"
        raise UserError(f"{run} has no checkpoint of iteration {int(which)} (kept: {kept})")
    return path, load(path)
