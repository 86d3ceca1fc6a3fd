"""Run configuration: four sections (data, model, sampler, train) as dataclasses.

A config is resolved (`presets.resolve`) from a named preset or a JSON/TOML file, then
overridden with dotted `key=value` strings, e.g. `sampler.n_steps=40`. The resolved
config is written next to the results as `RUN/config.json`. This module knows no presets.
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, packaged as tomli
    import tomli as tomllib

from .errors import UserError
from .paths import read_input


@dataclass
class DataConfig:
    name: str = "digits"  # digits | fake | cifar10 | celeba64 | lsun | mnist | folder | 8gaussians | rings | checkerboard | moons
    root: str = ""  # where the dataset lies on disk (not needed for digits, fake and the 2-D toys)
    image_size: int = 8  # images are resized / center-cropped to this many pixels a side
    channels: int = 1  # images are converted to this many channels (1 grey, 3 RGB)
    subset: int = 0  # use only the first N training examples (0 = all; the paper used 40,000)
    holdout: float = 0.15  # fraction kept aside as held-out images where the set has no test split
    fake_size: int = 1024  # number of random examples when name=fake
    toy_size: int = 50000  # number of points drawn from a 2-D toy density
    bad_images: str = "skip"  # corrupt image files in a folder: skip (with a warning) | error


@dataclass
class ModelConfig:
    name: str = "digits"  # convnet (the paper's 5-conv f) | digits | mlp (2-D data)
    n_f: int = 32  # width: channels of the first conv layer (hidden units for mlp)
    leak: float = 0.2  # LeakyReLU slope (the paper's 0.2)
    activation: str = "leaky_relu"  # leaky_relu | silu
    max_mult: int = 8  # cap on the width multiplier of deeper stages (64x64 and up)
    depth: int = 3  # hidden layers of the mlp
    feature_seed: int = 0  # moments model: seeds its frozen random features h
    feature_scale: float = 0.25  # moments model on points: length scale of its random Fourier features (model coords)


@dataclass
class SamplerConfig:
    n_steps: int = 100  # K, Langevin steps per chain
    step_size: float = 1.0  # a, multiplies the gradient of f (eq. 4: a = dt/2; authors' code: 1)
    noise_std: float = 0.01  # b, multiplies the N(0, I) step noise (eq. 4: b = sqrt(dt); authors' code: 0.01)
    init: str = "uniform"  # p_0: uniform on [-1, 1] | gaussian | fitted (to the training data; not in the paper)
    init_std: float = 1.0  # p_0's scale: the std when init=gaussian, the draw's scale about the mean when fitted, U(-s, s) when uniform
    init_rank: int = 64  # init=fitted: principal directions of the training data kept in p_0
    init_components: int = 1  # init=fitted: Gaussians in p_0, one per k-means cluster of the data
    clamp: bool = False  # clamp x to [-1, 1] after each step (off in the paper)


@dataclass
class TrainConfig:
    iters: int = 2000  # learning iterations (the paper: 200k)
    batch_size: int = 64  # m, observed and synthesized examples per iteration (global, all ranks)
    lr: float = 1e-4  # Adam learning rate (the paper's 1e-4)
    beta1: float = 0.9  # Adam beta_1
    beta2: float = 0.999  # Adam beta_2
    energy_l2: float = 0.0  # weight of a penalty on mean f² over data and samples (0 = the paper's loss)
    data_noise: float = 0.03  # sigma, std of N(0, sigma^2) added to observed images (the paper's 0.03)
    flip: bool = False  # mirror each observed image left-right with probability 1/2 (not in the paper)
    schedule: str = "constant"  # constant | anneal (lr and sigma lowered gradually at the end)
    budget_schedule: bool = True  # a new run with --max-time lays the schedules out over the iterations that time allows
    warmup_iters: int = 0  # linear lr warm-up from 0 over this many iterations (0 = none, as the paper)
    ema: float = 0.0  # decay of a moving average of the weights used for sampling and evaluation (0 = off)
    anneal_start: float = 0.8  # fraction of iters after which annealing begins
    lr_final: float = 1e-5  # learning rate reached at the last iteration when annealing
    data_noise_final: float = 0.01  # sigma reached at the last iteration when annealing
    seed: int = 1  # seeds the weights, the data order and every chain
    log_every: int = 10  # iterations between lines of metrics.jsonl
    sample_every: int = 500  # iterations between sample grids in RUN/samples/
    checkpoint_every: int = 1000  # iterations between checkpoints
    keep_checkpoints: int = 3  # how many recent checkpoints are kept
    n_grid: int = 64  # samples in each grid
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto | fp32 | bf16 (autocast for the network; x stays fp32)
    channels_last: bool = True  # memory format for conv nets (faster on CPU and GPU)
    fused_grad: bool = True  # CPU: ∇ₓf of conv/LeakyReLU nets by hand, weights packed once per chain (inputgrad.py)
    cuda_graph: bool = False  # on GPUs, capture the K-step chain as one CUDA graph (sampler/cuda_graph.py; opt-in until checked on a GPU)
    threads: int = 0  # CPU threads for torch (0 = leave torch's default)
    tensorboard: bool = True  # also write TensorBoard logs to RUN/tb/
    divergence_check: bool = True  # roll back and lower lr on a non-finite or exploding loss
    max_energy_gap: float = 1e6  # |f(x_obs) - f(x_neg)| above this counts as divergence
    gap_factor: float = 100.0  # ... and above this many times its recent typical size (the run's own history)
    max_saturation: float = 0.5  # ... and a chain with more than this fraction of values beyond ±1.5 (data lie in ±1)
    max_rollbacks: int = 3  # consecutive divergences before training stops
    snapshot_every: int = 100  # iterations between in-memory copies of the state a rollback returns to
    rollback_lr_factor: float = 0.5  # lr multiplier after a rollback
    min_lr_scale: float = 1e-3  # stop once rollbacks have cut lr below this fraction of train.lr


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, where: str = "config", base: "Config | None" = None) -> "Config":
        """The settings of d ({section: {key: value}}) on top of `base` (default: every key's default)."""
        cfg = copy.deepcopy(base) if base is not None else cls()
        if not isinstance(d, dict):
            raise UserError(f"{where}: expected an object with sections data, model, sampler, train")
        for section, values in d.items():
            if section in ("shortrun", "preset"):  # RUN/config.json's note of the code version; the base preset
                continue
            if section not in SECTIONS:  # a misspelt section would otherwise be ignored
                near = difflib.get_close_matches(str(section), SECTIONS, n=1)
                hint = f" (did you mean {near[0]}?)" if near else ""
                raise UserError(f"{where}: unknown section '{section}'{hint}; sections: {', '.join(SECTIONS)}")
            if not isinstance(values, dict):
                raise UserError(f"{where}: section '{section}' must be an object")
            for key, value in values.items():
                set_value(cfg, f"{section}.{key}", value, where=where)
        return cfg


SECTIONS = ("data", "model", "sampler", "train")


def all_keys() -> list[str]:
    cfg = Config()
    return [f"{s}.{f.name}" for s in SECTIONS for f in dataclasses.fields(getattr(cfg, s))]


def _coerce(value, default, key: str):
    """Turns a --set string (or a JSON value) into the type of the key's default. A string key
    takes only a string: a JSON number or null there is a mistake, not a name."""
    kind = type(default)
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    if kind is bool:
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
            return False
    elif kind is int and not isinstance(value, bool):
        try:
            if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
                return int(value)  # exact, where float() would round a long integer
            as_float = float(value)
            if as_float == int(as_float):
                return int(as_float)
        except (TypeError, ValueError, OverflowError):  # OverflowError: 1e400 is inf, which int() refuses
            pass
    elif kind is float and not isinstance(value, bool):
        try:
            return float(value)
        except (TypeError, ValueError, OverflowError):  # OverflowError: an integer beyond float's range
            pass
    raise UserError(f"{key}: expected {kind.__name__}, got {_show(value)}")


def _show(value) -> str:
    """A value for a one-line message: a 10,000-digit number is cut short."""
    text = repr(value)
    return text if len(text) <= 60 else text[:50] + "..." + text[-5:]


def set_value(cfg: Config, key: str, value, where: str = "--set") -> None:
    parts = key.split(".")
    if len(parts) != 2 or parts[0] not in SECTIONS or not hasattr(getattr(cfg, parts[0]), parts[1]):
        near = difflib.get_close_matches(key, all_keys(), n=1)
        hint = f" (did you mean {near[0]}?)" if near else ""
        raise UserError(f"{where}: unknown config key '{key}'{hint}")
    section = getattr(cfg, parts[0])
    setattr(section, parts[1], _coerce(value, getattr(section, parts[1]), key))


def apply_overrides(cfg: Config, overrides: list[str]) -> Config:
    for item in overrides or []:
        if "=" not in item:
            raise UserError(f"--set expects key=value, got '{item}'")
        key, value = item.split("=", 1)
        set_value(cfg, key.strip(), value.strip())
    return cfg


def load_config_file(path: str | Path, presets: dict | None = None) -> Config:
    """A .json/.toml config file. Keys it leaves out take their defaults here, or, where the file has
    a top-level "preset" (one of `presets`: name -> function making its Config), that preset's."""
    path = Path(path)
    raw = read_input(path, "config file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"config file {path} is not UTF-8 text (byte {e.start} is {raw[e.start]:#04x})") from None
    try:
        d = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, RecursionError) as e:
        reason = " ".join(str(e).split()) or type(e).__name__  # one line, whatever the parser says
        kind = "TOML" if path.suffix == ".toml" else "JSON"  # what it was read as (anything but .toml is JSON)
        raise UserError(f"config file {path} is not valid {kind}: {reason} (config files are .json or .toml)") from None
    base = None
    if isinstance(d, dict) and "preset" in d:
        name = d["preset"]
        if not isinstance(name, str) or name not in (presets or {}):
            near = difflib.get_close_matches(str(name), list(presets or {}), n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            raise UserError(f"config file {path}: unknown preset {name!r}{hint}; presets: {', '.join(presets or {})}")
        base = presets[name]()
    return Config.from_dict(d, where=str(path), base=base)


MAX_STEPS = 100_000  # K: 1000x the paper's 100; refused above it, before a chain's noise [K, B, ...] is allocated
SEED_RANGE = 2**63  # torch's generators take seeds in [-2^63, 2^64)


def _ints(lo: int, hi: int | None = None):
    text = f"an integer >= {lo}" if hi is None else f"an integer in [{lo}, {hi}]"
    return (lambda v: v >= lo and (hi is None or v <= hi)), text


def _reals(lo: float, hi: float | None = None, *, above: bool = False, below: bool = False):
    """A finite number in the interval: NaN and ±inf are refused everywhere (they slip past comparisons)."""
    if hi is None:
        text = f"a finite number {'>' if above else '>='} {lo:g}"
    else:
        text = f"a number in {'(' if above else '['}{lo:g}, {hi:g}{')' if below else ']'}"
    return (lambda v: math.isfinite(v) and (v > lo if above else v >= lo)
            and (hi is None or (v < hi if below else v <= hi))), text


def _one_of(*names):
    return (lambda v: v in names), "one of " + ", ".join(map(str, names))


_ANY = (lambda v: True, "")
_NAME = (lambda v: bool(v.strip()), "a non-empty name")  # the dataset and network registries check the name itself
_SEED = (lambda v: -SEED_RANGE <= v < SEED_RANGE, "an integer in [-2**63, 2**63)")
_DEVICE = (lambda v: re.fullmatch(r"auto|cpu|cuda(:\d+)?", v) is not None, "auto, cpu, cuda or cuda:N")
_EVERY = _ints(1)

# One rule per key (tests/test_bad_input.py checks that every key has one). Types are checked first,
# against each default's type; caps keep an absurd value from reaching an allocation.
RULES = {
    "data.name": _NAME, "data.root": _ANY, "data.image_size": _ints(4, 4096), "data.channels": _one_of(1, 3),
    "data.subset": _ints(0), "data.holdout": _reals(0, 1, below=True), "data.fake_size": _ints(1, 1_000_000),
    "data.toy_size": _ints(1, 10_000_000), "data.bad_images": _one_of("skip", "error"),
    "model.name": _NAME, "model.n_f": _ints(1, 4096), "model.leak": _reals(0, 1),
    "model.activation": _one_of("leaky_relu", "silu"), "model.max_mult": _ints(1, 1024), "model.depth": _ints(0, 64),
    "model.feature_seed": _SEED, "model.feature_scale": _reals(0, above=True),
    "sampler.n_steps": _ints(0, MAX_STEPS), "sampler.step_size": _reals(0), "sampler.noise_std": _reals(0),
    "sampler.init": _one_of("uniform", "gaussian", "fitted"), "sampler.init_std": _reals(0, above=True),
    "sampler.init_rank": _ints(1, 1_000_000), "sampler.init_components": _ints(1, 10_000), "sampler.clamp": _ANY,
    "train.iters": _ints(0, 10**12), "train.batch_size": _ints(1, 1_000_000), "train.lr": _reals(0, above=True),
    "train.beta1": _reals(0, 1, below=True), "train.beta2": _reals(0, 1, below=True), "train.energy_l2": _reals(0),
    "train.data_noise": _reals(0), "train.flip": _ANY, "train.schedule": _one_of("constant", "anneal"), "train.budget_schedule": _ANY,
    "train.warmup_iters": _ints(0), "train.ema": _reals(0, 1, below=True), "train.anneal_start": _reals(0, 1),
    "train.lr_final": _reals(0, above=True), "train.data_noise_final": _reals(0), "train.seed": _SEED,
    "train.log_every": _EVERY, "train.sample_every": _EVERY, "train.checkpoint_every": _EVERY,
    "train.keep_checkpoints": _ints(1), "train.n_grid": _ints(1, 10_000), "train.device": _DEVICE,
    "train.precision": _one_of("auto", "fp32", "bf16"), "train.channels_last": _ANY, "train.fused_grad": _ANY,
    "train.cuda_graph": _ANY, "train.threads": _ints(0, 4096), "train.tensorboard": _ANY,
    "train.divergence_check": _ANY, "train.max_energy_gap": _reals(0, above=True), "train.max_rollbacks": _ints(0),
    "train.snapshot_every": _EVERY, "train.rollback_lr_factor": _reals(0, 1, above=True),
    "train.min_lr_scale": _reals(0, 1), "train.gap_factor": _reals(1), "train.max_saturation": _reals(0, 1),
}


def validate(cfg: Config, where: str = "") -> None:
    """Refuses any value outside its key's range (RULES), naming the key. The CLI, --resume
    (a checkpoint's config) and the Python API (resolve, train, Trainer) all come through here."""
    prefix = f"{where}: " if where else ""
    defaults = Config()
    for key in all_keys():
        section, name = key.split(".")
        value, default = getattr(getattr(cfg, section), name), getattr(getattr(defaults, section), name)
        kind = (int, float) if type(default) is float else type(default)  # an int is a fine float
        if not isinstance(value, kind) or (isinstance(value, bool) and type(default) is not bool):
            raise UserError(f"{prefix}{key} must be {type(default).__name__}, got {_show(value)}")
        ok, text = RULES.get(key, _ANY)
        try:
            fits = ok(value)
        except OverflowError:  # an int too large for math.isfinite
            fits = False
        if not fits:
            raise UserError(f"{prefix}{key} must be {text}, got {_show(value)}")
