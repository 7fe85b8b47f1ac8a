"""Time to 99% test accuracy on full MNIST: our fast recipe against PyTorch's MNIST example.

Contenders, on the same data and machine, in one run (accuracy is measured on the 10,000 test
images after every epoch; seconds count training and that evaluation):

- `fast recipe`: `digitlearn train --data mnist --recipe fast`, in process, through the Learner;
  also timed as the whole command, process start to exit, in a fresh process (data cached).
- `reference net, our Learner`: the network of PyTorch's official MNIST example (two 3x3 convs
  of 32 and 64 channels, max-pool, dropout 0.25, fc 128, dropout 0.5, fc 10), trained as that
  example trains it (Adadelta at lr 1.0, the lr times 0.7 after each epoch, batch 64, inputs
  normalised by 0.1307 and 0.3081), in float32, driven by our Learner and DataLoader.
- `reference net, plain PyTorch`: the same, as the example writes it: torch.utils.data.DataLoader
  over a Dataset that prepares one item at a time (as torchvision's ToTensor + Normalize would),
  torch.optim.Adadelta, StepLR, and a hand-written train and test loop.

    DIGITLEARN_MIRROR=../shared/datasets .venv/bin/python bench/time_to_accuracy.py --ref-epochs 5
"""

import argparse
import functools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from digitlearn import Learner, accuracy, cross_entropy, load_dataset, set_seed
from digitlearn.callbacks import ParamScheduler
from digitlearn.optim import Adadelta
from digitlearn.recipes import RECIPES

MEAN, STD = 0.1307, 0.3081
LEARNER, PLAIN = "reference net, our Learner", "reference net, plain PyTorch"


class ReferenceNet(nn.Module):
    """PyTorch's examples/mnist network, from its published description."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv2(F.relu(self.conv1(x))))
        x = self.dropout1(torch.flatten(F.max_pool2d(x, 2), 1))
        x = self.dropout2(F.relu(self.fc1(x)))
        return self.fc2(x)  # logits; the example's log_softmax + nll_loss is cross-entropy


def summary(epochs: list[tuple[float, float]], target: float) -> dict:
    """From (seconds, accuracy) per epoch: time to first reach `target`, final accuracy, s/epoch."""
    elapsed, reached = 0.0, None
    for seconds, acc in epochs:
        elapsed += seconds
        if reached is None and acc >= target:
            reached = elapsed
    return {
        "seconds_to_target": None if reached is None else round(reached, 2),
        "final_accuracy": round(epochs[-1][1], 4),
        "seconds_per_epoch": round(statistics.median(s for s, _ in epochs), 2),
        "epochs": len(epochs),
        "accuracy_per_epoch": [round(a, 4) for _, a in epochs],
    }


def fast_recipe(ds, seed: int) -> list[tuple[float, float]]:
    recipe = RECIPES["fast"]
    learn = recipe.learner(ds, seed=seed, progress=False)
    recipe.fit(learn)
    return [(row["time"], row["accuracy"]) for row in learn.recorder.history]


def whole_command(seed: int) -> float:
    """Wall seconds of `digitlearn train --data mnist --recipe fast` in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "digitlearn", "train", "--data", "mnist", "--recipe", "fast"]
        start = time.perf_counter()
        out = ["--seed", str(seed), "--quiet", "--out", str(Path(tmp) / "run")]
        done = subprocess.run([*cmd, *out], stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"the fast recipe command failed with status {done.returncode}")
    return seconds


def reference_learner(ds, seed: int, epochs: int) -> list[tuple[float, float]]:
    set_seed(seed)
    dls = ds.dataloaders(bs=64, valid_bs=1000, flat=False, normalize=True)
    decay = ParamScheduler({"lr": lambda pct: 1.0 * 0.7 ** int(pct * epochs)})  # StepLR(1, gamma=0.7)
    learn = Learner(
        dls,
        ReferenceNet(),
        opt_func=Adadelta,
        loss_func=cross_entropy,
        metrics=accuracy,
        cbs=[decay],
        progress=False,
    )
    learn.fit(epochs, 1.0)
    return [(row["time"], row["accuracy"]) for row in learn.recorder.history]


class ItemDataset(torch.utils.data.Dataset):
    """One image at a time, made a normalised float tensor as torchvision's transforms do."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return ((self.x[i].float() / 255 - MEAN) / STD).unsqueeze(0), int(self.y[i])


def reference_plain(ds, seed: int, epochs: int) -> list[tuple[float, float]]:
    torch.manual_seed(seed)
    train = torch.utils.data.DataLoader(ItemDataset(ds.train.x, ds.train.y), batch_size=64, shuffle=True)
    test = torch.utils.data.DataLoader(ItemDataset(ds.valid.x, ds.valid.y), batch_size=1000)
    model = ReferenceNet()
    opt = torch.optim.Adadelta(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    results = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        for xb, yb in train:
            opt.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for xb, yb in test:
                correct += int((model(xb).argmax(1) == yb).sum())
        sched.step()
        results.append((time.perf_counter() - start, correct / len(test.dataset)))
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", type=float, default=0.99)
    p.add_argument("--ref-epochs", type=int, default=5, help="epochs for the reference network (its own: 14)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--skip", default="", help="comma-separated contenders to leave out: fast,learner,plain")
    args = p.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    ds = load_dataset("mnist")
    ref_args = (ds, args.seed, args.ref_epochs)
    contenders = {
        "fast recipe": ("fast", functools.partial(fast_recipe, ds, args.seed)),
        LEARNER: ("learner", functools.partial(reference_learner, *ref_args)),
        PLAIN: ("plain", functools.partial(reference_plain, *ref_args)),
    }
    results = {}
    for name, (key, run) in contenders.items():
        if key in skip:
            continue
        results[name] = summary(run(), args.target)
        print(f"{name}: {results[name]}", file=sys.stderr, flush=True)
        if key == "fast":
            results[name]["whole_command_seconds"] = round(whole_command(args.seed), 2)
    ratios = {}
    fast = results.get("fast recipe", {}).get("seconds_to_target")
    for name in (LEARNER, PLAIN):
        ref = results.get(name, {}).get("seconds_to_target")
        if fast and ref:
            ratios[f"{name} / fast recipe, time to target"] = round(ref / fast, 2)
    learner, plain = results.get(LEARNER), results.get(PLAIN)
    if learner and plain:
        ratios["plain PyTorch / our Learner, seconds per epoch"] = round(
            plain["seconds_per_epoch"] / learner["seconds_per_epoch"], 2
        )
    print(
        json.dumps(
            {
                "target_accuracy": args.target,
                "threads": torch.get_num_threads(),
                "device": "cpu",
                "contenders": results,
                "ratios": ratios,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
