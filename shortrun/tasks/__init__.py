"""What a trained short-run sampler is used for: synthesis, interpolation, reconstruction."""
from .interpolation import interpolate, interpolate_observed
from .reconstruction import reconstruct
from .synthesis import draw_latents, example_seed, synthesize

__all__ = ["synthesize", "draw_latents", "example_seed", "interpolate", "interpolate_observed", "reconstruct"]
