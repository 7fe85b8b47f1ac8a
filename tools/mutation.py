"""Mutation testing of the core: `make mutation` (mutmut, configured in pyproject.toml).

    python tools/mutation.py            # run mutmut, then print the kill rate of each module
    python tools/mutation.py --report   # only the report, from the last run's results
    python tools/mutation.py digitlearn.training.learner    # one module: its mutants not yet killed
    python tools/mutation.py --all digitlearn.training.learner   # one module: every mutant again
    python tools/mutation.py --fresh-stats MODULE...   # after source edits: which tests cover what

Each surviving mutant is listed by name (`mutmut show NAME` prints its diff): a survivor is a
bug the tests would let through, or a change that cannot alter behaviour (docs/architecture.md
lists those, each with its reason). Timeouts count as killed: the mutant made the tests hang.
Takes tens of minutes on two cores, so CI does not run it.
"""

import argparse
import collections
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MUTMUT = [sys.executable, "-m", "mutmut"]
KILLED = {"killed", "timeout"}
UNRUN = "not checked"  # a run stopped before it reached them


def results() -> dict[str, str]:
    """Each mutant's status, by name, from mutmut's last run."""
    done = subprocess.run([*MUTMUT, "results", "--all", "true"], cwd=ROOT, capture_output=True, text=True)
    statuses = {}
    for line in done.stdout.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep:
            statuses[name] = status
    return statuses


def module_of(mutant: str) -> str:
    """`digitlearn.training.losses.x_bce_loss__mutmut_2` -> `digitlearn.training.losses`."""
    return mutant.split(".x")[0] if ".x" in mutant else mutant.rsplit(".", 1)[0]


def report(statuses: dict[str, str]) -> None:
    by_module: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for name, status in statuses.items():
        by_module[module_of(name)][status] += 1
    print(f"{'module':44} {'mutants':>7} {'killed':>7} {'rate':>6}")
    for module, counts in sorted(by_module.items()):
        total = sum(counts.values()) - counts["skipped"] - counts[UNRUN]
        killed = sum(counts[s] for s in KILLED)
        unrun = f"   ({counts[UNRUN]} not run yet)" if counts[UNRUN] else ""
        print(f"{module:44} {total:7} {killed:7} {killed / max(total, 1):6.1%}{unrun}")
    survivors = sorted(n for n, s in statuses.items() if s not in KILLED | {"skipped", UNRUN})
    print(f"\n{len(survivors)} surviving (mutmut show NAME for the diff):")
    for name in survivors:
        print(f"  {name}: {statuses[name]}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--report", action="store_true", help="only report the last run's results")
    p.add_argument("--all", action="store_true", help="with modules: rerun their killed mutants too")
    p.add_argument("--children", type=int, default=1, help="mutants tested at a time (default 1)")
    p.add_argument("--fresh-stats", action="store_true", help="profile which tests cover what again")
    p.add_argument("modules", nargs="*", help="only these modules' mutants, e.g. digitlearn.training.losses")
    args = p.parse_args()
    if not args.report and not os.environ.get("DIGITLEARN_MIRROR"):
        # without the data the tests on real MNIST skip, and mutmut records them as covering
        # nothing: mutants only they kill then survive (DIGITLEARN_MIRROR=../shared/datasets)
        print("mutation: warning: DIGITLEARN_MIRROR is not set: tests on MNIST skip", file=sys.stderr)
    if not args.report:
        if args.fresh_stats:
            # mutmut profiles only new tests on a later run: a function added to the source since
            # (or a call moved into it) keeps the tests of the first profile, missing the others
            (ROOT / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)
        names = [f"{m}.*" for m in args.modules]
        if args.modules and not args.all:
            # mutmut reruns every mutant it is named, killed or not; a killed mutant stays killed
            # when tests are added, and mutmut resets the verdicts of a changed function itself
            previous = results()
            names = [n for n, s in previous.items() if module_of(n) in args.modules and s not in KILLED]
            names += [f"{m}.*" for m in args.modules if not any(module_of(n) == m for n in previous)]
            if not names:
                report(previous)
                return
        # mutmut forks a process per mutant: with OpenMP's threads started before the fork, the
        # child can wait for ever on a lock the parent held, so torch computes on one thread
        env = {**os.environ, "OMP_NUM_THREADS": "1", "DIGITLEARN_THREADS": "1"}
        run = [*MUTMUT, "run", "--max-children", str(args.children)]
        subprocess.run([*run, *names], cwd=ROOT, check=True, env=env)
        if args.modules and not args.all:
            # a function edited since the last run gets new mutants, made by this run: test them too
            new = [n for n, s in results().items() if module_of(n) in args.modules and s == UNRUN]
            if new:
                subprocess.run([*run, *new], cwd=ROOT, check=True, env=env)
    report(results())


if __name__ == "__main__":
    main()
