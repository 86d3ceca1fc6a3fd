"""The JSON metadata of a checkpoint, and Adam's state in it, checked as untrusted input before
anything uses it.

A checkpoint may have been edited, copied from another version, or crafted; a field that is
missing or of the wrong type must end in one line naming the field, not in a KeyError deep in
`open_run` or a model silently built for the wrong shape.
"""
from __future__ import annotations

import math

import torch

from ..config import Config, validate
from ..errors import UserError

MAX_SIDE = 65536  # no image side or point dimension beyond this is plausible


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _positive(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def _guard_history(v) -> bool:
    """The divergence guard's state_dict (guard.py): lists of finite numbers and integer counts."""
    if v is None:
        return True
    if not isinstance(v, dict):
        return False
    lists = all(isinstance(v.get(k, []), list) and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                        and math.isfinite(x) for x in v.get(k, []))
                for k in ("gaps", "saturations"))
    return lists and all(_int(v.get(k, 0)) for k in ("rollbacks", "diverged_at", "seen", "clean"))


def _need(meta: dict, name: str, ok, text: str, where: str, optional: bool = False) -> None:
    if name not in meta:
        if optional:
            return
        raise UserError(f"{where}: checkpoint field '{name}' is missing")
    if not ok(meta[name]):
        raise UserError(f"{where}: checkpoint field '{name}' must be {text}, got {meta[name]!r}"[:300])


def _whole(v) -> bool:
    """A count such as Adam's step: a real number >= 0 with no fraction, as a tensor of one value or
    as JSON (older torch kept it as a plain number)."""
    if torch.is_tensor(v):
        if v.numel() != 1 or v.is_complex() or v.dtype == torch.bool:
            return False
        v = v.item()
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 2 ** 63:  # NaN and inf fail too
        return False
    return float(v).is_integer()


def _moment_problem(v, key: str) -> str | None:
    """What is wrong with one of Adam's moments, if anything. torch takes them as they are: a
    negative second moment makes the step's square root NaN, a complex one fails mid-step."""
    if not torch.is_tensor(v):
        return "missing"
    if not v.is_floating_point():
        return f"holds {str(v.dtype).removeprefix('torch.')} values, not real floating-point numbers"
    if not torch.isfinite(v).all():
        return "holds non-finite values"
    if key != "exp_avg" and (v < 0).any():  # squares, and their running maximum
        return "holds negative values"
    return None


def _shown(v) -> str:
    if v is None:
        return "nothing"
    if torch.is_tensor(v):
        return f"{v.numel()} values" if v.numel() != 1 else repr(v.item())
    return repr(v)


def check_optimizer(state: dict, where: str) -> None:
    """Adam's per-parameter state, over every param group: a step count and finite moments. Raises
    UserError naming the first bad entry, so a resume passes the checkpoint over as damaged."""
    for idx, per in state["state"].items():
        step = per.get("step")
        if not _whole(step):
            raise UserError(f"{where}: checkpoint's optimizer state {idx}.step is damaged: "
                            f"must be a whole number >= 0, got {_shown(step)}"[:300])
        for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            if key == "max_exp_avg_sq" and key not in per:  # only with amsgrad
                continue
            problem = _moment_problem(per.get(key), key)
            if problem:
                raise UserError(f"{where}: checkpoint's optimizer state {idx}.{key} is damaged: {problem}")


def check_meta(meta, where: str) -> Config:
    """Raises UserError naming the first bad field; returns the checkpoint's config."""
    from ..data import shape_of

    if not isinstance(meta, dict):
        raise UserError(f"{where}: checkpoint metadata must be a JSON object, got {type(meta).__name__}")
    _need(meta, "iter", lambda v: _int(v) and v >= 0, "an integer >= 0", where)
    _need(meta, "config", lambda v: isinstance(v, dict), "an object with sections data, model, sampler, train", where)
    cfg = Config.from_dict(meta["config"], where=f"{where}: checkpoint field 'config'")
    validate(cfg, where=f"{where}: checkpoint field 'config'")
    _need(meta, "kind", lambda v: v in ("image", "points"), "image or points", where)
    _need(meta, "shape", lambda v: isinstance(v, list) and len(v) in (1, 3)
          and all(_int(d) and 1 <= d <= MAX_SIDE for d in v), "a list of 1 or 3 positive integers", where)
    _need(meta, "scale", _positive, "a finite number > 0", where)
    _need(meta, "lr_scale", _positive, "a finite number > 0", where, optional=True)
    _need(meta, "horizon", lambda v: v is None or (_int(v) and v >= 0), "null or an integer >= 0", where,
          optional=True)
    _need(meta, "guard", _guard_history, "an object of the divergence guard's history", where, optional=True)
    # the config says what the data was (data.name, channels, image_size): a kind or shape that
    # disagrees would build a network for other examples than its weights learnt
    expected = shape_of(cfg.data)
    if meta["kind"] != ("points" if len(expected) == 1 else "image"):
        raise UserError(f"{where}: checkpoint field 'kind' is {meta['kind']!r}, but its config's data "
                        f"(data.name={cfg.data.name}) holds {'points' if len(expected) == 1 else 'images'}")
    if len(meta["shape"]) != len(expected) or (len(expected) == 3 and tuple(meta["shape"]) != expected):
        raise UserError(f"{where}: checkpoint field 'shape' is {meta['shape']}, but its config's data "
                        f"makes examples of shape {list(expected)}")
    return cfg
