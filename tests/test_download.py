"""`shortrun download`: files come from a local HTTP server on 127.0.0.1 (never the internet),
with the registry's URLs and checksums swapped for the fixtures', so each failure mode can be
staged: a wrong file, a closed port, a connection cut before Content-Length, a full disk."""
import dataclasses
import errno
import gzip
import hashlib
import http.server
import io
import pickle
import socket
import struct
import tarfile
import threading

import numpy as np
import pytest

from shortrun.config import DataConfig
from shortrun.data import download as dl
from shortrun.errors import UserError


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict = {}  # path -> bytes, set per server
    hits: list = []

    def do_GET(self):
        self.hits.append(self.path)
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        short = self.path.startswith("/short/")  # promises more than it sends, then hangs up
        self.send_response(200)
        self.send_header("Content-Length", str(len(body) + (1000 if short else 0)))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    handler = type("H", (_Handler,), {"files": {}, "hits": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    handler.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield handler
    httpd.shutdown()
    httpd.server_close()


def _closed_port_url(path="/x"):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connection refused at once
    return f"http://127.0.0.1:{port}{path}"


def _cifar_tar(extra=None) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        entries = {n: pickle.dumps({"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8), "labels": [0, 1]})
                   for n in names}
        entries["batches.meta"] = pickle.dumps({"label_names": [str(i) for i in range(10)]})
        for n, data in entries.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{n}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for n, data in (extra or {}).items():
            info = tarfile.TarInfo(n)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _serve_cifar(server, monkeypatch, path="/cifar-10-python.tar.gz", digest=None, body=None):
    body = body or _cifar_tar()
    server.files[path.replace("/short", "")] = body
    server.files[path] = body
    remote = dl.Remote(server.base + path, "md5", digest or hashlib.md5(body).hexdigest())
    monkeypatch.setitem(dl.SOURCES, "cifar10", dataclasses.replace(dl.SOURCES["cifar10"], files=(remote,)))
    return body


def _assert_empty(root):
    assert not root.exists(), list(root.iterdir())  # not even the folder it made


def test_cifar10_lands_where_the_loader_reads_and_rerun_does_nothing(server, monkeypatch, tmp_path, capsys):
    from shortrun.data.vision import LOADERS

    _serve_cifar(server, monkeypatch)
    root = tmp_path / "data" / "cifar10"
    assert dl.download("cifar10", root, progress=False) == root
    assert [p.name for p in root.iterdir()] == ["cifar-10-batches-py"]  # no staging folder or archive left
    ds = LOADERS["cifar10"](DataConfig(name="cifar10", root=str(root), image_size=32, channels=3))
    assert tuple(ds.train.shape) == (10, 3, 32, 32) and tuple(ds.test.shape) == (2, 3, 32, 32)

    n = len(server.hits)
    assert dl.download("cifar10", root, progress=False) == root
    assert len(server.hits) == n and "already present" in capsys.readouterr().out


def test_default_root_is_the_loaders_default(server, monkeypatch, tmp_path):
    _serve_cifar(server, monkeypatch)
    monkeypatch.chdir(tmp_path)
    assert dl.download("cifar10", progress=False) == (tmp_path / "data" / "cifar10").resolve()
    assert (tmp_path / "data" / "cifar10" / "cifar-10-batches-py" / "test_batch").is_file()


def test_wrong_checksum_leaves_nothing(server, monkeypatch, tmp_path):
    _serve_cifar(server, monkeypatch, digest="0" * 32)
    with pytest.raises(UserError, match="checksum"):
        dl.download("cifar10", tmp_path / "r", progress=False)
    _assert_empty(tmp_path / "r")


def test_unreachable_source(monkeypatch, tmp_path):
    remote = dl.Remote(_closed_port_url(), "md5", "0" * 32)
    monkeypatch.setitem(dl.SOURCES, "cifar10", dataclasses.replace(dl.SOURCES["cifar10"], files=(remote,)))
    with pytest.raises(UserError, match="cannot reach") as e:
        dl.download("cifar10", tmp_path / "r", progress=False)
    assert "\n" not in str(e.value)
    _assert_empty(tmp_path / "r")


def test_interrupted_transfer_leaves_nothing(server, monkeypatch, tmp_path):
    _serve_cifar(server, monkeypatch, path="/short/cifar-10-python.tar.gz")
    with pytest.raises(UserError, match="interrupted"):
        dl.download("cifar10", tmp_path / "r", progress=False)
    _assert_empty(tmp_path / "r")


def test_full_disk_is_a_user_error(server, monkeypatch, tmp_path):
    _serve_cifar(server, monkeypatch)

    def full(*a):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(dl, "_unpack", full)
    with pytest.raises(UserError, match="disk full"):
        dl.download("cifar10", tmp_path / "r", progress=False)
    _assert_empty(tmp_path / "r")


def test_unsafe_archive_is_refused(server, monkeypatch, tmp_path):
    _serve_cifar(server, monkeypatch, body=_cifar_tar(extra={"../escaped": b"x"}))
    with pytest.raises(UserError):
        dl.download("cifar10", tmp_path / "r", progress=False)
    assert not (tmp_path / "escaped").exists()
    _assert_empty(tmp_path / "r")


def test_incomplete_folder_is_not_mixed_with(server, monkeypatch, tmp_path):
    _serve_cifar(server, monkeypatch)
    (tmp_path / "r" / "cifar-10-batches-py").mkdir(parents=True)
    with pytest.raises(UserError, match="incomplete"):
        dl.download("cifar10", tmp_path / "r", progress=False)


def _idx(images: np.ndarray | None, labels: np.ndarray | None) -> bytes:
    if images is not None:
        return struct.pack(">IIII", 0x803, *images.shape) + images.tobytes()
    return struct.pack(">II", 0x801, len(labels)) + labels.tobytes()


def test_mnist_from_a_mirror_reads_with_torchvision(server, monkeypatch, tmp_path):
    from torchvision.datasets import MNIST

    rng = np.random.default_rng(1)
    raw = {"train-images-idx3-ubyte": _idx(rng.integers(0, 256, (5, 28, 28), dtype=np.uint8), None),
           "train-labels-idx1-ubyte": _idx(None, np.arange(5, dtype=np.uint8)),
           "t10k-images-idx3-ubyte": _idx(rng.integers(0, 256, (3, 28, 28), dtype=np.uint8), None),
           "t10k-labels-idx1-ubyte": _idx(None, np.arange(3, dtype=np.uint8))}
    remotes = []
    for name, data in raw.items():
        gz = gzip.compress(data)
        server.files[f"/mirror/{name}.gz"] = gz
        # the registry's own base is dead: only the mirror can work
        remotes.append(dl.Remote(_closed_port_url(f"/orig/{name}.gz"), "md5", hashlib.md5(gz).hexdigest()))
    monkeypatch.setitem(dl.SOURCES, "mnist", dataclasses.replace(dl.SOURCES["mnist"], files=tuple(remotes)))
    root = tmp_path / "m"
    assert dl.download("mnist", root, url=server.base + "/mirror", progress=False) == root
    assert [p.name for p in root.iterdir()] == ["MNIST"]
    train, test = (MNIST(str(root), train=t, download=False) for t in (True, False))
    assert tuple(train.data.shape) == (5, 28, 28) and tuple(test.data.shape) == (3, 28, 28)
    assert int(train.targets[4]) == 4


def test_inception_goes_to_the_default_cache_and_is_rechecked(server, monkeypatch, tmp_path, capsys):
    body = b"not really inception weights" * 100
    server.files["/w/any-name.pth"] = body
    remote = dl.Remote(_closed_port_url("/elsewhere.bin"), "sha256", hashlib.sha256(body).hexdigest()[:8])
    monkeypatch.setitem(dl.SOURCES, "inception", dataclasses.replace(dl.SOURCES["inception"], files=(remote,)))
    monkeypatch.setenv("SHORTRUN_CACHE", str(tmp_path / "cache"))
    path = dl.download("inception", url=server.base + "/w/any-name.pth", progress=False)  # a full mirror URL
    assert path == dl.default_inception_path().resolve() and path.read_bytes() == body
    assert [p.name for p in path.parent.iterdir()] == [dl.INCEPTION_NAME]

    assert dl.download("inception", url=server.base + "/w/any-name.pth", progress=False) == path
    assert "already present" in capsys.readouterr().out
    path.write_bytes(b"damaged")  # a damaged file is fetched again, replaced in one step
    dl.download("inception", url=server.base + "/w/any-name.pth", progress=False)
    assert path.read_bytes() == body


def test_cache_dir_honours_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("SHORTRUN_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert dl.default_inception_path() == tmp_path / "shortrun" / dl.INCEPTION_NAME


def test_inception_name_matches_the_evaluator():
    import importlib

    try:  # the package is being reorganised: the evaluator's module under its new or old name
        fid = importlib.import_module("shortrun.evaluation.metrics.fid")
    except ModuleNotFoundError:
        fid = importlib.import_module("shortrun.evaluation.metrics.fid")

    assert dl.INCEPTION_NAME == fid.WEIGHTS_NAME and dl.SOURCES["inception"].files[0].url == fid.WEIGHTS_URL


def test_celeba64_says_how_to_get_it(tmp_path):
    with pytest.raises(UserError, match="img_align_celeba") as e:
        dl.download("celeba64", tmp_path)
    assert "\n" not in str(e.value) and "celeba/img_align_celeba/000001.jpg" in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(UserError, match="cifar10, mnist, celeba64, inception"):
        dl.download("imagenet")
    assert dl.NAMES == ("cifar10", "mnist", "celeba64", "inception")


def test_http_error_names_the_status(server, monkeypatch, tmp_path):
    _serve_cifar(server, monkeypatch)
    with pytest.raises(UserError, match="HTTP 404"):
        dl.download("cifar10", tmp_path / "r", url=server.base + "/nothing-here.tar.gz", progress=False)
    _assert_empty(tmp_path / "r")
