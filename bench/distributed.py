"""What do 2 data-parallel CPU processes buy over 1? Training seconds and wall seconds of the same
`digitlearn train` run, 1 process and `torchrun --nproc_per_node 2`, medians of a few rounds.
Prints JSON.

Each process gets `--threads` PyTorch threads (default: the cores shared out, so 1 process uses
every core and 2 processes half each; 1 process at 1 thread is measured as well): the comparison
is of the same machine used two ways, not of twice the hardware. Results are keyed
"<processes>x<threads each>". "train_s" is the sum of the epochs' times as config.json records them (no
start-up); "wall_s" is the whole command, start-up and process-group rendezvous included.

    DIGITLEARN_MIRROR=../shared/datasets .venv/bin/python bench/distributed.py --rounds 3
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from digitlearn.hardware import default_threads, machine_info


def one_run(procs: int, threads: int, train_args: list[str]) -> tuple[float, float, float]:
    """(training seconds, wall seconds, final accuracy) of one run with `procs` processes."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        args = ["train", *train_args, "--threads", str(threads), "--quiet", "--out", str(out)]
        if procs == 1:
            command = [sys.executable, "-m", "digitlearn", *args]
        else:
            launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
            command = [*launcher, "--nproc_per_node", str(procs), "-m", "digitlearn", *args]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - start
        if done.returncode:
            sys.exit(done.stderr[-3000:])
        config = json.loads((out / "config.json").read_text())
        accuracy = next(v for k, v in config["results"].items() if "accuracy" in k)
        return config["train_seconds"], wall, accuracy


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--data", default="mnist_sample")
    p.add_argument("--model", default="lenet", help="a model big enough that compute, not overhead, counts")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--threads", type=int, help="threads per process (default: the cores shared out)")
    args = p.parse_args()
    cores = default_threads()
    # without SkipLearned, which does not work across processes
    train_args = ["--data", args.data, "--model", args.model, "--epochs", str(args.epochs)]
    train_args += ["--skip-learned", "0"]
    one_run(1, cores, train_args)  # fetch and decode the data before anything is timed
    results = {}
    # 1 process at 1 thread too: it tells what 2 processes gain from splitting the data from what
    # they gain only by not splitting each small op across threads
    for procs, threads in ((1, cores), (1, 1), (2, max(cores // 2, 1))):
        threads = args.threads or threads
        runs = [one_run(procs, threads, train_args) for _ in range(args.rounds)]
        train_s, wall_s, accuracy = (statistics.median(r[k] for r in runs) for k in range(3))
        results[f"{procs}x{threads}"] = {
            "processes": procs,
            "threads_each": threads,
            "train_s": round(train_s, 2),
            "wall_s": round(wall_s, 2),
            "accuracy": round(accuracy, 4),
        }
    two = results[f"2x{args.threads or max(cores // 2, 1)}"]
    print(
        json.dumps(
            {
                "machine": {**machine_info(), "cores": cores},
                "workload": f"digitlearn train {' '.join(train_args)}",
                "rounds": args.rounds,
                "results": results,
                # of 2 processes over each 1-process way: above 1 is faster
                "speedup_train": {k: round(r["train_s"] / two["train_s"], 2) for k, r in results.items()},
                "speedup_wall": {k: round(r["wall_s"] / two["wall_s"], 2) for k, r in results.items()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
