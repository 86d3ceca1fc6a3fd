"""Splits each sample set's Inception FD to the held-out patches into its two parts, to see where a gap lies.

    python benchmarks/photos/decomp.py HELDOUT_DIR SAMPLES.npz [SAMPLES.npz ...]

FD = ‖μ − μ_ref‖² (the mean term: what the samples look like on average) + tr(Σ + Σ_ref − 2(Σ Σ_ref)^½)
(the covariance term: how they vary). tr Σ, the spread of the samples' features, says whether they vary
as much as real patches do. Same features and held-out cache as fd.py; also the pixel mean and std.
"""
from __future__ import annotations

import argparse

import numpy as np
from scipy import linalg

import fd


def parts(ref: dict, ev: dict) -> dict:
    mean = float(((ev["mu"] - ref["mu"]) ** 2).sum())
    root = linalg.sqrtm(ev["sigma"] @ ref["sigma"]).real
    cov = float(np.trace(ev["sigma"]) + np.trace(ref["sigma"]) - 2 * np.trace(root))
    return {"fd": mean + cov, "mean": mean, "cov": cov, "tr": float(np.trace(ev["sigma"]))}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("heldout", help="folder of held-out PNGs")
    p.add_argument("samples", nargs="+", help=".npz files with arr_0 uint8 [N,32,32,3]")
    p.add_argument("--batch", type=int, default=10)
    a = p.parse_args(argv)
    helper = fd.make_helper("cpu")
    ref = fd.heldout_stats(helper, a.heldout, a.batch)
    print(f"held-out: tr Σ {np.trace(ref['sigma']):.1f}")
    for path in a.samples:
        x = np.load(path)["arr_0"]
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[3] != 3:
            raise SystemExit(f"{path}: expected uint8 [N,H,W,3], got {x.dtype} {x.shape}")
        r = parts(ref, fd.stats(helper, x, a.batch))
        px = x.reshape(-1, 3)
        print(f"{path}: FD {r['fd']:.1f} = mean {r['mean']:.1f} + cov {r['cov']:.1f}; tr Σ {r['tr']:.1f}; "
              f"pixel mean {px.mean(0).round(1)} std {px.std(0).round(1)}")


if __name__ == "__main__":
    main()
