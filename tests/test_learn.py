"""Algorithm 1: direction of the update, checkpoints, exact resume, reproducible synthesis."""
import json

import torch

from shortrun import open_run, resolve, synthesize, train
from shortrun.data import Dataset
from shortrun.training import Trainer


def _blob_data(n=2000):
    g = torch.Generator().manual_seed(0)
    return Dataset("blob", "points", torch.randn(n, 2, generator=g) * 0.1 + torch.tensor([1.0, -0.5]), scale=2.0)


def test_learning_moves_f_toward_data():
    cfg = resolve("8gaussians", ["train.batch_size=128", "train.lr=3e-3", "sampler.n_steps=10", "model.n_f=32",
                                  "train.tensorboard=false"])
    tr = Trainer(cfg, "unused", data=_blob_data())
    x_data = tr.data.to_model(tr.data.train[:500])
    x_neg = tr.model.init(500, torch.Generator().manual_seed(1))
    gap = lambda: (tr.model.energy(x_data).mean() - tr.model.energy(x_neg).mean()).item()
    before = gap()
    for _ in range(30):
        tr.step()
    assert gap() > before + 0.1


def test_checkpoint_roundtrip_gives_identical_samples(tmp_path, tiny_overrides):
    cfg = resolve("digits", tiny_overrides)
    train(cfg, tmp_path / "run", iters=3, progress=False)
    run = open_run(tmp_path / "run")
    assert run.iter == 3
    tr = Trainer(cfg, tmp_path / "other")
    tr.model.net.load_state_dict(run.model.net.state_dict())
    a = synthesize(run.model, 6, seed=4)
    b = synthesize(tr.model, 6, seed=4)
    assert torch.equal(a, b)
    assert (tmp_path / "run" / "samples" / "final.png").exists()
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in rows] == [1, 2, 3]
    assert {"iter", "loss", "f_data", "f_sample", "ms_per_iter"} <= set(rows[0])


def test_same_seed_same_samples_whatever_the_batch_size(tmp_path, tiny_overrides):
    cfg = resolve("digits", tiny_overrides)
    tr = Trainer(cfg, tmp_path)
    a = synthesize(tr.model, 7, seed=9, batch_size=7)
    b = synthesize(tr.model, 7, seed=9, batch_size=3)
    c = synthesize(tr.model, 4, seed=9, batch_size=2, first=3)
    assert torch.allclose(a, b, atol=1e-6) and torch.allclose(a[3:], c, atol=1e-6)
    assert not torch.allclose(a, synthesize(tr.model, 7, seed=10))


def test_resume_continues_as_if_never_stopped(tmp_path, tiny_overrides):
    # the digits preset anneals lr over train.iters: the stop must not change the total
    cfg = lambda: resolve("digits", tiny_overrides + ["train.checkpoint_every=2", "train.iters=6"])
    train(cfg(), tmp_path / "straight", progress=False)
    tr = Trainer(cfg(), tmp_path / "split")
    tr.fit(progress=False, until=3)  # as if stopped (Ctrl-C, --max-time, a kill after a save) at 3
    train(None, tmp_path / "split", resume=True, progress=False)
    a, b = open_run(tmp_path / "straight"), open_run(tmp_path / "split")
    assert a.iter == b.iter == 6
    for (k, v), w in zip(a.model.net.state_dict().items(), b.model.net.state_dict().values()):
        assert torch.equal(v, w), k
    rows = lambda r: [json.loads(x)["iter"] for x in (tmp_path / r / "metrics.jsonl").read_text().splitlines()]
    assert rows("split") == rows("straight") == [1, 2, 3, 4, 5, 6]


def test_anneal_schedule_lowers_lr_and_sigma():
    from shortrun.training.schedule import lr_at, sigma_at
    t = resolve("cifar10_paper").train
    assert lr_at(t, 0) == t.lr and sigma_at(t, 1000) == t.data_noise
    assert abs(lr_at(t, t.iters - 1) - t.lr_final) < 1e-12
    assert abs(sigma_at(t, t.iters - 1) - t.data_noise_final) < 1e-12
    mid = lr_at(t, int(t.iters * 0.9))
    assert t.lr_final < mid < t.lr


def test_batches_cover_each_epoch_once():
    from shortrun.training.schedule import batch_indices
    seen = torch.cat([batch_indices(10, 4, it, seed=1) for it in range(5)])  # 20 = two epochs
    assert sorted(seen[:10].tolist()) == list(range(10)) and sorted(seen[10:].tolist()) == list(range(10))
    halves = torch.cat([batch_indices(10, 4, 2, 1, rank=r, world=2) for r in range(2)])
    assert torch.equal(halves, batch_indices(10, 4, 2, 1))


def test_energy_l2_adds_a_penalty_on_f_squared(tmp_path, tiny_overrides):
    """train.energy_l2 = α adds α·mean f² over data and samples to the paper's loss, and only that."""
    rows = {}
    for alpha in (0.0, 0.5):
        tr = Trainer(resolve("digits", tiny_overrides + [f"train.energy_l2={alpha}"]), tmp_path / str(alpha))
        with torch.no_grad():  # move f away from 0 so that the penalty is clearly non-zero
            tr.model.net.f[-1].bias.fill_(2.0)
        rows[alpha] = tr.step()
    for alpha, row in rows.items():
        gap = row["loss"] - (row["f_sample"] - row["f_data"])
        if alpha == 0:
            assert abs(gap) < 1e-6
        else:  # α·mean f² ≥ α·(mean of the two means)², with f near 2 here
            assert gap > alpha * ((row["f_data"] + row["f_sample"]) / 2) ** 2 * 0.99
    # the same seed draws the same batch, so the penalty-free parts agree at the first step
    assert abs(rows[0.0]["f_data"] - rows[0.5]["f_data"]) < 1e-6
