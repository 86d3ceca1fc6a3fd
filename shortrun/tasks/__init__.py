"""What a trained short-run sampler is used for: synthesis, interpolation, reconstruction."""
from .interpolation import interpolate, interpolate_observed
from .reconstruction import reconstruct
from .synthesis import draw_latents, synthesize

__all__ = ["synthesize", "draw_latents", "interpolate", "interpolate_observed", "reconstruct"]
