"""How long `digitlearn reproduce` takes, whole and `--quick`: this version, and with `--before REF`
an earlier one (a git ref of this repository) in the same run, rounds alternating.

    DIGITLEARN_MIRROR=../shared/datasets python bench/reproduce.py --rounds 3 --before ddbf535

Each run is a fresh `digitlearn reproduce` process with the data already cached (a first run in
this process's cache home fetches it, and is not counted), timed wall to wall. Steps' own times
come from results.json. The target for the whole chapter is 40 s on a 2-core AVX2 CPU. Prints
one JSON object.
"""

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from versions import command, source_of

from digitlearn import pick_device
from digitlearn.hardware import machine_info, set_threads

TARGETS = {"quick": 20.0, "full": 40.0}


def run(src: Path | None, args: list[str], out: Path) -> tuple[float, dict]:
    prefix, env = command(src)
    cmd = [*prefix, "reproduce", "--out", str(out), *args]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return wall, json.loads((out / "results.json").read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=1, help="runs of each, alternating (default 1)")
    p.add_argument("--before", metavar="REF", help="also time this git ref's version, alternating")
    p.add_argument("--full-only", action="store_true", help="leave out --quick")
    a = p.parse_args()
    set_threads()  # what each `digitlearn reproduce` run sets, so that "machine" reports it
    kinds = [("full", [])] + ([] if a.full_only else [("quick", ["--quick"])])
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        versions = {"now": None}
        if a.before:
            versions[f"before ({a.before})"] = stack.enter_context(source_of(a.before))
        run(None, [], Path(tmp) / "warm")  # fetches and decodes the data into the cache: not timed
        walls = {(v, k): [] for v in versions for k, _ in kinds}
        steps, checks = {}, {}
        for r in range(a.rounds):
            for kind, args in kinds:
                for version, src in versions.items():
                    wall, results = run(src, args, Path(tmp) / f"{kind}-{r}-{len(walls)}-{version[:3]}")
                    walls[version, kind].append(wall)
                    steps[version, kind] = {s: round(t, 2) for s, t in results["step_seconds"].items()}
                    passed = sum(c["ok"] for c in results["checks"])
                    checks[version, kind] = f"{passed} of {len(results['checks'])}"
    report: dict = {"machine": machine_info(pick_device("auto"))}
    for (version, kind), w in walls.items():
        report.setdefault(version, {})[kind] = {
            "wall_seconds": [round(x, 2) for x in w],
            "median": round(statistics.median(w), 2),
            "target": TARGETS[kind],
            "checks_passed": checks[version, kind],
            "step_seconds": steps[version, kind],
        }
    if a.before:
        before = f"before ({a.before})"
        report["before / now, median wall"] = {
            kind: round(report[before][kind]["median"] / report["now"][kind]["median"], 2)
            for kind, _ in kinds
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
