"""What the photo benchmark's FD rewards: one samples file scored as drawn and after simple
post-hoc edits (blur, sharpening, pixel noise, contrast), with its power spectrum against the
held-out patches'. A diagnostic for reading results, not a way to improve them: the edited images
are not the sampler's output.

  python benchmarks/photos/fd_probe.py SAMPLES.npz HELDOUT_DIR [--json OUT]

Prints, per edit, the FD (fd.py's instrument, at the samples' N); then the ratio of the samples'
mean power to the held-out patches' at horizontal frequencies 1..16 (cycles per 32 pixels) and at the
diagonal frequencies (k, k), where grid and checkerboard patterns show.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fd import frechet, heldout_stats, load_pngs, make_helper, stats  # noqa: E402  (every row's instrument)


def blur(x: np.ndarray, weight: float = 1.0) -> np.ndarray:
    """[1, 2, 1]/4 binomial blur along height and width (edges replicated), blended with x by weight."""
    f = x.astype(np.float64)
    p = np.pad(f, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    h = (p[:, :, :-2] + 2 * p[:, :, 1:-1] + p[:, :, 2:]) / 4
    v = (h[:, :-2] + 2 * h[:, 1:-1] + h[:, 2:]) / 4
    return (1 - weight) * f + weight * v


def to_uint8(f: np.ndarray) -> np.ndarray:
    return np.clip(np.round(f), 0, 255).astype(np.uint8)


def edits(x: np.ndarray) -> dict[str, np.ndarray]:
    f = x.astype(np.float64)
    mean_img = f.mean((1, 2), keepdims=True)
    return {
        "as drawn": x,
        "blur": to_uint8(blur(x)),
        "half blur": to_uint8(blur(x, 0.5)),
        "sharpen 0.5": to_uint8(f + 0.5 * (f - blur(x))),
        "sharpen 1": to_uint8(f + (f - blur(x))),
        "noise, 4 grey levels": to_uint8(f + np.random.default_rng(0).normal(0, 4, f.shape)),
        "contrast 1.2 per image": to_uint8(mean_img + 1.2 * (f - mean_img)),
    }


def power(x: np.ndarray) -> np.ndarray:
    """Mean |FFT|² over images and channels of uint8 [N, H, W, 3], each image's mean removed."""
    f = x.astype(np.float64) / 255
    f -= f.mean((1, 2), keepdims=True)
    return (np.abs(np.fft.fft2(f, axes=(1, 2))) ** 2).mean((0, 3))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("samples")
    p.add_argument("heldout")
    p.add_argument("--json")
    a = p.parse_args()
    x = np.load(a.samples)["arr_0"]
    held, _ = load_pngs(a.heldout)
    helper = make_helper("cpu")
    ref = heldout_stats(helper, a.heldout, batch=10)
    rows = {}
    for name, y in edits(x).items():
        rows[name] = frechet(helper, ref, stats(helper, y, batch=10))
        print(f"{name:>24}: FD {rows[name]:.1f}", flush=True)
    ps, ph = power(x), power(held)
    half = x.shape[2] // 2
    axis = [float(ps[0, k] / ph[0, k]) for k in range(1, half + 1)]
    diag = {k: float(ps[k, k] / ph[k, k]) for k in (half // 4, half // 2, 3 * half // 4, half)}
    print("power / held-out, horizontal k = 1..%d:" % half, " ".join(f"{r:.2f}" for r in axis))
    print("power / held-out, diagonal (k, k):", " ".join(f"k={k}: {r:.1f}" for k, r in diag.items()))
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"fd": rows, "axis_power_ratio": axis, "diagonal_power_ratio": diag}, fh, indent=1)


if __name__ == "__main__":
    main()
