"""Two pixel statistics that tell pixel noise from image structure, beside the FD.

  python benchmarks/photos/sharpness.py SAMPLES.npz [MORE.npz ...] [--real DIR ...]

For each samples file (arr_0, uint8 [N, 32, 32, 3]) and each folder of real PNG patches it prints
the mean per-patch standard deviation (contrast) and the mean absolute 4-neighbour Laplacian
(high-frequency energy), both on a [0, 1] scale. Pixel noise shows as a Laplacian well above the
real patches'; flat, washed-out samples show as a low standard deviation. The FD weighs colour and
coarse layout heavily, so these two say what it may miss.
"""
from __future__ import annotations

import argparse

import numpy as np

from fd import load_pngs


def sharpness(imgs: np.ndarray) -> tuple[float, float]:
    """(mean per-patch std, mean |Laplacian|) of uint8 NHWC images, on [0, 1]."""
    x = imgs.astype(np.float32) / 255.0
    std = x.reshape(len(x), -1, x.shape[-1]).std(axis=1).mean()
    lap = (4 * x[:, 1:-1, 1:-1] - x[:, :-2, 1:-1] - x[:, 2:, 1:-1]
           - x[:, 1:-1, :-2] - x[:, 1:-1, 2:])
    return float(std), float(np.abs(lap).mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("samples", nargs="*", help="npz files of uint8 [N, H, W, 3] samples")
    p.add_argument("--real", nargs="*", default=[], help="folders of real PNG patches")
    args = p.parse_args()
    if not args.samples and not args.real:
        p.error("give at least one samples file or --real folder")
    for path in args.samples:
        with np.load(path) as z:
            imgs = z["arr_0"]
        if imgs.dtype != np.uint8 or imgs.ndim != 4:
            raise SystemExit(f"{path}: arr_0 must be uint8 [N, H, W, C], got {imgs.dtype} {imgs.shape}")
        print("%-60s std %.3f  |laplacian| %.3f" % ((path,) + sharpness(imgs)))
    for folder in args.real:
        print("%-60s std %.3f  |laplacian| %.3f" % ((folder,) + sharpness(load_pngs(folder)[0])))


if __name__ == "__main__":
    main()
