"""sampler.init_components=C: p_0 as a mixture of C low-rank Gaussians, one per k-means cluster."""
import pytest
import torch

from shortrun import open_run, synthesize, train
from shortrun.errors import UserError
from shortrun.sampler.fitted import FittedStart
from shortrun.sampler.kmeans import kmeans
from shortrun.training import checkpoint

from conftest import straight_and_resumed, tiny_config

CENTRES = torch.tensor([[-0.6] * 12, [0.0] * 12, [0.6] * 12])
SHARES = [600, 1300, 300]  # unequal, so the weights are checked, not just their count


def _blobs(seed=0):
    """Three separated blobs in [-1, 1]^12, each varying along its own direction; uint8 like images."""
    g = torch.Generator().manual_seed(seed)
    parts, truth = [], []
    for c, n in enumerate(SHARES):
        along = torch.zeros(12)
        along[4 * c:4 * c + 4] = 0.5
        parts.append(CENTRES[c] + torch.randn(n, 1, generator=g) * along * 0.2 + 0.01 * torch.randn(n, 12, generator=g))
        truth += [c] * n
    order = torch.randperm(sum(SHARES), generator=g)
    x = ((torch.cat(parts)[order] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return x, torch.tensor(truth)[order]


def _to_model(x):
    return x.float() / 127.5 - 1


def _rows(x):
    return lambda i: _to_model(x[i:i + 1024]).flatten(1)


def test_kmeans_finds_the_blobs_whatever_the_chunking():
    x, truth = _blobs()  # 2,200 examples: three chunks
    labels, counts = kmeans(_rows(x), len(x), 3, torch.Generator().manual_seed(0))
    assert sorted(counts.tolist()) == sorted(SHARES)
    for c in range(3):  # every true blob lands in one cluster, alone
        assert labels[truth == c].unique().numel() == 1
    with pytest.raises(ValueError):
        kmeans(_rows(x), len(x), 0, torch.Generator())


def test_mixture_fit_weights_means_directions_and_draws():
    x, _ = _blobs()
    start = FittedStart.fit(x, _to_model, rank=2, seed=0, components=3)
    assert start.components == 3 and start.bases.shape == (3, 2, 12)
    order = start.means[:, 0].argsort()  # components sorted by their blob's level
    assert torch.allclose(start.means[order], CENTRES, atol=0.02)
    assert torch.allclose(start.weights[order], torch.tensor(SHARES) / sum(SHARES))
    assert torch.allclose(start.mean, _to_model(x).mean(0), atol=1e-5)
    for j, c in enumerate(order.tolist()):  # each component's top direction is its own blob's
        top = start.bases[c, 0].abs()
        assert top[4 * j:4 * j + 4].sum() > 0.9 * top.sum()
    g = torch.Generator().manual_seed(1)
    z = start.draw((3000, 12), generator=g)
    nearest = (z[:, None] - start.means[None]).norm(dim=2).argmin(1)
    share = torch.bincount(nearest, minlength=3).float() / 3000
    assert torch.allclose(share, start.weights, atol=0.03)  # components drawn in proportion π
    again = start.draw((5, 12), generator=torch.Generator().manual_seed(1))
    assert torch.equal(again, start.draw((5, 12), generator=torch.Generator().manual_seed(1)))
    with pytest.raises(ValueError, match="mixture"):
        start.basis


def test_one_component_draws_exactly_as_the_single_gaussian():
    x, _ = _blobs()
    start = FittedStart.fit(x, _to_model, rank=3, seed=0)
    eps = torch.randn(4, 3, generator=torch.Generator().manual_seed(5))
    want = start.mean + 0.7 * eps @ start.basis  # the single-Gaussian formula, unchanged by mixtures
    got = start.draw((4, 12), scale=0.7, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(got, want, atol=1e-6)
    assert set(start.tensors()) == {"p0.mean", "p0.basis"}  # checkpoints keep their old names


def test_a_cluster_smaller_than_the_rank_gets_zero_rows():
    g = torch.Generator().manual_seed(0)
    tight = [level + 0.02 * torch.randn(1000, 12, generator=g) for level in (-0.5, 0.3)]
    few = torch.tensor([1.0, 0.9, 0.8])[:, None].expand(3, 12)  # three examples: two directions at most
    x = ((torch.cat(tight + [few]) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    start = FittedStart.fit(x, _to_model, rank=4, seed=0, components=3)
    small = int(start.weights.argmin())
    assert torch.allclose(start.weights[small], torch.tensor(3 / 2003))
    assert torch.allclose(start.means[small], _to_model(x[-3:]).mean(0))
    assert start.bases.shape == (3, 4, 12)
    assert torch.count_nonzero(start.bases[small].abs().sum(1) > 1e-6) <= 2
    assert torch.equal(start.bases[small, 3], torch.zeros(12))  # padded past the examples' own rank


def _cfg(*more):
    return tiny_config("sampler.init=fitted", "sampler.init_rank=2", "sampler.init_components=3",
                       "train.checkpoint_every=2", "train.iters=6", *more)


def test_a_mixture_run_saves_resumes_exactly_and_samples_from_it(tmp_path):
    a, b = straight_and_resumed(_cfg, tmp_path)
    for k, v in a.model.net.state_dict().items():
        assert torch.equal(v, b.model.net.state_dict()[k])
    assert torch.equal(a.model.start.bases, b.model.start.bases)
    state = checkpoint.load_latest(tmp_path / "straight")[1]
    assert state["extra"]["p0.mean"].shape[0] == 3 and state["extra"]["p0.weight"].shape == (3,)
    z0 = synthesize(open_run(tmp_path / "straight", ["sampler.n_steps=0"]).model, 64, seed=0)
    again = synthesize(open_run(tmp_path / "straight", ["sampler.n_steps=0"]).model, 64, seed=0)
    assert torch.equal(z0, again)
    # with K = 0 each sample is z itself: it lies in one component's plane μ_c + span(basis_c)
    start = a.model.start
    off = []
    for c in range(3):
        q = torch.linalg.qr(start.bases[c].T).Q  # [D, 2] orthonormal
        d = z0.flatten(1) - start.means[c]
        off.append((d - d @ q @ q.T).norm(dim=1))
    assert (torch.stack(off).min(0).values < 1e-4).all()


def test_damaged_mixture_weights_are_refused(tmp_path):
    train(_cfg("train.iters=2"), tmp_path / "r", progress=False)
    state = checkpoint.load_latest(tmp_path / "r")[1]
    shape = tuple(state["meta"]["shape"])
    for bad in (torch.tensor([1.0, -1.0, 0.5]), torch.zeros(3), torch.ones(2), torch.tensor([1.0, float("nan"), 1.0])):
        with pytest.raises(UserError):
            FittedStart.from_tensors(dict(state["extra"], **{"p0.weight": bad}), shape)
