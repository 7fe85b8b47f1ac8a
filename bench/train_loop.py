"""Seconds per epoch of the same training three ways, side by side in one run, printed as JSON.

Each contender trains the chapter's simple_net (784-30-1) on mnist_sample with mnist_loss, plain
SGD at lr 0.1, batch size 256, shuffled, from the same seed, and validates once per epoch:
  learner      digitlearn's Learner with its default callbacks (recorder, NaN stop, Ctrl-C,
               progress table; its output is swallowed)
  plain_loop   a hand-written loop over the same tensors, batched as digitlearn's DataLoader
               batches them (index_select of a slice of a fresh permutation), validation in
               batches of 512: the Learner's own overhead is the difference between these two
  permute_then_slice  the same loop, but permuting the whole tensors once per epoch and then
               slicing them: why the DataLoader gathers per batch instead
  chapter_way  the chapter's code: torch.utils.data.DataLoader over list(zip(x, y)), calc_grad,
               p.data -= p.grad * lr, and validate_epoch over a DataLoader of batch size 256
Rounds alternate the contenders so that drift on a noisy machine hits them alike.

Usage: DIGITLEARN_MIRROR=../shared/datasets python bench/train_loop.py [--epochs 10] [--rounds 5]
"""

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import time

import torch
import torch.utils.data

from digitlearn import SGD, Learner, batch_accuracy, load_dataset, mnist_loss, set_seed, simple_net
from digitlearn.hardware import machine_info, set_threads

LR, BS = 0.1, 256


def learner(dls, epochs: int) -> float:
    learn = Learner(dls, simple_net(), opt_func=SGD, loss_func=mnist_loss, metrics=batch_accuracy)
    with contextlib.redirect_stdout(io.StringIO()):
        learn.fit(epochs, LR)
    return learn.recorder.history[-1]["batch_accuracy"]


def plain_loop(dls, epochs: int, whole_permutation: bool = False) -> float:
    (x, y), (vx, vy) = dls.train.fields, dls.valid.fields
    model = simple_net()
    params = list(model.parameters())
    for _ in range(epochs):
        perm = torch.randperm(len(x))
        if whole_permutation:
            xs, ys = x[perm], y[perm]
        for i in range(0, len(x), BS):
            if whole_permutation:
                xb, yb = xs[i : i + BS], ys[i : i + BS]
            else:
                idx = perm[i : i + BS]
                xb, yb = x.index_select(0, idx), y.index_select(0, idx)
            mnist_loss(model(xb), yb).backward()
            with torch.no_grad():
                for p in params:
                    p -= p.grad * LR
                    p.grad = None
        correct = 0.0
        with torch.no_grad():
            for i in range(0, len(vx), 512):
                xb, yb = vx[i : i + 512], vy[i : i + 512]
                out = model(xb)
                mnist_loss(out, yb)
                correct += float(batch_accuracy(out, yb)) * len(yb)
    return correct / len(vx)


def permute_then_slice(dls, epochs: int) -> float:
    return plain_loop(dls, epochs, whole_permutation=True)


def chapter_way(dls, epochs: int) -> float:
    (x, y), (vx, vy) = dls.train.fields, dls.valid.fields
    dl = torch.utils.data.DataLoader(list(zip(x, y.unsqueeze(1), strict=True)), batch_size=BS, shuffle=True)
    valid_dl = torch.utils.data.DataLoader(list(zip(vx, vy.unsqueeze(1), strict=True)), batch_size=BS)
    model = simple_net()
    params = list(model.parameters())

    def calc_grad(xb, yb):
        mnist_loss(model(xb), yb).backward()

    def validate_epoch():
        accs = [batch_accuracy(model(xb), yb) for xb, yb in valid_dl]
        return round(torch.stack(accs).mean().item(), 4)

    for _ in range(epochs):
        for xb, yb in dl:
            calc_grad(xb, yb)
            for p in params:
                p.data -= p.grad * LR
                p.grad.zero_()
        acc = validate_epoch()
    return acc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10, help="epochs per timed run")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    set_threads()  # as the command line: $DIGITLEARN_THREADS, else one per core
    ds = load_dataset("mnist_sample")
    contenders = {
        "learner": learner,
        "plain_loop": plain_loop,
        "permute_then_slice": permute_then_slice,
        "chapter_way": chapter_way,
    }
    times = {k: [] for k in contenders}
    accuracy = {}
    for fn in contenders.values():  # warm-up: first calls pay for lazy initialisation
        set_seed(0)
        fn(ds.dataloaders(bs=BS), 1)
    for _ in range(args.rounds):
        for name, fn in contenders.items():
            set_seed(0)
            dls = ds.dataloaders(bs=BS)
            start = time.perf_counter()
            accuracy[name] = fn(dls, args.epochs)
            times[name].append((time.perf_counter() - start) / args.epochs)
    median = {k: statistics.median(v) for k, v in times.items()}
    print(
        json.dumps(
            {
                "benchmark": f"simple_net on mnist_sample, {args.epochs} epochs per run, seconds per epoch",
                "machine": {**machine_info(), "cpus": os.cpu_count(), "python": platform.python_version()},
                "rounds": args.rounds,
                "seconds_per_epoch_median": {k: round(v, 4) for k, v in median.items()},
                "seconds_per_epoch_all": {k: [round(t, 4) for t in v] for k, v in times.items()},
                "final_valid_accuracy": {k: round(v, 4) for k, v in accuracy.items()},
                "learner_over_plain_loop": round(median["learner"] / median["plain_loop"], 3),
                "chapter_way_over_learner": round(median["chapter_way"] / median["learner"], 2),
                "permute_then_slice_over_plain_loop": round(
                    median["permute_then_slice"] / median["plain_loop"], 2
                ),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
