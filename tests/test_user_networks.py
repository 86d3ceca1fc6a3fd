"""model.name=MODULE:CLASS: a network of one's own, trained, reopened and refused when wrong."""
import os
import subprocess
import sys

import pytest
import torch

from shortrun import open_run, synthesize, train
from shortrun.errors import UserError
from shortrun.energy import build_energy
from shortrun.config import ModelConfig

from conftest import ROOT, tiny_config

TESTS = os.path.dirname(os.path.abspath(__file__))


def test_train_and_reopen_a_users_network(tmp_path):
    cfg = tiny_config("model.name=user_nets:TinyEnergy")
    train(cfg, tmp_path / "run", iters=2, progress=False)
    run = open_run(tmp_path / "run")
    assert type(run.model.net).__name__ == "TinyEnergy" and run.cfg.model.name == "user_nets:TinyEnergy"
    assert synthesize(run.model, 3).shape == (3, 1, 8, 8)
    train(None, tmp_path / "run", resume=True, iters=3, progress=False)
    assert open_run(tmp_path / "run").iter == 3


def test_an_instance_through_the_python_api(tmp_path):
    from user_nets import TinyEnergy
    net = TinyEnergy((1, 8, 8))
    result = train(tiny_config(), tmp_path / "run", iters=2, progress=False, net=net)
    assert result["iter"] == 2
    run = open_run(tmp_path / "run")  # recorded as user_nets:TinyEnergy, rebuilt from its class
    assert run.cfg.model.name == "user_nets:TinyEnergy"
    assert torch.equal(run.model.net.conv.weight.cpu(), net.conv.weight.detach().cpu())


@pytest.mark.parametrize("name, message", [
    ("os:system", "not a torch.nn.Module subclass"),
    ("user_nets:NOT_A_CLASS", "not a torch.nn.Module subclass"),
    ("user_nets:Missing", "has no Missing"),
    ("no_such_module_xyz:Net", "cannot import"),
    ("user_nets:WrongOutput", "must map"),
    ("a b:c", "MODULE:CLASS"),
])
def test_bad_names_are_refused_in_one_line(name, message):
    with pytest.raises(UserError, match=message):
        build_energy(ModelConfig(name=name), (1, 8, 8))


def test_cli_never_runs_os_system(tmp_path):
    marker = tmp_path / "ran"
    env = dict(os.environ, PYTHONPATH=TESTS)
    p = subprocess.run([sys.executable, "-m", "shortrun", "train", "--out", str(tmp_path / "r"), "--iters", "1",
                        "--set", "model.name=os:system", "--set", f"data.root=touch {marker}"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "not a torch.nn.Module subclass" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and not marker.exists()
    q = subprocess.run([sys.executable, "-m", "shortrun", "train", "--out", str(tmp_path / "u"), "--iters", "1",
                        "--quiet", "--set", "model.name=user_nets:TinyEnergy", "--set", "model.n_f=4",
                        "--set", "sampler.n_steps=2", "--set", "train.batch_size=4", "--set", "train.tensorboard=false"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert q.returncode == 0, q.stderr


def test_a_class_the_cli_cannot_import_again_is_warned_of_at_training(tmp_path, capsys):
    """A class defined inside a script or function is recorded by name but cannot be imported by
    `shortrun sample`: train() says so at once, and reopening names the cause."""
    from user_nets import TinyEnergy

    class Local(TinyEnergy):
        pass

    train(tiny_config(), tmp_path / "run", iters=1, progress=False, net=Local((1, 8, 8)))
    assert "cannot import it again" in capsys.readouterr().err
    with pytest.raises(UserError, match="defined in the script that trained"):
        build_energy(ModelConfig(name="__main__:NoSuchNet"), (1, 8, 8))
    train(tiny_config(), tmp_path / "ok", iters=1, progress=False, net=TinyEnergy((1, 8, 8)))
    assert "cannot import" not in capsys.readouterr().err
