"""The learned model: the K-step sampler M_θ guided by the network f_θ (the paper's q_θ).

`ShortRun` binds a network to its sampler settings, the example shape and the numeric
precision, so that learning, synthesis, interpolation and reconstruction all run the same
chain. bf16 autocast covers only the network; x and the update stay in float32, since a
step adds noise of size b = 0.01 that bf16's 8-bit mantissa would round away near |x| = 1.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from .config import Config, SamplerConfig
from .energy import build_energy
from .errors import UserError
from .sampler import initial, langevin
from .sampler.fitted import FittedStart
from .sampler.inputgrad import InputGrad
from .sampler.segmented import langevin_checkpointed


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    # checked here, where the model is placed, rather than in the config, which may be written on
    # one machine and used on another
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"train.device={name}, but torch finds no CUDA GPU here; use train.device=auto or cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"train.device must be auto, cpu, cuda or cuda:N, got {name!r}") from None
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UserError(f"train.device={name}, but there are only {torch.cuda.device_count()} CUDA devices here")
    return device


def pick_precision(name: str, device: torch.device) -> torch.dtype:
    if name == "bf16":
        return torch.bfloat16
    if name == "fp32":
        return torch.float32
    # auto: bf16 on GPUs that have it, and on CPUs whose bf16 units outrun their float32 ones
    # (cpu_prefers_bf16); float32 elsewhere. The digits preset pins float32: on its tiny net bf16
    # bought little speed for coarser gradients (README).
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.bfloat16 if _this_cpu_prefers_bf16() else torch.float32


def cpu_prefers_bf16(cpuinfo: str) -> bool:
    """Whether bf16 autocast trains the paper's net faster than float32 on the CPU `cpuinfo`
    (/proc/cpuinfo's text) describes. Decided by what the CPU has, not by timing it, so that the same
    machine always picks the same precision (same seed, same samples). Measured on the paper's net at
    n_f 32, K 40, batch 64 (`shortrun bench` and the photo benchmark, benchmarks/RESULTS.md):
    - AMX (Intel Sapphire Rapids and later): about 3x the iterations in a time budget;
    - AMD EPYC with AVX512-BF16 (Zen 4 and later): 1.5x (our reading: its bf16 dot product takes
      twice float32's elements per instruction at the same rate);
    - Intel with AVX512-BF16 but no AMX (Cooper Lake, or AMX hidden by a hypervisor): 0.65x, slower;
    - no bf16 instructions at all: not measured; float32."""
    first = cpuinfo.split("\n\n", 1)[0]  # the first processor's block
    fields = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in first.splitlines() if ":" in line)}
    flags, vendor = set(fields.get("flags", "").split()), fields.get("vendor_id", "")
    return "amx_bf16" in flags or (vendor == "AuthenticAMD" and "avx512_bf16" in flags)


def _this_cpu_prefers_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as fh:
            text = fh.read()
    except OSError:
        return False
    return cpu_prefers_bf16(text) and torch.ops.mkldnn._is_mkldnn_bf16_supported()


class ShortRun:
    def __init__(self, net: nn.Module, sampler: SamplerConfig, shape: tuple[int, ...],
                 device: torch.device, dtype: torch.dtype = torch.float32, channels_last: bool = False,
                 fused_grad: bool = False):
        self.net, self.sampler, self.shape = net, sampler, tuple(shape)
        self.device, self.dtype = device, dtype
        self.fused_grad = fused_grad
        self.start: FittedStart | None = None  # p_0 when sampler.init=fitted (training fits it; runs load it)
        self.channels_last = channels_last and len(self.shape) == 3
        self.net.to(device)
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)

    @classmethod
    def from_config(cls, cfg: Config, shape: tuple[int, ...], net: nn.Module | None = None) -> "ShortRun":
        """The model cfg describes for examples of `shape`; `net` (a network instance of one's own)
        replaces the one cfg.model names."""
        device = pick_device(cfg.train.device)
        return cls(build_energy(cfg.model, shape) if net is None else net, cfg.sampler, shape, device,
                   pick_precision(cfg.train.precision, device), cfg.train.channels_last,
                   cfg.train.fused_grad)

    def _autocast(self):
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        # no weight-cast cache: it would allocate inside a CUDA graph capture and go stale
        return torch.autocast(self.device.type, dtype=self.dtype, cache_enabled=False)

    def energy(self, x: torch.Tensor, net: nn.Module | None = None) -> torch.Tensor:
        """f_θ(x) as float32 [B]: the negative energy (through `net`, e.g. a DDP wrapper, if given)."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            return (net or self.net)(x).float()

    def init(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """z ~ p_0 for n examples (on `device`, by default the model's)."""
        device = self.device if device is None else device
        if self.sampler.init == "fitted":
            if self.start is None:
                raise UserError("sampler.init=fitted, but this model has no fitted p_0: it is fitted when a "
                                "run is trained with sampler.init=fitted and saved in its checkpoints")
            return self.start.draw((n, *self.shape), self.sampler.init_std, generator, device)
        return initial((n, *self.shape), kind=self.sampler.init, std=self.sampler.init_std,
                       generator=generator, device=device)

    def fit_start(self, examples: torch.Tensor, to_model, seed: int) -> None:
        """Fits p_0 to the training examples when sampler.init=fitted (a new run; a resumed one loads it)."""
        if self.sampler.init == "fitted":
            try:
                self.start = FittedStart.fit(examples, to_model, self.sampler.init_rank, seed=seed,
                                             components=self.sampler.init_components)
            except ValueError as e:  # too few training examples for the components asked
                raise UserError(f"sampler.init=fitted: {e} (lower sampler.init_components)") from None

    def start_mean(self) -> torch.Tensor | float:
        """E[z] under p_0: the fitted mean (model device, example shape), else 0 (uniform and gaussian)."""
        if self.sampler.init == "fitted" and self.start is not None:
            return self.start.mean.view(self.shape).to(self.device)
        return 0.0

    def chain(self, z: torch.Tensor, noise=None, generator=None, create_graph: bool = False,
              n_steps: int | None = None, **kw) -> torch.Tensor:
        """x = M_θ(z, u): the K-step chain from z with the configured a, b (n_steps overrides K)."""
        s = self.sampler
        grad_fn = None if create_graph else self.input_grad(z.shape)
        return langevin(self.energy, z, n_steps=s.n_steps if n_steps is None else n_steps,
                        step_size=s.step_size, noise_std=s.noise_std,
                        noise=noise, generator=generator, create_graph=create_graph,
                        clamp=(-1.0, 1.0) if s.clamp else None, grad_fn=grad_fn, **kw)

    def input_grad(self, shape) -> InputGrad | None:
        """The hand-written ∇ₓ f for this network state (sampler/inputgrad.py), or None to use autograd.
        Built per chain: it packs the current weights, which learning changes between chains."""
        if not self.fused_grad or shape[0] == 0:
            return None
        return InputGrad.build(self.net, tuple(shape), self.dtype, self.device)

    def chain_differentiable(self, z: torch.Tensor, noise: torch.Tensor, segments: int = 0) -> torch.Tensor:
        """M_θ(z, u) with a graph back to z; segments > 0 checkpoints the chain (see sampler/segmented.py)."""
        if segments <= 0:
            return self.chain(z, noise=noise, create_graph=True)
        s = self.sampler
        return langevin_checkpointed(self.energy, z, noise, step_size=s.step_size, noise_std=s.noise_std,
                                     segments=segments, clamp=(-1.0, 1.0) if s.clamp else None)

    @contextlib.contextmanager
    def frozen(self):
        """Parameters need no gradient while the chain runs: autograd then skips the weight paths."""
        flags = [p.requires_grad for p in self.net.parameters()]
        for p in self.net.parameters():
            p.requires_grad_(False)
        try:
            yield self
        finally:
            for p, flag in zip(self.net.parameters(), flags):
                p.requires_grad_(flag)
