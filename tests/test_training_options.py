"""Options beyond the paper's loop: the weight average (train.ema), warm-up, schedules laid out
over a time budget, the graph chain's noise, and train() leaving the caller's config alone."""
import copy

import pytest
import torch

from shortrun import open_run, synthesize, train
from shortrun.config import TrainConfig
from shortrun.errors import UserError
from shortrun.training import LearningStep, Trainer
from shortrun.training.ema import WeightAverage
from shortrun.training.step import mirror
from shortrun.training.schedule import budget_end, budget_horizon, lr_at, sigma_at

from conftest import straight_and_resumed, tiny_config


def test_weight_average_update_is_the_formula():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    ema = WeightAverage(net, decay=0.9)
    expected = {k: v.clone() for k, v in net.state_dict().items()}
    for t in range(30):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
        d = min(0.9, (1 + t) / (10 + t))
        for k, v in net.state_dict().items():
            expected[k] = d * expected[k] + (1 - d) * v
        ema.update(net)
    for k in expected:
        assert torch.allclose(ema.shadow[k], expected[k], atol=1e-6)
    raw = net.weight.detach().clone()
    with ema.applied(net):
        assert torch.allclose(net.weight, expected["weight"], atol=1e-6)
    assert torch.equal(net.weight, raw)  # the raw weights are back


def test_resume_is_exact_with_the_weight_average(tmp_path):
    cfg = lambda: tiny_config("train.ema=0.9", "train.checkpoint_every=2", "train.iters=6")
    a, b = straight_and_resumed(cfg, tmp_path)
    for k, v in a.model.net.state_dict().items():
        assert torch.equal(v, b.model.net.state_dict()[k])
    # open_run loads the average, not the raw weights
    raw = Trainer(cfg(), tmp_path / "other")
    raw.restore(__import__("shortrun.training.checkpoint", fromlist=["x"]).load_latest(tmp_path / "straight")[1])
    assert not torch.equal(raw.model.net.state_dict()["f.0.weight"], a.model.net.state_dict()["f.0.weight"])
    assert torch.equal(raw.ema.shadow["f.0.weight"], a.model.net.state_dict()["f.0.weight"])


def test_warmup_and_anneal_values():
    t = TrainConfig(lr=1e-3, warmup_iters=4, schedule="anneal", iters=100, anneal_start=0.5, lr_final=1e-5,
                    data_noise=0.03, data_noise_final=0.01)
    assert [lr_at(t, i) for i in range(4)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3])
    assert lr_at(t, 49) == pytest.approx(1e-3) and lr_at(t, 99) == pytest.approx(1e-5)
    assert lr_at(t, 74) == pytest.approx(1e-3 * (1e-2) ** (24 / 49))  # geometric between
    assert sigma_at(t, 99) == pytest.approx(0.01) and sigma_at(t, 10) == pytest.approx(0.03)
    # laid out over a shorter horizon (a time budget): the fall ends at horizon - 1
    assert lr_at(t, 19, horizon=20) == pytest.approx(1e-5) and lr_at(t, 9, horizon=20) == pytest.approx(1e-3)


def test_budget_end_is_where_the_time_budget_stops_the_run():
    # the progress bar's total under --max-time: the pace so far, projected over the time left
    assert budget_end(it=10, done=10, elapsed=10.0, max_time=100, last_iter=240_000) == 100
    assert budget_end(it=110, done=10, elapsed=10.0, max_time=100, last_iter=240_000) == 200  # a resumed session
    assert budget_end(it=10, done=10, elapsed=1.0, max_time=1e6, last_iter=500) == 500  # never past the end
    assert budget_end(it=50, done=50, elapsed=120.0, max_time=100, last_iter=500) == 50  # over time: here
    assert budget_end(it=0, done=0, elapsed=0.0, max_time=100, last_iter=500) == 500  # no pace yet


def test_budget_horizon_projects_the_speed_and_only_shrinks_once_annealing():
    t = TrainConfig(iters=10_000, anneal_start=0.5)
    assert budget_horizon(t, it=2, done=2, elapsed=1.0, max_time=100, previous=None) is None  # too early
    assert budget_horizon(t, it=10, done=10, elapsed=10.0, max_time=100, previous=None) == 100  # 1 it/s
    assert budget_horizon(t, it=10, done=10, elapsed=1.0, max_time=1e6, previous=None) == 10_000  # capped
    # past anneal_start·horizon a faster machine does not push the end back out
    assert budget_horizon(t, it=60, done=60, elapsed=30.0, max_time=100, previous=100) == 100
    assert budget_horizon(t, it=60, done=60, elapsed=90.0, max_time=100, previous=100) == 66


def test_max_time_anneals_within_the_budget(tmp_path):
    # energy_l2 keeps the tiny net's f bounded: without it a fast machine's few thousand iterations
    # run away (the guard then stops the run), which is not what this test is about
    cfg = tiny_config("train.schedule=anneal", "train.anneal_start=0.3", "train.iters=1000000",
                      "train.lr=1e-3", "train.lr_final=1e-5", "train.energy_l2=0.1")
    result = train(cfg, tmp_path, max_time=4, progress=False)
    import json
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert result["iter"] < 1000000 and rows[-1]["lr"] < 1e-4  # annealed, though train.iters was far away


def test_graph_chain_body_takes_the_same_noise_as_the_plain_chain(one_thread):
    """LearningStep with the graph chain (its body runs eagerly on the CPU) gives the plain step's row."""
    from shortrun.sampler.cuda_graph import GraphedChain

    rows = []
    for graphed in (False, True):
        tr = Trainer(tiny_config("train.fused_grad=false"), "unused")
        chain = GraphedChain(tr.model, 8) if graphed else None
        step = LearningStep(tr.model, tr.opt, tr.data, tr.cfg.train, graphed=chain)
        rows.append([step(i) for i in range(3)])
    for a, b in zip(*rows):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5, abs=1e-6)


def test_train_leaves_the_callers_config_alone_and_needs_one(tmp_path):
    cfg = tiny_config()
    before = copy.deepcopy(cfg)
    train(cfg, tmp_path / "a", iters=2, progress=False)
    assert cfg == before
    with pytest.raises(UserError, match="needs a config"):
        train(None, tmp_path / "b")
    run = open_run(tmp_path / "a")
    assert synthesize(run.model, 2).shape == (2, 1, 8, 8)


def test_mirror_flips_exactly_the_chosen_examples():
    x = torch.randn(6, 3, 4, 5)
    which = torch.tensor([True, False, True, False, False, True])
    y = mirror(x, which)
    for i in range(6):
        assert torch.equal(y[i], x[i].flip(-1) if which[i] else x[i])


def test_flip_changes_learning_and_resumes_exactly(tmp_path):
    cfg = lambda *kv: tiny_config("train.checkpoint_every=2", "train.iters=4", *kv)
    flipped, resumed = straight_and_resumed(lambda: cfg("train.flip=true"), tmp_path)
    for k, v in flipped.model.net.state_dict().items():
        assert torch.equal(v, resumed.model.net.state_dict()[k])
    train(cfg(), tmp_path / "plain", progress=False)
    plain = open_run(tmp_path / "plain")
    assert not torch.equal(plain.model.net.state_dict()["f.0.weight"], flipped.model.net.state_dict()["f.0.weight"])


def test_flip_is_refused_for_points(tmp_path):
    with pytest.raises(UserError, match="train.flip"):
        Trainer(tiny_config("data.name=rings", "model.name=mlp", "train.flip=true"), tmp_path / "r")
