"""Tests for the on-disk image loaders (vision.py) and the 2-D toys (toys.py).

Every fixture is a tiny fake written into tmp_path at test time, in the real on-disk format,
so nothing is downloaded and no data files live in the repository.
"""
from __future__ import annotations

import io
import pickle
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from shortrun.config import DataConfig
from shortrun.data import load_dataset
from shortrun.data.toys import TOYS
from shortrun.data.vision import LOADERS
from shortrun.errors import UserError

RNG = np.random.default_rng(0)


# --- fixtures in the real formats ------------------------------------------------------------

def write_cifar(root, per_batch=4):
    """cifar-10-batches-py with python pickles laid out like the real ones; returns (train, test) uint8 NCHW."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    arrays = []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = RNG.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        with open(folder / name, "wb") as f:
            pickle.dump({"batch_label": name, "labels": [0] * per_batch, "data": data,
                         "filenames": [f"{i}.png" for i in range(per_batch)]}, f)
        arrays.append(data.reshape(-1, 3, 32, 32))
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)], "num_vis": 3072}, f)
    return np.concatenate(arrays[:5]), arrays[5]


def write_mnist(root, n_train=6, n_test=3):
    """The four unpacked idx files where torchvision's MNIST looks for them (ROOT/MNIST/raw)."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = RNG.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x803, n, 28, 28) + x.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x801, n) + bytes(n))
        images[prefix] = x
    return images["train"], images["t10k"]


def write_image_folder(root):
    """Good images of mixed sizes, modes and formats in nested folders, plus one corrupt and one truncated file."""
    (root / "a").mkdir(parents=True)
    (root / "b" / "sub").mkdir(parents=True)
    Image.fromarray(RNG.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(root / "a" / "rgb.png")
    Image.fromarray(RNG.integers(0, 256, (50, 20), dtype=np.uint8)).save(root / "a" / "grey.JPG", quality=90)
    Image.fromarray(RNG.integers(0, 256, (16, 16, 4), dtype=np.uint8), "RGBA").save(root / "b" / "sub" / "alpha.png")
    Image.fromarray(RNG.integers(0, 256, (25, 25, 3), dtype=np.uint8)).convert("P").save(root / "b" / "pal.gif")
    Image.fromarray(RNG.integers(0, 256, (12, 18, 3), dtype=np.uint8)).save(root / "b" / "img.bmp")
    (root / "a" / "broken.png").write_bytes(b"definitely not a png" * 10)
    buf = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    (root / "b" / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (root / "notes.txt").write_text("not an image")
    (root / "a" / "._rgb.png").write_bytes(b"macOS resource fork")  # hidden: ignored, no warning
    return 5  # good images


def framed(w, h, box, mode="L"):
    """Black image with a white rectangle `box` = (left, top, right, bottom)."""
    a = np.zeros((h, w), np.uint8)
    a[box[1]:box[3], box[0]:box[2]] = 255
    img = Image.fromarray(a)
    return img if mode == "L" else img.convert(mode)


# --- CIFAR-10 --------------------------------------------------------------------------------

def test_cifar10_reads_python_batches(tmp_path):
    train, test = write_cifar(tmp_path)
    ds = LOADERS["cifar10"](DataConfig(name="cifar10", root=str(tmp_path), image_size=32, channels=3))
    assert ds.kind == "image" and ds.train.dtype == torch.uint8
    assert torch.equal(ds.train, torch.from_numpy(train)) and torch.equal(ds.test, torch.from_numpy(test))


def test_cifar10_resized_to_grey_and_subset_reads_fewer_batches(tmp_path):
    write_cifar(tmp_path, per_batch=4)
    ds = load_dataset(DataConfig(name="cifar10", root=str(tmp_path), image_size=16, channels=1, subset=6))
    assert ds.train.shape == (6, 1, 16, 16) and ds.test.shape == (4, 1, 16, 16)


def test_cifar10_corrupt_batch_names_the_file(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_2").write_bytes(b"garbage")
    with pytest.raises(UserError, match="data_batch_2"):
        LOADERS["cifar10"](DataConfig(name="cifar10", root=str(tmp_path), image_size=32, channels=3))


def test_default_root_is_data_name_under_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as e:
        LOADERS["cifar10"](DataConfig(name="cifar10", root=""))
    assert str((tmp_path / "data" / "cifar10").resolve()) in str(e.value) and "data.root is empty" in str(e.value)
    write_cifar(tmp_path / "data" / "cifar10", per_batch=2)
    assert len(LOADERS["cifar10"](DataConfig(name="cifar10", root="", image_size=8, channels=3)).train) == 10


# --- MNIST -----------------------------------------------------------------------------------

def test_mnist_through_torchvision(tmp_path):
    train, test = write_mnist(tmp_path)
    ds = LOADERS["mnist"](DataConfig(name="mnist", root=str(tmp_path), image_size=28, channels=1))
    assert torch.equal(ds.train[:, 0], torch.from_numpy(train)) and torch.equal(ds.test[:, 0], torch.from_numpy(test))
    rgb = LOADERS["mnist"](DataConfig(name="mnist", root=str(tmp_path), image_size=32, channels=3))
    assert rgb.train.shape == (6, 3, 32, 32) and rgb.test.shape == (3, 3, 32, 32)


# --- missing data ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["cifar10", "mnist", "celeba64", "lsun", "folder"])
@pytest.mark.parametrize("state", ["missing", "empty"])
def test_missing_data_is_one_clear_line(tmp_path, name, state):
    root = tmp_path / "nowhere"
    if state == "empty":
        root.mkdir()
    with pytest.raises(UserError) as e:
        LOADERS[name](DataConfig(name=name, root=str(root)))
    message = str(e.value)
    assert str(root.resolve()) in message and "\n" not in message and "data.root" in message


def test_lsun_lmdb_without_the_package_says_pip_install(tmp_path):
    try:
        import lmdb  # noqa: F401
        pytest.skip("lmdb is installed")
    except ImportError:
        pass
    db = tmp_path / "bedroom_train_lmdb"
    db.mkdir()
    (db / "data.mdb").write_bytes(b"")
    with pytest.raises(UserError, match="pip install lmdb"):
        LOADERS["lsun"](DataConfig(name="lsun", root=str(tmp_path)))


# --- folders of images -----------------------------------------------------------------------

@pytest.mark.parametrize("channels", [1, 3])
def test_folder_skips_bad_files_with_one_warning_each(tmp_path, capsys, channels):
    n_good = write_image_folder(tmp_path)
    cfg = DataConfig(name="folder", root=str(tmp_path), image_size=12, channels=channels, holdout=0.0)
    ds = LOADERS["folder"](cfg)
    assert ds.train.shape == (n_good, channels, 12, 12) and ds.train.dtype == torch.uint8 and ds.test is None
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 2
    assert any("broken.png" in w for w in warnings) and any("truncated.jpg" in w for w in warnings)


def test_folder_bad_file_is_an_error_when_asked(tmp_path):
    write_image_folder(tmp_path)
    cfg = DataConfig(name="folder", root=str(tmp_path), image_size=8, bad_images="error")
    with pytest.raises(UserError, match="broken.png"):
        LOADERS["folder"](cfg)


def test_folder_is_deterministic_and_split(tmp_path):
    write_image_folder(tmp_path)
    cfg = DataConfig(name="folder", root=str(tmp_path), image_size=8, channels=3, holdout=0.4)
    a, b = LOADERS["folder"](cfg), LOADERS["folder"](cfg)
    assert len(a.train) == 3 and len(a.test) == 2
    assert torch.equal(a.train, b.train) and torch.equal(a.test, b.test)


def test_folder_center_crops_to_a_square(tmp_path):
    # wide and tall images whose central square is white and the rest black
    framed(60, 20, (20, 0, 40, 20)).save(tmp_path / "wide.png")
    framed(20, 60, (0, 20, 20, 40), "RGB").save(tmp_path / "tall.png")
    ds = LOADERS["folder"](DataConfig(name="folder", root=str(tmp_path), image_size=8, channels=1, holdout=0))
    assert ds.train.shape == (2, 1, 8, 8) and ds.train.min() >= 250


def test_folder_subset_reads_only_what_the_split_needs(tmp_path):
    for i in range(20):
        Image.new("L", (10, 10), i).save(tmp_path / f"{i:02d}.png")
    ds = load_dataset(DataConfig(name="folder", root=str(tmp_path), image_size=8, subset=3, holdout=0.25))
    # 4 files decoded: 1 held out, 3 for training, and only from the first 4 in sorted order
    assert len(ds.train) == 3 and len(ds.test) == 1
    assert set(torch.cat([ds.train, ds.test])[:, 0, 0, 0].tolist()) == {0, 1, 2, 3}


# --- CelebA and LSUN -------------------------------------------------------------------------

def test_celeba_takes_the_central_140_pixels(tmp_path):
    folder = tmp_path / "celeba" / "img_align_celeba"
    folder.mkdir(parents=True)
    for i in range(1, 5):  # aligned CelebA images are 178 x 218; the face square is the central 140
        framed(178, 218, (19, 39, 159, 179), "RGB").save(folder / f"{i:06d}.jpg", quality=95)
    ds = LOADERS["celeba64"](DataConfig(name="celeba64", root=str(tmp_path), image_size=16, channels=3, holdout=0.25))
    assert ds.train.shape == (3, 3, 16, 16) and ds.test.shape == (1, 3, 16, 16)
    assert ds.train.float().mean() > 245 and ds.train.min() > 200


def test_lsun_reads_lmdb_values_in_order_and_stops_early(tmp_path, monkeypatch):
    # a stand-in for the lmdb package with the few calls the loader makes (the real one may be absent)
    import sys
    import types

    blobs = []
    for i in range(10):
        buf = io.BytesIO()
        Image.new("RGB", (32, 24), (10 * i, 0, 0)).save(buf, "WEBP" if i % 2 else "JPEG", quality=100)
        blobs.append((f"{i:04d}".encode(), buf.getvalue()))
    blobs[2] = (b"0002", b"broken")

    class Txn:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def stat(self):
            return {"entries": len(blobs)}

        def cursor(self):
            return iter(blobs)

    env = types.SimpleNamespace(begin=lambda write=False: Txn(), close=lambda: None)
    monkeypatch.setitem(sys.modules, "lmdb", types.SimpleNamespace(open=lambda path, **kw: env))
    db = tmp_path / "bedroom_train_lmdb"
    db.mkdir()
    (db / "data.mdb").write_bytes(b"")
    ds = load_dataset(DataConfig(name="lsun", root=str(tmp_path), image_size=8, channels=3, subset=4, holdout=0.2))
    assert ds.train.shape == (4, 3, 8, 8) and len(ds.test) == 1
    # 5 good values decoded (the broken one skipped), none after them
    reds = sorted(round(v / 10) for v in torch.cat([ds.train, ds.test])[:, 0, 4, 4].tolist())
    assert reds == [0, 1, 3, 4, 5]


def test_lsun_accepts_a_plain_folder(tmp_path):
    for i in range(3):
        Image.fromarray(RNG.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(tmp_path / f"{i}.jpg")
    ds = LOADERS["lsun"](DataConfig(name="lsun", root=str(tmp_path), image_size=8, channels=3, holdout=0))
    assert ds.train.shape == (3, 3, 8, 8)


# --- through load_dataset --------------------------------------------------------------------

def test_load_dataset_digits_and_fake():
    digits = load_dataset(DataConfig(name="digits", image_size=8, channels=1))
    assert digits.kind == "image" and digits.train.shape[1:] == (1, 8, 8)
    assert len(digits.train) + len(digits.test) == 1797
    fake = load_dataset(DataConfig(name="fake", image_size=16, channels=3, fake_size=40, subset=10))
    assert fake.train.shape == (10, 3, 16, 16) and fake.test.dtype == torch.uint8


def test_load_dataset_mnist(tmp_path):
    write_mnist(tmp_path)
    ds = load_dataset(DataConfig(name="mnist", root=str(tmp_path), image_size=8, channels=1, subset=4))
    assert ds.train.shape == (4, 1, 8, 8) and ds.test.shape == (3, 1, 8, 8)


# --- 2-D toys --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(TOYS))
def test_toy_samples_shape_range_determinism(name):
    toy = TOYS[name]
    x = toy.sample(4000, torch.Generator().manual_seed(0))
    assert x.shape == (4000, 2) and x.dtype == torch.float32
    assert ((x / toy.scale).abs() <= 0.9).all(1).float().mean() > 0.99
    assert ((x / toy.scale).abs() <= 1.0).all()
    assert torch.equal(x, toy.sample(4000, torch.Generator().manual_seed(0)))
    assert not torch.equal(x, toy.sample(4000, torch.Generator().manual_seed(1)))


@pytest.mark.parametrize("name", sorted(TOYS))
def test_toy_log_density_is_high_on_samples_and_normalised(name):
    toy = TOYS[name]
    x = toy.sample(500, torch.Generator().manual_seed(2))
    on = toy.log_density(x)
    far = toy.log_density(torch.tensor([[6.0, 6.0], [-7.0, 0.5], [0.0, -9.0]]))
    assert on.shape == (500,) and torch.isfinite(on).all() and on.min() > far.max()
    # integrates to 1 on a grid covering the support
    lin = torch.linspace(-5, 5, 161)
    h = (lin[1] - lin[0]).item()
    grid = torch.stack(torch.meshgrid(lin, lin, indexing="xy"), -1).reshape(-1, 2)
    assert toy.log_density(grid).exp().sum().item() * h * h == pytest.approx(1.0, abs=0.03)


def test_toy_loaders_fixed_seeds():
    a = load_dataset(DataConfig(name="moons", toy_size=300))
    b = load_dataset(DataConfig(name="moons", toy_size=300))
    assert a.kind == "points" and a.train.shape == (300, 2) and a.test.shape == (5000, 2)
    assert a.scale == TOYS["moons"].scale
    assert torch.equal(a.train, b.train) and not torch.equal(a.train[:300], a.test[:300])
    assert a.to_model(a.train).abs().max() <= 1.0
