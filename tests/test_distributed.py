"""Data-parallel training: 2 processes on the CPU (gloo over 127.0.0.1) train as one would."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from digitlearn import Learner
from digitlearn.data.loaders import DataLoader, DataLoaders
from digitlearn.runs.model import load_model
from digitlearn.training.losses import cross_entropy
from digitlearn.training.metrics import accuracy

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]

# one global batch of 64 (32 a process), and 33 validation images in batches of 16: the last
# batch, of 1, leaves the second process nothing, and the figures must still be the whole set's
SCRIPT = """
import json, os, sys
import torch.distributed as dist
from safetensors.torch import save_file
from tests.test_distributed import make_learner

learn = make_learner()
with learn.distributed():
    learn.fit(1)
    rank = dist.get_rank()
if rank == 0:
    save_file({k: v.contiguous() for k, v in learn.model.state_dict().items()}, sys.argv[1] + "/weights")
    (open(sys.argv[1] + "/history.json", "w")).write(json.dumps(learn.recorder.history))
# the process group is gone by now; leave without running C++ destructors, where gloo's threads
# sometimes end in "terminate called without an active exception" on a loaded machine (seen twice)
sys.stdout.flush()
os._exit(0)
"""


def make_learner() -> Learner:
    torch.manual_seed(0)
    x = torch.randn(97, 20)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    dls = DataLoaders(DataLoader(x[:64], y[:64], bs=64), DataLoader(x[64:], y[64:], bs=16))
    model = nn.Sequential(nn.Linear(20, 8), nn.ReLU(), nn.Linear(8, 2))
    return Learner(dls, model, loss_func=cross_entropy, metrics=accuracy, lr=0.5, progress=False)


def test_shards_cut_every_batch_into_disjoint_parts():
    x = torch.arange(10)
    shares = [list(DataLoader(x, bs=4).shard(r, 3)) for r in range(3)]
    assert [[b.tolist() for b in s] for s in shares] == [[[0, 1], [4, 5], [8]], [[2], [6], [9]], [[3], [7]]]
    even = [list(DataLoader(x, bs=4).shard(r, 3, even=True)) for r in range(3)]
    assert [len(s) for s in even] == [2, 2, 2]  # the last batch, of 2, would leave rank 2 nothing
    gen = torch.Generator().manual_seed(5)
    shuffled = [DataLoader(x, bs=5, shuffle=True, generator=gen.clone_state()).shard(r, 2) for r in range(2)]
    got = sorted(torch.cat([torch.cat(list(dl)) for dl in shuffled]).tolist())
    assert got == list(range(10))


def test_first_step_of_two_processes_is_one_process_step(tmp_path):
    script = tmp_path / "step.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [*TORCHRUN, str(script), str(tmp_path)], env=ENV, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    single = make_learner()
    single.fit(1)
    both = load_file(tmp_path / "weights")
    for name, weight in single.model.state_dict().items():
        assert torch.allclose(both[name], weight, rtol=0, atol=1e-6), name
    row, alone = json.loads((tmp_path / "history.json").read_text())[0], single.recorder.history[0]
    for name in ("train_loss", "valid_loss", "accuracy"):
        assert row[name] == pytest.approx(alone[name], abs=1e-6), name


def test_two_processes_train_mnist_sample_as_well_as_one(mirror, tmp_path):
    args = ["train", "--data", "mnist_sample", "--epochs", "1", "--threads", "1", "--quiet", "--out"]
    two = subprocess.Popen(
        [*TORCHRUN, "-m", "digitlearn", *args, str(tmp_path / "two")],
        env=ENV,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    one = subprocess.run(
        [sys.executable, "-m", "digitlearn", *args, str(tmp_path / "one")],
        env=ENV,
        capture_output=True,
        text=True,
    )
    out, err = two.communicate(timeout=180)
    assert two.returncode == 0 and one.returncode == 0, err[-3000:] + one.stderr
    assert out.count("training simple_net") == 1 and out.count("wrote ") == 1  # rank 0 alone speaks
    assert "2 processes (gloo)" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "two"]  # and alone writes
    _, config = load_model(tmp_path / "two")
    assert config["train"]["world_size"] == 2 and config["train"]["backend"] == "gloo"
    single = json.loads((tmp_path / "one" / "config.json").read_text())["results"]["batch_accuracy"]
    assert config["results"]["batch_accuracy"] == pytest.approx(single, abs=0.01)


def test_skip_learned_is_refused_before_any_process_group_is_made():
    from digitlearn.errors import DigitlearnError
    from digitlearn.training import SkipLearned

    learn = make_learner()
    learn.add_cbs([SkipLearned(0.9)])
    refused = pytest.raises(DigitlearnError, match=r"SkipLearned does not work across processes yet")
    with refused, learn.distributed():
        pass
    assert not torch.distributed.is_initialized()
