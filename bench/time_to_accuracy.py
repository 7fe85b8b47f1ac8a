"""Time to accuracy on full MNIST, as a user sees it: whole `digitlearn train` commands, seed by seed.

Each run is a fresh process, timed from start to exit, with the data already cached; the
training seconds and the test accuracy (all 10,000 test images) come from the run's config.json.
Contenders alternate within each seed, so a busy moment of the machine hits them alike:

- `fast`: `--recipe fast` (target: >= 0.990 at every seed, <= 4.5 s wall, <= 2.0 s of training);
- `fast before`: the settings `--recipe fast` had before (the strided CNN with batch norm,
  3 epochs, validated every epoch), which are `--model cnn`'s default recipe;
- with `--best`: `best` (target: >= 0.995, <= 15 s of training) and `best before`, the earlier best
  recipe spelled out in flags (`--best-seeds` sets its seeds; before runs at the first only).

`--reference` adds PyTorch's official MNIST example (its network, Adadelta at lr 1.0 decayed
0.7 per epoch, batch 64) in a plain PyTorch loop, trained for `--ref-epochs`, in process.

    DIGITLEARN_MIRROR=../shared/datasets .venv/bin/python bench/time_to_accuracy.py --seeds 1,2,3,4,5
"""

import argparse
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

from digitlearn import load_dataset, pick_device
from digitlearn.hardware import machine_info, set_threads

MEAN, STD = 0.1307, 0.3081
COMMANDS = {
    "fast": ["--recipe", "fast"],
    "fast before": ["--model", "cnn"],
    "best": ["--recipe", "best"],
    # best until 2026-12-05 (whitened, 5 epochs), before batch norm on its hidden layer
    "best before": ["--recipe", "best", "--batch-norm", "0", "--lr", "0.01"],
}  # fmt: skip


def train_command(args: list[str], seed: int, common: tuple[str, ...] = ()) -> dict:
    """One `digitlearn train --data mnist ...` in a fresh process: wall and training seconds, accuracy.

    `common` (`--device cuda`, `--valid-split 0.1`) goes to every contender."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "digitlearn", "train", "--data", "mnist", *args, *common]
        start = time.perf_counter()
        run = [*cmd, "--seed", str(seed), "--quiet", "--out", str(out)]
        done = subprocess.run(run, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        if done.returncode:
            sys.exit(f"{' '.join(cmd)} failed with status {done.returncode}")
        config = json.loads((out / "config.json").read_text())
    return {
        "seed": seed,
        "accuracy": round(config["results"]["accuracy"], 4),
        "train_seconds": round(config["train_seconds"], 2),
        "wall_seconds": round(wall, 2),
    }


def summary(runs: list[dict]) -> dict:
    return {
        "runs": runs,
        "min_accuracy": min(r["accuracy"] for r in runs),
        "mean_accuracy": round(statistics.mean(r["accuracy"] for r in runs), 5),
        "median_train_seconds": round(statistics.median(r["train_seconds"] for r in runs), 2),
        "median_wall_seconds": round(statistics.median(r["wall_seconds"] for r in runs), 2),
    }


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


class ItemDataset(torch.utils.data.Dataset):
    """One image at a time, made a normalised float tensor as torchvision's transforms do."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return ((self.x[i].float() / 255 - MEAN) / STD).unsqueeze(0), int(self.y[i])


def reference(seed: int, epochs: int) -> dict:
    """The example's training, plain PyTorch: seconds and test accuracy after each epoch."""
    ds = load_dataset("mnist")
    torch.manual_seed(seed)
    train = torch.utils.data.DataLoader(ItemDataset(ds.train.x, ds.train.y), batch_size=64, shuffle=True)
    test = torch.utils.data.DataLoader(ItemDataset(ds.valid.x, ds.valid.y), batch_size=1000)
    model = ReferenceNet()
    opt = torch.optim.Adadelta(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    seconds, accuracies = [], []
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        for xb, yb in train:
            opt.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            correct = sum(int((model(xb).argmax(1) == yb).sum()) for xb, yb in test)
        sched.step()
        seconds.append(round(time.perf_counter() - start, 2))
        accuracies.append(correct / len(test.dataset))
    return {"seconds_per_epoch": seconds, "accuracy_per_epoch": accuracies}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="1,2,3,4,5", help="seeds of the fast recipe (and its before)")
    p.add_argument("--best", action="store_true", help="also time --recipe best and the best before")
    p.add_argument("--best-seeds", default="1,2,3")
    p.add_argument("--no-before", action="store_true", help="leave out the earlier recipes")
    p.add_argument("--reference", action="store_true", help="also train PyTorch's MNIST example")
    p.add_argument("--ref-epochs", type=int, default=5, help="epochs of the reference (its own: 14)")
    p.add_argument("--device", default="cpu", help="where every contender trains: cpu or cuda")
    p.add_argument(
        "--valid-split", type=float, help="tune: score on this fraction of the training images held out "
        "(`train --valid-split`), never on the test set"
    )  # fmt: skip
    p.add_argument(
        "--try", dest="tries", action="append", default=[], metavar="NAME=FLAGS",
        help='a contender of your own, e.g. "wide=--recipe best --channels 16,64" (repeatable); '
        "with --try, only the named contenders run, at --seeds",
    )  # fmt: skip
    p.add_argument("--only", help="only these contenders, e.g. top (comma-separated), at --seeds")
    args = p.parse_args()
    set_threads()  # what each `digitlearn train` sets, so that "machine" reports it
    common = (
        "--device",
        args.device,
        *(("--valid-split", str(args.valid_split)) if args.valid_split else ()),
    )
    for name, sep, flags in (t.partition("=") for t in args.tries):
        if not sep or name in COMMANDS:
            sys.exit(f"--try {name}{sep}{flags}: give a new NAME=FLAGS")
        COMMANDS[name] = flags.split()
    train_command(COMMANDS["fast"] + ["--epochs", "1"], 0, common)  # fetches and decodes the data: not timed
    seeds = [int(s) for s in args.seeds.split(",")]
    chosen = args.only.split(",") if args.only else [t.partition("=")[0] for t in args.tries]
    if chosen:
        plan = [(tuple(chosen), seed) for seed in seeds]
    else:
        plan = [(("fast", "fast before"), seed) for seed in seeds]
    if args.best and not chosen:
        best_seeds = [int(s) for s in args.best_seeds.split(",")]
        plan += [(("best", "best before") if k == 0 else ("best",), s) for k, s in enumerate(best_seeds)]
    runs: dict[str, list[dict]] = {}
    for names, seed in plan:
        for name in names:
            if name.endswith("before") and args.no_before:
                continue
            runs.setdefault(name, []).append(train_command(COMMANDS[name], seed, common))
            print(f"{name} seed {seed}: {runs[name][-1]}", file=sys.stderr, flush=True)
    results = {name: {"command": COMMANDS[name], **summary(r)} for name, r in runs.items()}
    ratios = {}
    for name in ("fast", "best"):
        now, before = results.get(name), results.get(f"{name} before")
        if now and before:
            ratios[f"{name} before / {name}, median wall"] = round(
                before["median_wall_seconds"] / now["median_wall_seconds"], 2
            )
            ratios[f"{name} before / {name}, median training"] = round(
                before["median_train_seconds"] / now["median_train_seconds"], 2
            )
    scored_on = f"{args.valid_split:g} of train held out" if args.valid_split else "the 10,000 test images"
    report = {
        "machine": machine_info(pick_device(args.device)),
        "accuracy on": scored_on,
        "contenders": results,
        "ratios": ratios,
    }
    if args.reference:
        report["reference"] = reference(int(args.seeds.split(",")[0]), args.ref_epochs)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
