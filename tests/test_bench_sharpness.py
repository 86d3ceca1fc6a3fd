"""The photo benchmark's pixel statistics: zero on flat patches, high on pixel noise."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks", "photos"))
from sharpness import sharpness  # noqa: E402


def test_flat_patches_have_no_contrast_and_no_laplacian():
    flat = np.full((4, 8, 8, 3), 120, dtype=np.uint8)
    assert np.allclose(sharpness(flat), (0.0, 0.0), atol=1e-6)


def test_pixel_noise_scores_a_larger_laplacian_than_a_smooth_ramp_of_the_same_contrast():
    rng = np.random.default_rng(0)
    ramp = np.tile(np.linspace(0, 255, 32), (32, 1))[None, :, :, None].repeat(3, -1)
    ramp = ramp.round().astype(np.uint8).repeat(2, 0)
    noise = rng.permutation(ramp.reshape(-1)).reshape(ramp.shape).astype(np.uint8)
    (std_r, lap_r), (std_n, lap_n) = sharpness(ramp), sharpness(noise)
    assert abs(std_r - std_n) < 0.05          # same pixels, shuffled: similar contrast
    assert lap_r < 0.01 < 0.2 < lap_n          # a linear ramp has zero Laplacian inside
