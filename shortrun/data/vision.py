"""Image datasets read from disk: CIFAR-10, MNIST, CelebA (aligned), LSUN bedrooms and any folder of images.

Nothing is ever downloaded: when the files are not there, a `UserError` says, on one line, where
we looked and how to get them. Every loader returns uint8 [N, C, H, W] images already brought to
`cfg.image_size` and `cfg.channels`. Sets without an official test split get a fixed random
held-out part (`split_holdout`); with `cfg.subset` set, only as many files as that split needs are
decoded, so a 40k-image run does not read all of CelebA or LSUN.
"""
from __future__ import annotations

import io
import math
import os
import pickle
import sys
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from PIL import Image

from ..config import DataConfig
from ..errors import UserError
from .dataset import Dataset, split_holdout
from .transforms import fit_images

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
# PIL's decoders and resize release the GIL, so threads give a real speed-up on big folders
_WORKERS = min(8, os.cpu_count() or 1)


def _root(cfg: DataConfig) -> tuple[Path, str]:
    """The absolute data folder, and a note for error messages when it is the default."""
    if cfg.root:
        return Path(cfg.root).expanduser().resolve(), ""
    default = Path.cwd() / "data" / cfg.name
    return default.resolve(), f" (data.root is empty, so the default ./data/{cfg.name} was used)"


def _not_found(cfg: DataConfig, where: Path, note: str, how: str) -> UserError:
    return UserError(f"{cfg.name}: no data found at {where}{note}; {how}, or set data.root to where it is")


def _read_limit(cfg: DataConfig) -> int | None:
    """How many images to decode so that `split_holdout` still leaves `cfg.subset` for training."""
    if not cfg.subset:
        return None
    if cfg.holdout <= 0:
        return cfg.subset
    if cfg.holdout >= 1:
        return None
    # the same rounding as split_holdout, so the train part is exactly large enough
    n = math.ceil(cfg.subset / (1 - cfg.holdout))
    while n - max(1, int(round(n * cfg.holdout))) < cfg.subset:
        n += 1
    return n


def _image_files(folder: Path) -> list[Path]:
    """Image files under `folder` (recursively), in a platform-independent sorted order.

    Hidden files are left out: macOS leaves `._name.jpg` companions that are not images."""
    files = [p for p in folder.rglob("*")
             if p.suffix.lower() in IMAGE_EXTS and not p.name.startswith(".") and p.is_file()]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def _decode(src, size: int, mode: str, crop: int | None) -> np.ndarray:
    """One image (path or file object) -> uint8 [size, size] or [size, size, 3].

    Takes the central square (or the central `crop` x `crop` pixels), then resizes it with PIL,
    per image, because files differ in size and cannot be stacked before resizing."""
    with Image.open(src) as img:
        w, h = img.size
        side = min(w, h) if crop is None else min(crop, w, h)
        # JPEGs can be decoded at 1/2, 1/4 or 1/8 scale: much faster; asking for twice the final size
        # (as PIL's thumbnail does) keeps the quality of the final resize
        img.draft(mode, (math.ceil(2 * w * size / side), math.ceil(2 * h * size / side)))
        side = round(side * img.size[0] / w)
        img = _to_8bit(img).convert(mode)
        # crop before resizing: resize(box=...) would let the filter reach pixels outside the square
        left, top = (img.size[0] - side) // 2, (img.size[1] - side) // 2
        img = img.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(img)


def _to_8bit(img: Image.Image) -> Image.Image:
    """Greyscale of more than 8 bits (16-bit PNGs, 32-bit integer or float TIFFs) scaled to 0..255 (floats on [0, 1] from 1):
    PIL's convert to L or RGB would clip it at 255, and a 16-bit image would come out almost white."""
    if not (img.mode in ("I", "F") or img.mode.startswith("I;16")):
        return img
    a = np.asarray(img, dtype=np.float64)
    top = float(a.max(initial=0.0))
    if img.mode.startswith("I;16") or 255 < top <= 65535:
        top = 65535.0  # the full 16-bit range, so a dark 16-bit image stays dark
    elif img.mode == "F" and top <= 1:
        top = 1.0  # a float image on [0, 1]
    elif top <= 255:
        top = 255.0  # already 8-bit values in a wider container
    a = np.nan_to_num(a, nan=0.0, posinf=top, neginf=0.0)
    return Image.fromarray(np.clip(np.rint(a * (255.0 / top)), 0, 255).astype(np.uint8), "L")


def _try_decode(item, size: int, mode: str, crop: int | None):
    try:
        return _decode(item, size, mode, crop)
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as e:
        return e  # reported, in file order, by the caller


def _load_images(items: Iterable[tuple[str, object]], total: int, cfg: DataConfig,
                 limit: int | None = None, crop: int | None = None) -> torch.Tensor:
    """Decodes (name, path-or-bytes) items in order until `limit` good images, skipping or
    rejecting bad ones per `cfg.bad_images`; uint8 [N, C, size, size]."""
    from tqdm import tqdm

    from ..progress import bar as progress_bar

    mode = "L" if cfg.channels == 1 else "RGB"
    want = total if limit is None else min(limit, total)
    size = cfg.image_size
    out = np.empty((want, size, size) + ((3,) if mode == "RGB" else ()), dtype=np.uint8)
    n = 0
    items = iter(items)

    def job(item):
        src = io.BytesIO(item[1]) if isinstance(item[1], (bytes, bytearray, memoryview)) else item[1]
        return _try_decode(src, size, mode, crop)

    with ThreadPoolExecutor(_WORKERS) as pool, progress_bar(total=want, desc=f"loading {cfg.name}", unit="img",
                                                            disable=want <= 1000) as bar:
        while n < want:
            chunk = list(islice(items, 256))  # bounded: only a chunk of files in flight at a time
            if not chunk:
                break
            for (name, _), result in zip(chunk, pool.map(job, chunk)):
                if isinstance(result, Exception):
                    reason = " ".join(str(result).split()) or type(result).__name__
                    if cfg.bad_images == "error":
                        raise UserError(f"{cfg.name}: cannot read image {name}: {reason} "
                                        f"(set data.bad_images=skip to skip unreadable files)")
                    # through tqdm, so the warning does not break the progress bar's line
                    tqdm.write(f"warning: skipping unreadable image {name}: {reason}", file=sys.stderr)
                    continue
                out[n] = result
                n += 1
                bar.update(1)
                if n == want:
                    break
    if n == 0:
        raise UserError(f"{cfg.name}: none of the {total} image files could be read")
    x = torch.from_numpy(out[:n])
    return (x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2)).contiguous()


def _from_files(cfg: DataConfig, files: list[Path], crop: int | None = None) -> Dataset:
    x = _load_images(((str(p), p) for p in files), len(files), cfg, _read_limit(cfg), crop)
    train, test = split_holdout(fit_images(x, cfg.image_size, cfg.channels), cfg.holdout)
    return Dataset(cfg.name, "image", train, test)


def _folder(cfg: DataConfig) -> Dataset:
    root, note = _root(cfg)
    if root.is_file() and root.suffix.lower() in IMAGE_EXTS:
        files = [root]  # one image: `reconstruct --images photo.png`
    else:
        files = _image_files(root) if root.is_dir() else []
    if not files:
        kinds = ", ".join(sorted(e[1:] for e in IMAGE_EXTS))
        raise _not_found(cfg, root, note, f"put image files ({kinds}) there, in any subfolders")
    return _from_files(cfg, files)


def _cifar10(cfg: DataConfig) -> Dataset:
    # torchvision's CIFAR10 insists on the md5 sum of every batch (so small test fixtures cannot pass);
    # the python-format batches are plain pickles, so we read them here
    root, note = _root(cfg)
    folder = next((d for d in (root / "cifar-10-batches-py", root) if (d / "data_batch_1").is_file()), None)
    if folder is None:
        raise _not_found(cfg, root, note, "download the python version from "
                         "https://www.cs.toronto.edu/~kriz/cifar.html and extract it so that "
                         f"{root / 'cifar-10-batches-py'} exists")

    def read(names: list[str], limit: int | None) -> torch.Tensor:
        parts, n = [], 0
        for name in names:
            path = folder / name
            if limit is not None and n >= limit:
                break  # 10,000 images per batch: later ones are not needed for a subset
            try:
                with open(path, "rb") as f:
                    entry = pickle.load(f, encoding="latin1")
                # rows are 3072 bytes: the R, G, B planes of a 32x32 image, i.e. already CHW
                parts.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            except FileNotFoundError:
                raise UserError(f"cifar10: {path} is missing; the folder should hold data_batch_1..5 "
                                "and test_batch") from None
            except (pickle.UnpicklingError, KeyError, ValueError, TypeError, EOFError, AttributeError) as e:
                raise UserError(f"cifar10: {path} is not a CIFAR-10 python batch ({type(e).__name__}: {e})") from None
            n += len(parts[-1])
        return torch.from_numpy(np.concatenate(parts))

    train = read([f"data_batch_{i}" for i in range(1, 6)], cfg.subset or None)
    test = read(["test_batch"], None)
    return Dataset(cfg.name, "image", fit_images(train, cfg.image_size, cfg.channels),
                   fit_images(test, cfg.image_size, cfg.channels))


def _mnist(cfg: DataConfig) -> Dataset:
    # torchvision's MNIST only checks that the unpacked idx files exist, so it serves as is
    from torchvision.datasets import MNIST

    root, note = _root(cfg)
    try:
        sets = [MNIST(str(root), train=train, download=False).data for train in (True, False)]
    except RuntimeError as e:
        if "not found" not in str(e).lower():
            raise UserError(f"mnist: cannot read the idx files in {root / 'MNIST' / 'raw'}: {e}") from None
        raise _not_found(cfg, root, note, "get train-images-idx3-ubyte, train-labels-idx1-ubyte, "
                         "t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (https://yann.lecun.com/exdb/mnist/ "
                         f"or a mirror), unzip them and put them in {root / 'MNIST' / 'raw'}") from None
    except (ValueError, TypeError, KeyError, IndexError) as e:
        raise UserError(f"mnist: cannot read the idx files in {root / 'MNIST' / 'raw'}: {e}") from None
    train, test = (fit_images(x[:, None], cfg.image_size, cfg.channels) for x in sets)
    return Dataset(cfg.name, "image", train, test)


def _celeba(cfg: DataConfig) -> Dataset:
    # torchvision's CelebA wants md5-checked annotation files we do not need; the images are plain JPEGs.
    # The aligned images are 178x218 with the face in the middle: the usual 140x140 center crop keeps it.
    root, note = _root(cfg)
    for folder in (root / "celeba" / "img_align_celeba", root / "img_align_celeba", root):
        files = _image_files(folder) if folder.is_dir() else []
        if files:
            return _from_files(cfg, files, crop=140)
    expected = root / "celeba" / "img_align_celeba" / "000001.jpg"
    raise _not_found(cfg, root, note, "download img_align_celeba.zip from "
                     f"https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html and unzip it so that {expected} exists")


def _lsun(cfg: DataConfig) -> Dataset:
    # torchvision's LSUN first lists every key of the 3M-image database (and caches the list in the
    # working directory); reading the LMDB ourselves lets us stop after the images we need
    root, note = _root(cfg)
    db = next((d for d in (root / "bedroom_train_lmdb", root) if (d / "data.mdb").is_file()), None)
    if db is None:
        files = _image_files(root) if root.is_dir() else []
        if files:  # a plain folder of exported images also works
            return _from_files(cfg, files)
        raise _not_found(cfg, root, note, "download the bedroom set with https://github.com/fyu/lsun "
                         f"(python download.py -c bedroom) and unzip it so that {root / 'bedroom_train_lmdb'}/data.mdb "
                         "exists (a folder of images works too)")
    try:
        import lmdb
    except ImportError:
        raise UserError(f"lsun: reading the LMDB database {db} needs the lmdb package: pip install lmdb") from None
    env = lmdb.open(str(db), readonly=True, lock=False, readahead=False, meminit=False)
    try:
        with env.begin(write=False) as txn:
            total = txn.stat()["entries"]
            items = ((f"{db}[{key.decode(errors='replace')}]", value) for key, value in txn.cursor())
            x = _load_images(items, total, cfg, _read_limit(cfg))
    finally:
        env.close()
    train, test = split_holdout(fit_images(x, cfg.image_size, cfg.channels), cfg.holdout)
    return Dataset(cfg.name, "image", train, test)


LOADERS: dict[str, Callable[[DataConfig], Dataset]] = {
    "cifar10": _cifar10,
    "mnist": _mnist,
    "celeba64": _celeba,
    "lsun": _lsun,
    "folder": _folder,
}
