"""Run configuration: four sections (data, model, sampler, train) as dataclasses.

A config is resolved (`presets.resolve`) from a named preset or a JSON/TOML file, then
overridden with dotted `key=value` strings, e.g. `sampler.n_steps=40`. The resolved
config is written next to the results as `RUN/config.json`. This module knows no presets.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError


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
    init: str = "uniform"  # p_0: uniform on [-1, 1] | gaussian
    init_std: float = 1.0  # standard deviation of p_0 when init=gaussian
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
    def from_dict(cls, d: dict, where: str = "config") -> "Config":
        cfg = cls()
        if not isinstance(d, dict):
            raise UserError(f"{where}: expected an object with sections data, model, sampler, train")
        for section, values in d.items():
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
    """Turns a --set string (or a JSON value) into the type of the key's default."""
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
            as_float = float(value)
            if as_float == int(as_float):
                return int(as_float)
        except (TypeError, ValueError):
            pass
    elif kind is float and not isinstance(value, bool):
        try:
            return float(value)
        except (TypeError, ValueError):
            pass
    elif kind is str:
        return str(value)
    raise UserError(f"{key}: expected {kind.__name__}, got {value!r}")


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


def load_config_file(path: str | Path) -> Config:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise UserError(f"cannot read config file {path}: {e.strerror}") from None
    try:
        d = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"config file {path} is not valid {path.suffix.lstrip('.') or 'JSON'}: {e}") from None
    return Config.from_dict(d, where=str(path))


def validate(cfg: Config) -> None:
    """Catches values that would only fail deep inside training."""
    checks = [
        (cfg.sampler.n_steps >= 0, "sampler.n_steps must be >= 0"),
        (cfg.sampler.init in ("uniform", "gaussian"), "sampler.init must be uniform or gaussian"),
        (cfg.train.batch_size >= 1, "train.batch_size must be >= 1"),
        (cfg.train.energy_l2 >= 0, "train.energy_l2 must be >= 0"),
        (cfg.train.min_lr_scale >= 0, "train.min_lr_scale must be >= 0"),
        (cfg.train.warmup_iters >= 0, "train.warmup_iters must be >= 0"),
        (cfg.train.ema == 0 or 0 < cfg.train.ema < 1, "train.ema must be 0 (off) or a decay in (0, 1)"),
        (cfg.train.iters >= 0, "train.iters must be >= 0"),
        (cfg.train.schedule in ("constant", "anneal"), "train.schedule must be constant or anneal"),
        (cfg.train.precision in ("auto", "fp32", "bf16"), "train.precision must be auto, fp32 or bf16"),
        (cfg.data.image_size >= 4, "data.image_size must be >= 4"),
        (cfg.data.channels in (1, 3), "data.channels must be 1 or 3"),
        (cfg.data.bad_images in ("skip", "error"), "data.bad_images must be skip or error"),
        (min(cfg.train.log_every, cfg.train.checkpoint_every, cfg.train.sample_every,
             cfg.train.snapshot_every) >= 1,
         "train.log_every, checkpoint_every, sample_every and snapshot_every must be >= 1"),
        (cfg.model.n_f >= 1, "model.n_f must be >= 1"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)
