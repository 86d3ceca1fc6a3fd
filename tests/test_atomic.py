"""Outputs are written whole or not at all, and `sample` streams an .npz to disk as it draws."""
import errno
import json

import numpy as np
import pytest
import torch

from shortrun import commands
from shortrun.atomic import atomic_write, write_text_atomic
from shortrun.distributed import World
from shortrun.errors import UserError
from shortrun.images import save_examples
from shortrun.run import open_run
from shortrun.tasks import synthesize
from shortrun.training import Trainer

from conftest import tiny_config


def _only(folder, name):
    assert sorted(p.name for p in folder.iterdir()) == [name]  # no temporary file left behind


def test_a_failed_write_keeps_the_previous_npz(tmp_path, monkeypatch):
    out = tmp_path / "samples.npz"
    old = torch.randint(0, 255, (5, 1, 8, 8), dtype=torch.uint8)
    save_examples(old, out, kind="image")

    def too_large(fh, *arrays):  # half a file, then the error a size limit gives
        fh.write(b"PK\x03\x04" + b"\0" * 100)
        raise OSError(errno.EFBIG, "File too large")

    monkeypatch.setattr(np, "savez", too_large)
    with pytest.raises(UserError, match="File too large; the previous file is unchanged"):
        save_examples(torch.zeros(9, 1, 8, 8, dtype=torch.uint8), out, kind="image")
    assert np.array_equal(np.load(out)["arr_0"], old.permute(0, 2, 3, 1).numpy())
    _only(tmp_path, "samples.npz")


@pytest.mark.parametrize("name", ["grid.png", "points.png"])
def test_a_failed_write_keeps_the_previous_figure(tmp_path, monkeypatch, name):
    from PIL import Image

    out = tmp_path / name
    kind, x = ("image", torch.zeros(4, 1, 8, 8, dtype=torch.uint8)) if name == "grid.png" else ("points", torch.zeros(9, 2))
    save_examples(x, out, kind=kind)
    before = out.read_bytes()
    real_fsync = __import__("os").fsync

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("os.fsync", full_disk)
    with pytest.raises(UserError, match="No space left on device"):
        save_examples(x, out, kind=kind)
    monkeypatch.setattr("os.fsync", real_fsync)
    assert out.read_bytes() == before and Image.open(out).size[0] > 0
    _only(tmp_path, name)


def test_a_failed_text_write_keeps_the_previous_json_and_other_errors_pass_through(tmp_path):
    out = tmp_path / "eval.json"
    write_text_atomic(out, json.dumps({"fid": 1.0}))

    def fails(exc):
        def writer(fh):
            fh.write(b'{"fid": ')
            raise exc
        return writer

    with pytest.raises(UserError, match="cannot write .*eval.json: File too large"):
        atomic_write(out, fails(OSError(errno.EFBIG, "File too large")))
    with pytest.raises(KeyError):  # not an I/O error: a bug, shown as it is
        atomic_write(out, fails(KeyError("x")))
    assert json.loads(out.read_text()) == {"fid": 1.0}
    _only(tmp_path, "eval.json")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("stream") / "run"
    Trainer(tiny_config(), path).save()
    return path


def test_streamed_npz_equals_the_in_memory_samples(run, tmp_path):
    commands.sample_job(run, tmp_path / "s.npz", n=13, seed=3, batch_size=4, progress=False)
    arr = np.load(tmp_path / "s.npz", allow_pickle=False)["arr_0"]
    r = open_run(run)
    expected = synthesize(r.model, 13, seed=3, to_data=r.codec.from_model).permute(0, 2, 3, 1).numpy()
    assert arr.dtype == np.uint8 and arr.shape == (13, 8, 8, 1)
    assert np.array_equal(arr, expected)
    _only(tmp_path, "s.npz")


def test_sample_writes_as_it_draws(run, tmp_path, monkeypatch):
    """Each batch is on disk before the next is drawn: nothing holds all n samples."""
    out, sizes, real = tmp_path / "s.npz", [], commands.synthesize

    def watched(*a, **kw):
        tmp = list(tmp_path.glob("s.npz.*.tmp"))
        sizes.append(tmp[0].stat().st_size if tmp else 0)
        return real(*a, **kw)

    monkeypatch.setattr(commands, "synthesize", watched)
    commands.sample_job(run, out, n=8 * 512, batch_size=512, progress=False)
    batch_bytes = 512 * 64
    assert len(sizes) == 8
    assert all(s >= i * batch_bytes - 8192 for i, s in enumerate(sizes))  # less only an 8 KB write buffer
    assert np.load(out)["arr_0"].shape == (4096, 8, 8, 1)


def test_shards_of_two_ranks_join_into_the_single_process_file(run, tmp_path, monkeypatch):
    """torchrun's path without torchrun: rank 1 writes its shard, then rank 0 its own and joins them."""
    monkeypatch.setattr(commands.distributed, "barrier", lambda world: None)
    r = open_run(run)
    for rank in (1, 0):
        commands.sample_npz(r, tmp_path / "two.npz", 11, world=World(rank, 2), seed=5, batch_size=3)
    commands.sample_npz(r, tmp_path / "one.npz", 11, world=World(), seed=5, batch_size=4)
    assert np.array_equal(np.load(tmp_path / "two.npz")["arr_0"], np.load(tmp_path / "one.npz")["arr_0"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.npz", "two.npz"]  # shards removed
