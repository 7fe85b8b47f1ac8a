"""How long `digitlearn reproduce` takes, whole and `--quick`, against its targets (300 s and 60 s).

    DIGITLEARN_MIRROR=../shared/datasets python bench/reproduce.py [--rounds 1]

Each run is a fresh `digitlearn reproduce` process with the data already cached (a first run in
this process's cache home fetches it, and is not counted), timed wall to wall. Steps' own times
come from results.json. Prints one JSON object.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from digitlearn import pick_device
from digitlearn.hardware import machine_info, set_threads

TARGETS = {"quick": 60.0, "full": 300.0}


def run(args: list[str], out: Path) -> tuple[float, dict]:
    cmd = [sys.executable, "-m", "digitlearn", "reproduce", "--out", str(out), *args]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return wall, json.loads((out / "results.json").read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=1, help="runs of each, alternating (default 1)")
    a = p.parse_args()
    set_threads()  # what each `digitlearn reproduce` run sets, so that "machine" reports it
    with tempfile.TemporaryDirectory() as tmp:
        run([], Path(tmp) / "warm")  # fetches and decodes the data into the cache: not timed
        walls, steps = {"quick": [], "full": []}, {}
        for k in range(a.rounds):
            for name, args in (("quick", ["--quick"]), ("full", [])):
                wall, results = run(args, Path(tmp) / f"{name}{k}")
                walls[name].append(wall)
                steps[name] = {s: round(t, 2) for s, t in results["step_seconds"].items()}
    runs = {
        name: {
            "wall_seconds": [round(w, 2) for w in walls[name]],
            "median": round(statistics.median(walls[name]), 2),
            "target": TARGETS[name],
            "share_of_target": round(statistics.median(walls[name]) / TARGETS[name], 3),
            "step_seconds": steps[name],
        }
        for name in walls
    }
    report = {"machine": machine_info(pick_device("auto")), **runs}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
