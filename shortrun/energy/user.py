"""Networks of one's own: `model.name=MODULE:CLASS` builds CLASS(shape) from an importable module.

    --set model.name=mypkg.nets:MyEnergy      # MyEnergy(shape) maps [B, *shape] to [B]

`shape` is one example's shape, (C, H, W) for images or (D,) for points. The name is checked
before anything is called: CLASS must be a subclass of torch.nn.Module (so `os:system` and the
like are refused without running), and the built network must return one value per example.
The run directory records the name, so resuming, sampling and evaluating such a run need only
that the module is importable again. Importing a module runs its top-level code, as any import
does: open runs from sources you trust.
"""
from __future__ import annotations

import importlib
import re
import sys

import torch
from torch import nn

from ..errors import UserError

_NAME = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def is_user_name(name: str) -> bool:
    return ":" in name


def load_class(name: str) -> type:
    """The nn.Module subclass named MODULE:CLASS, or a UserError saying why not (nothing is called)."""
    if not _NAME.match(name):
        raise UserError(f"model.name '{name}' is not of the form MODULE:CLASS (e.g. mypkg.nets:MyEnergy)")
    module_name, class_path = name.split(":")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as e:
        raise UserError(f"model.name '{name}': cannot import {module_name} ({e})") from None
    for part in class_path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            if module_name == "__main__":  # recorded by train(net=...) from a script: gone with that script
                raise UserError(f"model.name '{name}': the network class was defined in the script that trained "
                                f"the run; open the run from a script that defines the same class "
                                f"(shortrun.open_run), or train with the class in an importable module")
            raise UserError(f"model.name '{name}': {module_name} has no {class_path}")
    if not (isinstance(obj, type) and issubclass(obj, nn.Module)):
        raise UserError(f"model.name '{name}' is not a torch.nn.Module subclass; refused")
    return obj


def check_network(net: nn.Module, shape: tuple[int, ...], name: str) -> nn.Module:
    """One forward pass on a tiny batch: [2, *shape] must map to [2] floats."""
    if not isinstance(net, nn.Module):
        raise UserError(f"{name} did not build a torch.nn.Module (got {type(net).__name__})")
    params = next(iter(net.parameters()), None)
    x = torch.zeros((2, *shape), device=params.device if params is not None else "cpu")
    with torch.no_grad():
        try:
            out = net(x)
        except Exception as e:  # the user's forward: report what failed, in one line
            raise UserError(f"{name} fails on a batch of shape {list(x.shape)}: {type(e).__name__}: {e}") from None
    if not torch.is_tensor(out) or tuple(out.shape) != (2,) or not out.is_floating_point():
        got = list(out.shape) if torch.is_tensor(out) else type(out).__name__
        raise UserError(f"{name} must map [B, *shape] to [B] floats; a batch of 2 gave {got}")
    return net


def build_user(name: str, shape: tuple[int, ...]) -> nn.Module:
    cls = load_class(name)
    try:
        net = cls(tuple(shape))
    except Exception as e:
        raise UserError(f"model.name '{name}': {cls.__name__}({tuple(shape)}) failed: {type(e).__name__}: {e}") from None
    return check_network(net, tuple(shape), name)


def name_of(net: nn.Module) -> str:
    """The MODULE:CLASS under which a network instance is recorded in the run's config. A class defined
    in the script being run (__main__) or inside a function cannot be imported again by `sample` or
    `--resume`: that is said now, not when the run is reopened."""
    cls = type(net)
    name = f"{cls.__module__}:{cls.__qualname__}"
    if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
        print(f"warning: the network class {cls.__qualname__} is defined in the running script, so the CLI "
              f"(sample, --resume, evaluate) cannot import it again; define it in an importable module "
              f"(README, \"Networks of one's own\")", file=sys.stderr)
    return name
