"""FID and Inception Score through torch-fidelity, from a local Inception weights file only.

    fid_is(samples, reference, inception_weights_path(opt), cache_dir, "cifar10-train-32")
    -> {"fid": ..., "isc_mean": ..., "isc_std": ...}

torch-fidelity downloads its InceptionV3 weights when it is given no path, and reads both the
weights and its cache files with `torch.load(weights_only=False)`, which runs any code a pickle
carries. So we never let it choose: the user's file is read here as plain tensors
(`weights_only=True`, or safetensors), written again to a private temporary file, and only that
copy reaches torch-fidelity; cache files that are not plain data are dropped before it reads them.
The reference statistics are cached under `cache_dir`, keyed by the caller's `cache_key` (which
must name the reference set) and a digest of the weights (other weights, other features).
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from ...data.download import default_inception_path
from ...errors import UserError

ENV_VAR = "SHORTRUN_INCEPTION_WEIGHTS"
WEIGHTS_NAME = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's own name for the file
WEIGHTS_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + WEIGHTS_NAME
EXTRACTOR = "inception-v3-compat"  # torch-fidelity's TF-exact Inception, the one published FIDs use


def inception_weights_path(explicit: str | None) -> Path | None:
    """The weights file to use: the explicit option, else $SHORTRUN_INCEPTION_WEIGHTS, else the file
    `shortrun download inception` put in the cache, else None."""
    value = explicit or os.environ.get(ENV_VAR)
    if value:
        return Path(value).expanduser()
    cached = default_inception_path()
    return cached if cached.is_file() else None


def check_weights_file(path: str | Path) -> None:
    """Refuses an explicitly given weights file that is missing or unreadable, before any work."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise UserError(f"--inception-weights {path}: a folder; give the weights file in it")
    if not path.is_file():
        raise UserError(f"--inception-weights {path}: no such file")
    _safe_state_dict(path)


def missing_message() -> str:
    return (f"FID/IS need the InceptionV3 weights file {WEIGHTS_NAME}: run `shortrun download inception` "
            f"where there is internet (or fetch {WEIGHTS_URL} by hand; pytorch-fid's "
            f"pt_inception-2015-12-05-6726825d.pth has the same layout) and point --inception-weights or "
            f"${ENV_VAR} at it if it is not in {default_inception_path().parent}")


def _safe_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Reads a weights file without running code from it: plain tensors or a refusal."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        if first.startswith("Weights only load failed"):  # torch's advice to unpickle it: not what we want
            first = "it holds more than tensors, or is damaged"
        elif not any(c.isalpha() for c in first):  # e.g. a bare byte value from the unpickler: say what it means
            first = "not a PyTorch or safetensors file, or damaged"
        raise UserError(f"refusing Inception weights {path}: not a plain tensor file ({first})") from None
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()):
        raise UserError(f"refusing Inception weights {path}: expected a dict of named tensors (a state_dict)")
    return {k: v.detach().clone().contiguous() for k, v in state.items()}  # plain tensors, no views or subclasses


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:12]


def _drop_unsafe_cache(cache_root: Path, name: str) -> None:
    """Removes our cache entries that would need more than plain arrays to load (torch-fidelity
    reads them with weights_only=False). Its statistics are numpy arrays, so those are allowed."""
    import numpy as np
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct

    allowed = [np.ndarray, np.dtype, _reconstruct, type(np.dtype(np.float64)), type(np.dtype(np.float32))]
    for item in cache_root.glob(f"{name}-*.pt"):
        try:
            with torch.serialization.safe_globals(allowed):
                torch.load(item, map_location="cpu", weights_only=True, mmap=True)  # checks the pickle, reads no data
        except Exception:
            print(f"warning: dropping cache file {item}: not plain data", file=sys.stderr)
            item.unlink(missing_ok=True)


class _Images(torch.utils.data.Dataset):
    """What torch-fidelity reads: one uint8 [3, H, W] tensor per item."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i]


def _as_rgb(images: torch.Tensor, what: str) -> torch.Tensor:
    images = torch.as_tensor(images)
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3) or len(images) < 2:
        raise UserError(f"{what}: expected at least 2 uint8 images [N, 1|3, H, W], got {images.dtype} "
                        f"{tuple(images.shape)}")
    # Inception takes RGB; a grey image is the same grey in all three channels
    return images.expand(-1, 3, -1, -1).contiguous() if images.shape[1] == 1 else images.contiguous()


def fid_is(samples: torch.Tensor, reference: torch.Tensor, weights_path: str | Path | None,
           cache_dir: str | Path, cache_key: str, dims: int = 2048, batch_size: int = 64,
           cuda: bool | None = None) -> dict:
    """FID of uint8 `samples` [N, C, H, W] against `reference`, and the samples' Inception Score.

    cache_key names the reference set (e.g. "cifar10-train-32-40000"): its statistics are reused
    under that name, so a different reference needs a different key.
    dims: the Inception layer for FID: 2048 is the standard (published numbers); 64, 192 or 768 are
        far cheaper (torch-fidelity's FID takes the eigenvalues of a dims x dims product) but not
        comparable with published FIDs.
    """
    if dims not in (64, 192, 768, 2048):
        raise UserError(f"FID dims must be 64, 192, 768 or 2048, got {dims}")
    if weights_path is None:
        raise UserError(missing_message())
    weights_path = Path(weights_path).expanduser()
    if not weights_path.is_file():
        raise UserError(f"Inception weights file {weights_path} does not exist; " + missing_message())
    state = _safe_state_dict(weights_path)
    samples, reference = _as_rgb(samples, "samples"), _as_rgb(reference, "reference images")

    import torch_fidelity

    cache_root = Path(cache_dir).expanduser() / "fidelity"
    cache_root.mkdir(parents=True, exist_ok=True)
    # the digest keeps statistics from one weights file apart from another's
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", cache_key) + "-w" + _digest(weights_path)
    _drop_unsafe_cache(cache_root, name)
    private = Path(tempfile.mkdtemp(prefix="shortrun-inception-"))  # mode 0700: only we can swap the file
    try:
        clean = private / WEIGHTS_NAME
        torch.save(state, clean)
        del state
        try:
            out = torch_fidelity.calculate_metrics(
                input1=_Images(samples), input2=_Images(reference), fid=True, isc=True,
                feature_extractor=EXTRACTOR, feature_extractor_weights_path=str(clean),
                feature_layer_fid=str(dims), isc_splits=min(10, len(samples)),  # the usual 10 splits, fewer for tiny sets
                cache=True, cache_root=str(cache_root), input2_cache_name=name,
                cuda=torch.cuda.is_available() if cuda is None else cuda, batch_size=batch_size,
                save_cpu_ram=True,  # no DataLoader worker processes: the images are already in memory
                verbose=False)
        except RuntimeError as e:
            if "state_dict" in str(e):  # weights of another network: say so on one line
                raise UserError(f"Inception weights {weights_path} do not fit torch-fidelity's InceptionV3 "
                                f"(expected {WEIGHTS_NAME})") from None
            raise
    finally:
        shutil.rmtree(private, ignore_errors=True)
    return {"fid": float(out[torch_fidelity.KEY_METRIC_FID]),
            "isc_mean": float(out[torch_fidelity.KEY_METRIC_ISC_MEAN]),
            "isc_std": float(out[torch_fidelity.KEY_METRIC_ISC_STD])}
