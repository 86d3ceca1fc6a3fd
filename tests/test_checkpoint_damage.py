"""Damaged checkpoints: Adam's state checked as untrusted input (a bad one is skipped on resume like
any damaged file), and the damaged files a resume skipped removed at its next save."""
import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from shortrun import train
from shortrun.errors import UserError
from shortrun.training import Trainer, checkpoint

from conftest import tiny_config


def _edit(path, key, value=None, plain=None):
    """Rewrites checkpoint `path` with tensor `key` set to `value` (deleted if None); `plain`
    replaces the optimizer's JSON-stored (non-tensor) state."""
    with safe_open(str(path), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = json.loads(f.metadata()["shortrun"])
    tensors.pop(key, None)
    if value is not None:
        tensors[key] = value
    if plain is not None:
        meta["optimizer"]["plain"] = plain
    save_file(tensors, str(path), metadata={"shortrun": json.dumps(meta)})


def _two_checkpoints(run, *overrides):
    """A run with checkpoints of iterations 0 and 1 (the newest has Adam state)."""
    tr = Trainer(tiny_config(*overrides), run)
    tr.save()
    tr.step()
    return tr.save()


DAMAGE = {
    "negative step": ("optim.0.step", lambda t: torch.tensor(-5.0), "0.step"),
    "step of 3 values": ("optim.0.step", lambda t: torch.tensor([1.0, 2.0, 3.0]), "0.step"),
    "fractional step": ("optim.1.step", lambda t: torch.tensor(2.5), "1.step"),
    "infinite step": ("optim.1.step", lambda t: torch.tensor(float("inf")), "1.step"),
    "complex step": ("optim.0.step", lambda t: torch.tensor(3.0 + 1j), "0.step"),
    "missing step": ("optim.2.step", lambda t: None, "2.step"),
    "negative exp_avg_sq": ("optim.1.exp_avg_sq", lambda t: -t.abs() - 1, "1.exp_avg_sq"),
    "NaN exp_avg_sq": ("optim.1.exp_avg_sq", lambda t: torch.full_like(t, float("nan")), "1.exp_avg_sq"),
    "NaN exp_avg": ("optim.3.exp_avg", lambda t: torch.full_like(t, float("nan")), "3.exp_avg"),
    "complex exp_avg": ("optim.0.exp_avg", lambda t: t.to(torch.complex64) * (1 + 1j), "0.exp_avg"),
    "complex NaN exp_avg_sq": ("optim.0.exp_avg_sq", lambda t: torch.full_like(t, complex("nan+1j"),
                                                                             dtype=torch.complex64), "0.exp_avg_sq"),
    "integer exp_avg_sq": ("optim.0.exp_avg_sq", lambda t: torch.ones_like(t, dtype=torch.int32), "0.exp_avg_sq"),
    "negative max_exp_avg_sq": ("optim.0.max_exp_avg_sq", lambda t: -torch.ones(4, 1, 3, 3), "0.max_exp_avg_sq"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_adam_state_is_skipped_for_the_older_checkpoint(tmp_path, capsys, case):
    key, make, named = DAMAGE[case]
    newest = _two_checkpoints(tmp_path)
    with safe_open(str(newest), "pt") as f:
        old = f.get_tensor(key) if key in f.keys() else None
    _edit(newest, key, make(old))
    with pytest.raises(UserError, match=f"optimizer state {named}|non-finite values \\(optim.{named}"):
        checkpoint.load(newest)
    path, state = checkpoint.load_latest(tmp_path)
    assert state["meta"]["iter"] == 0
    assert f"skipping damaged checkpoint: {newest}" in capsys.readouterr().err


def test_a_bad_step_stored_as_json_is_damage_too(tmp_path):
    """Adam of older torch versions kept the step as a number, saved in the JSON metadata."""
    newest = _two_checkpoints(tmp_path)
    for bad in (-1, 1.5, True, "3", None, [1]):
        _edit(newest, "optim.0.step", None, plain={"0.step": bad})
        with pytest.raises(UserError, match="optimizer state 0.step is damaged"):
            checkpoint.load(newest)
    _edit(newest, "optim.0.step", None, plain={"0.step": 1})
    assert checkpoint.load(newest)["optimizer"]["state"][0]["step"] == 1


def test_the_only_checkpoint_damaged_is_one_line(tmp_path):
    tr = Trainer(tiny_config("train.keep_checkpoints=1"), tmp_path)
    tr.step()
    only = tr.save()
    _edit(only, "optim.0.step", torch.tensor(-5.0))
    with pytest.raises(UserError, match=r"optimizer state 0\.step is damaged") as e:
        train(None, tmp_path, resume=True, iters=3, progress=False)
    assert "\n" not in str(e.value)


def test_resume_past_a_negative_step_trains_on_from_the_older_checkpoint(tmp_path):
    newest = _two_checkpoints(tmp_path)
    _edit(newest, "optim.0.step", torch.tensor(-5.0))
    result = train(None, tmp_path, resume=True, iters=3, progress=False)
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert result["iter"] == 3 and not [r for r in rows if r.get("event")]  # no rollback: no NaN
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in rows)


def test_adam_state_check_covers_every_param_group():
    from shortrun.training.schema import check_optimizer
    a, b = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2, 2))
    opt = torch.optim.Adam([{"params": [a]}, {"params": [b], "lr": 0.1}], amsgrad=True)
    (a.sum() + b.sum()).backward()
    opt.step()
    state = opt.state_dict()
    check_optimizer(state, "x")  # a real state passes
    state["state"][1]["max_exp_avg_sq"] = -state["state"][1]["max_exp_avg_sq"] - 1
    with pytest.raises(UserError, match=r"x: checkpoint's optimizer state 1\.max_exp_avg_sq is damaged"):
        check_optimizer(state, "x")


def _names(run):
    return [p.name for p in checkpoint.list_checkpoints(run)]


def test_damaged_checkpoints_skipped_by_resume_are_removed_at_its_next_save(tmp_path, capsys):
    """Kept, the two damaged files would hold two of the three slots and push out the one good
    checkpoint (iteration 0) at the first save."""
    tr = Trainer(tiny_config("train.keep_checkpoints=3"), tmp_path)
    tr.save()
    for _ in range(2):
        tr.step()
        tr.save()
    ckpts = checkpoint.list_checkpoints(tmp_path)
    for damaged in ckpts[1:]:
        damaged.write_bytes(damaged.read_bytes()[:1000])
    train(None, tmp_path, resume=True, iters=4, progress=False)
    assert _names(tmp_path) == ["ckpt_00000000.safetensors", "ckpt_00000004.safetensors"]
    err = capsys.readouterr().err
    assert all(f"removing damaged checkpoint {p}" in err for p in ckpts[1:])
    assert checkpoint.load_latest(tmp_path)[1]["meta"]["iter"] == 4


def test_a_save_that_reuses_a_damaged_file_name_keeps_the_new_file(tmp_path):
    tr = Trainer(tiny_config("train.keep_checkpoints=3"), tmp_path)
    tr.save()
    tr.step()
    damaged = tr.save()  # iteration 1
    damaged.write_bytes(b"not a checkpoint")
    tr = Trainer(tiny_config("train.keep_checkpoints=3"), tmp_path)
    tr.restore(checkpoint.load_latest(tmp_path)[1])  # iteration 0
    tr.step()
    assert tr.save() == damaged
    assert checkpoint.load(damaged)["meta"]["iter"] == 1
    assert _names(tmp_path) == ["ckpt_00000000.safetensors", "ckpt_00000001.safetensors"]
