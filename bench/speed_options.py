"""Which CPU speed options pay off for the fast recipe's CNN? Prints JSON.

Each variant trains one whole epoch of `--recipe fast`'s network and schedule on full MNIST
(train + validation), the variants alternating within each round; figures are median seconds
per epoch and each variant's time as a ratio of the recipe's own settings (fp32, channels_last,
all cores). bf16 autocast pays only where the CPU has AMX. `--compile` adds torch.compile: its
second epoch, with the first epoch's extra time reported apart.

    DIGITLEARN_MIRROR=../shared/datasets .venv/bin/python bench/speed_options.py --rounds 3
"""

import argparse
import json
import statistics

import torch

from digitlearn import load_dataset, pick_device
from digitlearn.hardware import machine_info, set_threads
from digitlearn.training.recipes import RECIPES

THREADS = set_threads()  # as the command line: $DIGITLEARN_THREADS, else one per core


def variants(compile_too: bool) -> dict[str, dict]:
    v = {
        "recipe (fp32, channels_last)": {},
        "bf16 autocast": {"bf16": True},
        "contiguous layout": {"contiguous": True},
        "1 thread": {"threads": 1},
    }
    if compile_too:
        v["recipe + torch.compile"] = {"compile": True}
    return v


def one_epoch(ds, opts: dict) -> tuple[float, float, float]:
    """(seconds for the epoch, seconds spent compiling, accuracy)."""
    torch.set_num_threads(opts.get("threads", THREADS))
    # with torch.compile, two whole epochs: the first pays for compiling, the second does not
    epochs = 2 if opts.get("compile") else 1
    recipe = RECIPES["fast"].updated(
        epochs=epochs, skip_learned=0.0, validate="each", precision="bf16" if opts.get("bf16") else None
    )
    learn = recipe.learner(ds, seed=0, progress=False)
    if opts.get("contiguous"):
        learn.model.to(memory_format=torch.contiguous_format)
    if opts.get("compile"):
        learn.model = torch.compile(learn.model)
    recipe.fit(learn)
    torch.set_num_threads(THREADS)
    rows = learn.recorder.history
    compiling = rows[0]["time"] - rows[1]["time"] if opts.get("compile") else 0.0
    return rows[-1]["time"], compiling, rows[-1]["accuracy"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--compile", action="store_true", help="also try torch.compile (slow to compile)")
    args = p.parse_args()
    ds = load_dataset("mnist")
    vs = variants(args.compile)
    times: dict[str, list[float]] = {k: [] for k in vs}
    extra: dict[str, dict] = {k: {} for k in vs}
    for _ in range(args.rounds):
        for name, opts in vs.items():
            seconds, compile_s, acc = one_epoch(ds, opts)
            times[name].append(seconds)
            extra[name] = {"accuracy_after_1_epoch": round(acc, 4)}
            if compile_s:
                extra[name]["first_epoch_extra_seconds"] = round(compile_s, 2)
    base = statistics.median(times[next(iter(vs))])
    print(
        json.dumps(
            {
                "what": "seconds per epoch of --recipe fast on full MNIST (train 60k + validate 10k)",
                "machine": machine_info(pick_device("auto")),
                "rounds": args.rounds,
                "variants": {
                    name: {
                        "median_seconds_per_epoch": round(statistics.median(t), 3),
                        "ratio_to_recipe": round(statistics.median(t) / base, 3),
                        **extra[name],
                    }
                    for name, t in times.items()
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
