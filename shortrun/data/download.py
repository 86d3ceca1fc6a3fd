"""`shortrun download NAME`: the one place where the package fetches files from the internet.

Loaders and the evaluator only read from disk (a run on a cluster node without internet must fail
early and say why, not hang in a download), so getting the data is a separate, explicit step.
Each known source lists its files, the checksum its publisher gives, and how to unpack them into
exactly the layout our readers expect (see data/vision.py and the evaluator's fid.py).

Nothing partial is ever left where a reader would look: files are streamed into a hidden staging
folder inside the destination (same file system, so the final `os.replace` is atomic), checked,
unpacked there, and only then renamed into place; on any failure the staging folder is removed.
Since files only arrive that way, "the expected files exist" means "they passed the checksum".

Default destinations: a dataset goes to ./data/NAME, the folder the loaders use when data.root is
empty; the Inception weights go to `default_inception_path()`, in the cache folder.
`url` names a mirror: for a one-file source a full URL (or a base ending in "/", to which the
file's name is added); for a multi-file set (mnist) the base URL the files' names are added to.
"""
from __future__ import annotations

import errno
import gzip
import hashlib
import http.client
import os
import shutil
import socket
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import UserError
from ..paths import unwritable

INCEPTION_NAME = "weights-inception-2015-12-05-6726825d.pth"  # the name the evaluator's fid.py knows
TIMEOUT_S = 30  # per socket operation: a dead server fails in seconds, a slow one still finishes
CHUNK = 1 << 20


@dataclass(frozen=True)
class Remote:
    url: str
    algo: str  # "md5" or "sha256": whichever the publisher gives
    digest: str  # the full hex digest, or a prefix of it where only that is published


@dataclass(frozen=True)
class Source:
    files: tuple[Remote, ...]
    unpack: str  # "tar": extract; "gunzip": MNIST/raw/<name without .gz>; "none": keep the file
    expect: tuple[str, ...]  # paths under the destination that make it complete
    result: str = ""  # what `download` returns, relative to the destination
    how: str = ""  # for sources that cannot be fetched: how to get them instead
    cache: bool = False  # default destination: the cache folder rather than ./data/NAME
    moves: tuple[str, ...] = ()  # top-level entries the unpacked result consists of


_MNIST_BASE = "https://ossci-datasets.s3.amazonaws.com/mnist/"  # torchvision's first mirror
_MNIST = {"train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",  # torchvision's md5s
          "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
          "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
          "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c"}

SOURCES: dict[str, Source] = {
    "cifar10": Source(
        (Remote("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "md5", "c58f30108f718f92721af3b95e74349a"),),
        "tar", tuple(f"cifar-10-batches-py/{n}" for n in
                     [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"]),
        moves=("cifar-10-batches-py",)),
    "mnist": Source(
        tuple(Remote(f"{_MNIST_BASE}{n}.gz", "md5", md5) for n, md5 in _MNIST.items()),
        "gunzip", tuple(f"MNIST/raw/{n}" for n in _MNIST), moves=("MNIST",)),
    # CelebA lives on Google Drive, which has no stable direct link (quotas, confirmation pages)
    "celeba64": Source((), "none", (), how=(
        "celeba64 cannot be downloaded automatically (its only source is Google Drive): get "
        "img_align_celeba.zip from https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html and unzip it so that "
        "ROOT/celeba/img_align_celeba/000001.jpg exists, ROOT being data.root (default ./data/celeba64)")),
    # The publisher gives no checksum; the name's suffix follows torch.hub's convention (the first
    # 8 hex digits of the file's sha256), so that prefix is what we check. Not verified against the
    # real file here (no network where this was written): if it ever fails, compare `sha256sum`.
    "inception": Source(
        (Remote(f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_NAME}",
                "sha256", INCEPTION_NAME.rsplit("-", 1)[1].split(".")[0]),),
        "none", (INCEPTION_NAME,), result=INCEPTION_NAME, cache=True, moves=(INCEPTION_NAME,)),
}
NAMES = tuple(SOURCES)


def cache_dir() -> Path:
    """$SHORTRUN_CACHE, else $XDG_CACHE_HOME/shortrun, else ~/.cache/shortrun."""
    if os.environ.get("SHORTRUN_CACHE"):
        return Path(os.environ["SHORTRUN_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "shortrun"


def default_inception_path() -> Path:
    """Where `shortrun download inception` puts the weights and where evaluate looks by default."""
    return cache_dir() / INCEPTION_NAME


def default_root(name: str) -> Path:
    return cache_dir() if SOURCES[name].cache else Path.cwd() / "data" / name


def _hash_file(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _mirror(remote: Remote, url: str | None, many: bool) -> str:
    if not url:
        return remote.url
    name = remote.url.rsplit("/", 1)[1]
    return url.rstrip("/") + "/" + name if many or url.endswith("/") else url


def _fetch(url: str, dest: Path, remote: Remote, progress: bool) -> None:
    """Streams `url` to `dest`, hashing on the way; raises UserError on a short or wrong file."""
    from ..progress import bar

    h = hashlib.new(remote.algo)
    got = 0
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp, open(dest, "wb") as out:
        size = resp.headers.get("Content-Length")
        size = int(size) if size and size.isdigit() else None
        with bar(total=size, desc=dest.name, unit="B", unit_scale=True, unit_divisor=1024,
                 disable=not progress) as b:
            # http.client returns b"" (no error) when the server closes early, so we count bytes
            for block in iter(lambda: resp.read(CHUNK), b""):
                out.write(block)
                h.update(block)
                got += len(block)
                b.update(len(block))
    if size is not None and got < size:
        raise UserError(f"download of {url} was interrupted: got {got} of {size} bytes; run it again")
    actual = h.hexdigest()
    if not actual.startswith(remote.digest.lower()):
        raise UserError(f"{url}: {remote.algo} checksum is {actual}, expected {remote.digest}: the file is "
                        "damaged or not the published one (a wrong --url?)")


def _safe_extract(archive: Path, out: Path) -> None:
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):  # Python 3.12, and 3.8-3.11 security releases
            tar.extractall(out, filter="data")
            return
        for m in tar.getmembers():  # the same rules by hand: no escaping paths, links or devices
            parts = PurePosixPath(m.name).parts
            if m.name.startswith("/") or ".." in parts or not (m.isfile() or m.isdir()):
                raise UserError(f"refusing {archive.name}: unsafe member {m.name!r}")
        tar.extractall(out)


def _unpack(source: Source, fetched: list[Path], out: Path) -> None:
    if source.unpack == "tar":
        for archive in fetched:
            _safe_extract(archive, out)
            archive.unlink()  # do not keep the archive in the staging folder next to its contents
    elif source.unpack == "gunzip":
        raw = out / "MNIST" / "raw"  # torchvision's MNIST reads the unpacked idx files from ROOT/MNIST/raw
        raw.mkdir(parents=True)
        for gz in fetched:
            with gzip.open(gz) as src, open(raw / gz.name[:-3], "wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK)
            gz.unlink()
    else:
        for f, name in zip(fetched, source.moves):  # under the name the reader looks for, whatever the URL
            os.replace(f, out / name)


def _complete(source: Source, root: Path) -> bool:
    if not all((root / p).is_file() for p in source.expect):
        return False
    if source.unpack == "none":  # a lone file can be checked again at little cost
        return all(_hash_file(root / p, r.algo).startswith(r.digest)
                   for p, r in zip(source.expect, source.files))
    return True


def download(name: str, root: str | Path | None = None, url: str | None = None, progress: bool = True) -> Path:
    """Fetches, checks and unpacks NAME under `root`; returns what to point the program at:
    data.root for a dataset, the weights file for inception. Does nothing when already complete."""
    if name not in SOURCES:
        raise UserError(f"unknown download {name!r}; known: {', '.join(NAMES)}")
    source = SOURCES[name]
    if source.how:
        raise UserError(source.how)
    root = Path(root).expanduser().resolve() if root else default_root(name).resolve()
    target = root / source.result
    if _complete(source, root):
        print(f"{name}: already present and verified at {target}")
        return target
    problem = unwritable(root)  # a file in the way, or no permission: one line, before any transfer
    if problem:
        raise UserError(f"{name}: {problem}")
    blocking = [m for m in source.moves if (root / m).is_dir()]
    if blocking:  # a folder we did not finish would be mixed with ours: the user decides
        raise UserError(f"{name}: {root / blocking[0]} exists but is incomplete; remove it and run again")
    staging, src, created, done = None, "", not root.exists(), False
    try:
        root.mkdir(parents=True, exist_ok=True)
        # hidden, inside root: invisible to the loaders, and on the same file system as the target
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-download-", dir=root))
        fetched = []
        for remote in source.files:
            src = _mirror(remote, url, len(source.files) > 1)
            dest = staging / remote.url.rsplit("/", 1)[1]
            _fetch(src, dest, remote, progress)
            fetched.append(dest)
        out = staging / "out"
        out.mkdir()
        _unpack(source, fetched, out)
        for m in source.moves:
            os.replace(out / m, root / m)  # atomic: the loader sees nothing or everything
        done = True
    except UserError:
        raise
    except urllib.error.HTTPError as e:
        raise UserError(f"{name}: {e.url} answered HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise UserError(f"{name}: cannot reach {src} ({e.reason}); are you offline? --url takes a mirror") from None
    except (http.client.IncompleteRead, ConnectionError, socket.timeout, TimeoutError) as e:
        # socket.timeout is TimeoutError from 3.10 on; both are listed for older Pythons
        raise UserError(f"{name}: download of {src} was interrupted "
                        f"({type(e).__name__}: {str(e) or 'timed out'}); run it again") from None
    except (tarfile.TarError, gzip.BadGzipFile, EOFError) as e:
        raise UserError(f"{name}: cannot unpack the downloaded archive: {e}") from None
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise UserError(f"{name}: disk full while writing under {root}; free space or pick --root") from None
        raise
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        if created and not done and root.is_dir() and not any(root.iterdir()):
            root.rmdir()  # a failed first try leaves the tree as it found it
    print(f"{name}: ready at {target}")
    return target
