"""shortrun: learning non-convergent, non-persistent short-run MCMC toward an energy-based model
(Nijkamp, Hill, Zhu and Wu, NeurIPS 2019).

    from shortrun import langevin, resolve, train, open_run, synthesize
"""
from .config import Config
from .data import load_dataset
from .energy import build_energy
from .model import ShortRun
from .presets import resolve
from .run import open_run
from .sampler import initial, langevin
from .tasks import synthesize
from .training import Trainer, train
from .version import __version__

__all__ = ["Config", "resolve", "load_dataset", "build_energy", "initial", "langevin", "Trainer", "train",
           "ShortRun", "open_run", "synthesize"]
