"""Which CPU speed options pay off for the fast recipe's CNN? Prints JSON.

Each variant trains one epoch of `--recipe fast` on full MNIST (train + validation), the
variants alternating within each round; figures are median seconds per epoch and each
variant's time as a ratio of the recipe's own settings (bf16 autocast where AMX makes it fast,
channels_last, all cores). `--compile` adds torch.compile: its second epoch, with the first
epoch's extra time reported apart.

    DIGITLEARN_MIRROR=../shared/datasets .venv/bin/python bench/speed_options.py --rounds 3
"""

import argparse
import json
import statistics

import torch

from digitlearn import load_dataset
from digitlearn.recipes import RECIPES

THREADS = torch.get_num_threads()


def variants(compile_too: bool) -> dict[str, dict]:
    v = {
        "recipe (bf16 auto, channels_last)": {},
        "fp32, channels_last": {"fp32": True},
        "bf16, contiguous": {"contiguous": True},
        "fp32, contiguous": {"fp32": True, "contiguous": True},
        "recipe, 1 thread": {"threads": 1},
    }
    if compile_too:
        v["recipe + torch.compile"] = {"compile": True}
    return v


def one_epoch(ds, opts: dict) -> tuple[float, float, float]:
    """(seconds for the epoch, seconds spent compiling, accuracy)."""
    torch.set_num_threads(opts.get("threads", THREADS))
    learn = (
        RECIPES["fast"]
        .updated(epochs=1, precision="fp32" if opts.get("fp32") else None)
        .learner(ds, seed=0, progress=False)
    )
    if opts.get("contiguous"):
        learn.model.to(memory_format=torch.contiguous_format)
    if opts.get("compile"):
        # the first epoch pays for compiling (training and evaluation graphs); the second does not
        learn.model = torch.compile(learn.model)
        learn.fit_one_cycle(2, RECIPES["fast"].lr)
        first, second = learn.recorder.history
        torch.set_num_threads(THREADS)
        return second["time"], first["time"] - second["time"], second["accuracy"]
    learn.fit_one_cycle(1, RECIPES["fast"].lr)
    torch.set_num_threads(THREADS)
    row = learn.recorder.history[-1]
    return row["time"], 0.0, row["accuracy"]


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
                "threads": THREADS,
                "cpu_capability": torch.backends.cpu.get_cpu_capability(),
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
