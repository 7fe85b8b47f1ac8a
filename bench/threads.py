"""When do fewer PyTorch threads help? Seconds per epoch at 1 thread and at every core, with the
machine to ourselves and with other programs keeping cores busy. Prints JSON.

Two workloads, each a fresh `python -c` process per measurement (threads are set at its start,
as `--threads` does): the chapter's simple_net on mnist_sample (tiny matrix products: thread
start-up and hand-off are most of each op) and one epoch of the fast recipe's LeNet on full MNIST
(convolutions big enough to split). "busy" runs `--busy` processes that spin on a core meanwhile
(default: one per core but one, as when a browser, an IDE or another job shares the laptop).

    DIGITLEARN_MIRROR=../shared/datasets .venv/bin/python bench/threads.py --rounds 3
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

from digitlearn.hardware import default_threads, machine_info

WORKLOADS = {
    "simple_net on mnist_sample, 10 epochs": """
from digitlearn import SGD, Learner, batch_accuracy, load_dataset, mnist_loss, set_seed, simple_net
set_seed(0)
learn = Learner(load_dataset("mnist_sample").dataloaders(bs=256), simple_net, opt_func=SGD,
                loss_func=mnist_loss, metrics=batch_accuracy, progress=False)
learn.fit(10, 0.1)
print(sum(r["time"] for r in learn.recorder.history) / 10)
""",
    "fast recipe's LeNet on MNIST, 1 epoch": """
from digitlearn import load_dataset
from digitlearn.training.recipes import RECIPES
recipe = RECIPES["fast"].updated(epochs=1)
learn = recipe.learner(load_dataset("mnist"), seed=0, progress=False)
recipe.fit(learn)
print(learn.recorder.history[0]["time"])
""",
}
SPIN = "while True: pass"


def seconds(code: str, threads: int) -> float:
    env = {**os.environ, "DIGITLEARN_THREADS": str(threads)}
    prelude = "from digitlearn.hardware import set_threads; set_threads()\n"
    done = subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, env=env)
    if done.returncode:
        sys.exit(done.stderr)
    return float(done.stdout.split()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--busy", type=int, default=max(default_threads() - 1, 1), help="spinning processes")
    args = p.parse_args()
    cores = default_threads()
    counts = sorted({1, cores})
    for code in WORKLOADS.values():
        seconds(code, 1)  # fetch and decode the data before anything is timed
    results: dict[str, dict] = {}
    for load in ("idle", "busy"):
        n_busy = args.busy if load == "busy" else 0
        spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(n_busy)]
        try:
            for name, code in WORKLOADS.items():
                times = {n: [] for n in counts}
                for _ in range(args.rounds):
                    for n in counts:  # alternating, so drift hits both alike
                        times[n].append(seconds(code, n))
                median = {n: statistics.median(t) for n, t in times.items()}
                row = {f"{n} thread{'s' if n > 1 else ''}": round(m, 3) for n, m in median.items()}
                row["1 thread / all"] = round(median[1] / median[cores], 2)
                results.setdefault(name, {})[load] = row
        finally:
            for s in spinners:
                s.kill()
    report = {"machine": machine_info(), "busy_processes": args.busy, "seconds_per_epoch": results}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
