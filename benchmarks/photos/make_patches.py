"""Cut 32x32 RGB patches from the colour photographs that ship inside the scikit-image wheel, into
OUT_DIR/train/ and OUT_DIR/heldout/: a natural-image benchmark that needs no download.

  python benchmarks/photos/make_patches.py /work/bench_photos [--size 32] [--stride 16] [--scales 1,2,4]

Split by region, so that no held-out pixel is ever seen in training: per photo, the right
--holdout fraction of the width (a column boundary, rounded to a multiple of the largest scale)
is held out. Each side is cropped from the full-size photo *before* it is downscaled, so even the
downscaling filter never mixes pixels across the boundary, and a patch lies wholly in one side.

Scales: a 32x32 crop of a 512-px photo is mostly flat texture; the photo downscaled by 2 and 4
shows whole objects. The stride is given in full-size pixels (a factor-f copy uses stride/f), so
every scale contributes about the same number of patches. Deterministic: no randomness except
the optional, seeded --max-train/--max-heldout subsampling.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
from PIL import Image

# Natural colour photographs whose files are inside the wheel (skimage.data loads them offline).
# stereo_motorcycle is a stereo pair: only the left view is used, since the right view shows the
# same scene shifted and would leak the held-out strip into training.
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle")


def load_photo(name: str) -> np.ndarray:
    """The photo as uint8 [H, W, 3]; greys become RGB so every patch has three channels."""
    import skimage.data

    img = skimage.data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3])


def downscale(region: np.ndarray, factor: int) -> np.ndarray:
    """Lanczos downscale of one side of the split (never the whole photo: see the module doc)."""
    if factor == 1:
        return region
    h, w = region.shape[0] // factor, region.shape[1] // factor
    return np.asarray(Image.fromarray(region).resize((w, h), Image.LANCZOS))


def patches(img: np.ndarray, size: int, stride: int):
    """Every size x size window at the given stride that lies wholly inside img: (y, x, patch)."""
    h, w = img.shape[:2]
    for y in range(0, h - size + 1, stride):
        for x in range(0, w - size + 1, stride):
            yield y, x, img[y:y + size, x:x + size]


def prepare(folder: str, overwrite: bool) -> None:
    os.makedirs(folder, exist_ok=True)
    old = [f for f in os.listdir(folder) if f.endswith(".png")]
    if old and not overwrite:
        sys.exit(f"{folder} already holds {len(old)} PNGs; pass --overwrite to replace them")
    for f in old:
        os.remove(os.path.join(folder, f))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out_dir")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--stride", type=int, default=16, help="in full-size pixels")
    p.add_argument("--scales", default="1,2,4", help="downscale factors")
    p.add_argument("--holdout", type=float, default=0.25, help="right fraction of each photo held out")
    p.add_argument("--photos", default=",".join(PHOTOS),
                   help="skimage.data names (motorcycle = left view of stereo_motorcycle)")
    p.add_argument("--max-train", type=int, default=0, help="subsample to at most this many (0: all)")
    p.add_argument("--max-heldout", type=int, default=0)
    p.add_argument("--seed", type=int, default=0, help="only for the subsampling")
    p.add_argument("--overwrite", action="store_true", help="delete PNGs already in the two folders")
    a = p.parse_args(argv)
    scales = [int(s) for s in a.scales.split(",")]
    out = {"train": [], "heldout": []}
    split = {"size": a.size, "stride": a.stride, "scales": scales, "holdout": a.holdout, "photos": {}}
    for name in a.photos.split(","):
        img = load_photo(name)
        h, w = img.shape[:2]
        step = max(scales)
        x0 = int(round(w * (1 - a.holdout) / step)) * step  # boundary column, same on every scale
        split["photos"][name] = {"height": h, "width": w, "heldout_columns": [x0, w]}
        counts = []
        for side, region in (("train", img[:, :x0]), ("heldout", img[:, x0:])):
            for f in scales:
                small = downscale(region, f)
                n = 0
                for y, x, patch in patches(small, a.size, max(1, a.stride // f)):
                    out[side].append((f"{name}_s{f}_y{y:03d}_x{x:03d}.png", patch))
                    n += 1
                counts.append(f"{side} s{f}: {n}")
        print(f"{name} {w}x{h}, held-out columns {x0}..{w}: " + ", ".join(counts))
    rng = np.random.default_rng(a.seed)
    for side, cap in (("train", a.max_train), ("heldout", a.max_heldout)):
        items = out[side]
        if cap and len(items) > cap:
            keep = np.sort(rng.choice(len(items), cap, replace=False))
            items = [items[i] for i in keep]
        folder = os.path.join(a.out_dir, side)
        prepare(folder, a.overwrite)
        for fname, patch in items:
            Image.fromarray(patch).save(os.path.join(folder, fname))
        split[side] = len(items)
        print(f"{side}: {len(items)} patches -> {folder}")
    with open(os.path.join(a.out_dir, "split.json"), "w") as fh:
        json.dump(split, fh, indent=1)


if __name__ == "__main__":
    main()
