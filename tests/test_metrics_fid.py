"""FID/IS through torch-fidelity with random Inception weights (no download, no real weights needed)."""
import math
from pathlib import Path

import pytest
import torch

pytest.importorskip("torch_fidelity")

from shortrun.errors import UserError  # noqa: E402
from shortrun.evaluation.metrics import fid  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread():
    """On a busy 2-core machine one thread ran Inception about 4x faster than two contending ones."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory) -> Path:
    """A randomly initialised InceptionV3 state dict in torch-fidelity's layout."""
    import torch_fidelity.feature_extractor_inceptionv3 as inc

    with pytest.MonkeyPatch.context() as mp:  # build the module without fetching or loading any weights
        mp.setattr(inc, "load_state_dict_from_url", lambda *a, **k: {})
        mp.setattr(inc.FeatureExtractorInceptionV3, "load_state_dict", lambda self, *a, **k: None)
        torch.manual_seed(0)
        net = inc.FeatureExtractorInceptionV3(fid.EXTRACTOR, ["2048", "logits_unbiased"])
    state = net.state_dict()
    for k, v in state.items():
        if k.endswith("bn.weight"):
            v.fill_(2.5)  # offsets the default init's shrinkage over ~90 layers: features of order 1, not 1e-8
    path = tmp_path_factory.mktemp("inception") / "random-inception.pth"
    torch.save(state, path)
    return path


def _images(n, channels, seed):
    return torch.randint(0, 256, (n, channels, 32, 32), generator=torch.Generator().manual_seed(seed),
                         dtype=torch.uint8)


def test_fid_is_runs_and_caches_reference(random_weights, tmp_path):
    # few images and the 64-dim layer: Inception at 299x299 and a 2048x2048 eigenproblem are slow on CPU
    samples, reference = _images(3, 3, 0), _images(3, 1, 1)  # grey reference: repeated to RGB
    out = fid.fid_is(samples, reference, random_weights, tmp_path, "ref set/a", dims=64)
    assert set(out) == {"fid", "isc_mean", "isc_std"}
    assert all(math.isfinite(v) for v in out.values())
    assert out["fid"] > 0 and out["isc_mean"] >= 1.0 - 1e-4  # IS >= 1 always
    cached = sorted(p.name for p in (tmp_path / "fidelity").glob("*.pt"))
    assert cached and all(name.startswith("ref_set_a-w") for name in cached)
    # same key, other images: the reference statistics come from the cache, so the FID is unchanged
    again = fid.fid_is(samples, _images(3, 3, 2), random_weights, tmp_path, "ref set/a", dims=64)
    assert again["fid"] == pytest.approx(out["fid"], rel=1e-9)


def test_no_weights_is_one_clear_line(monkeypatch, tmp_path):
    monkeypatch.delenv(fid.ENV_VAR, raising=False)
    assert fid.inception_weights_path(None) is None
    with pytest.raises(UserError) as e:
        fid.fid_is(_images(2, 3, 0), _images(2, 3, 1), fid.inception_weights_path(None), tmp_path, "k")
    msg = str(e.value)
    assert "\n" not in msg and fid.ENV_VAR in msg and fid.WEIGHTS_NAME in msg and fid.WEIGHTS_URL in msg
    monkeypatch.setenv(fid.ENV_VAR, str(tmp_path / "w.pth"))
    assert fid.inception_weights_path(None) == tmp_path / "w.pth"
    assert fid.inception_weights_path("explicit.pth") == Path("explicit.pth")
    with pytest.raises(UserError, match="does not exist"):
        fid.fid_is(_images(2, 3, 0), _images(2, 3, 1), fid.inception_weights_path(None), tmp_path, "k")


class _Payload:
    """Pickles as a call to Path.touch: loading it with weights_only=False would create a file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_crafted_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "executed"
    evil = tmp_path / "evil.pth"
    torch.save({"conv.weight": torch.zeros(1), "x": _Payload(marker)}, evil)
    with pytest.raises(UserError, match="refusing"):
        fid.fid_is(_images(2, 3, 0), _images(2, 3, 1), evil, tmp_path, "k")
    assert not marker.exists()
    torch.load(evil, weights_only=False)  # proves the payload is live: the unsafe load runs it
    assert marker.exists()


def test_weights_formats(tmp_path):
    from safetensors.torch import save_file

    save_file({"a": torch.ones(2)}, tmp_path / "w.safetensors")
    assert torch.equal(fid._safe_state_dict(tmp_path / "w.safetensors")["a"], torch.ones(2))
    torch.save([torch.ones(2)], tmp_path / "list.pth")
    with pytest.raises(UserError, match="dict of named tensors"):
        fid._safe_state_dict(tmp_path / "list.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="refusing"):
        fid._safe_state_dict(tmp_path / "junk.pth")
    (tmp_path / "text.pth").write_bytes(b"hello world")  # the unpickler says only "101" (the byte 'e')
    with pytest.raises(UserError, match="not a PyTorch or safetensors file, or damaged"):
        fid._safe_state_dict(tmp_path / "text.pth")


def test_frechet_distance_against_the_closed_form():
    import numpy as np
    from shortrun.evaluation.metrics.frechet import frechet_between, frechet_distance
    # diagonal covariances: d² = ‖μ₁ − μ₂‖² + Σᵢ (√a_i − √b_i)²
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.0])
    a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    exact = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert abs(frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) - exact) < 1e-10
    # a rotation of both leaves the distance unchanged (full, non-diagonal covariances)
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    rotated = frechet_distance(q @ mu1, q @ np.diag(a) @ q.T, q @ mu2, q @ np.diag(b) @ q.T)
    assert abs(rotated - exact) < 1e-9
    # and from samples, the fitted Gaussians give it approximately
    rng = np.random.default_rng(1)
    xa = mu1 + rng.normal(size=(200_000, 3)) * np.sqrt(a)
    xb = mu2 + rng.normal(size=(200_000, 3)) * np.sqrt(b)
    assert abs(frechet_between(xa, xb) - exact) < 0.05 * exact
