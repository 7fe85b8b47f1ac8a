"""How long the quick commands take, process start to exit: `digitlearn --help`, `--version`,
`recipes`, `datasets`, every command's `--help`, and `import digitlearn`. Median of `--rounds`;
with `--before REF`, an earlier version (a git ref of this repository) in the same run. Target:
0.5 s each. Prints JSON.

    .venv/bin/python bench/startup.py --rounds 5 --before ddbf535
"""

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import time

from versions import command, source_of

from digitlearn.cli import build_parser
from digitlearn.hardware import machine_info

IMPORT = ["-c", "import digitlearn"]  # python's arguments, not digitlearn's


def commands() -> list[list[str]]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return [
        ["--help"],
        ["--version"],
        ["recipes"],
        ["datasets"],
        *([c, "--help"] for c in sub.choices),
        IMPORT,
    ]


def seconds(argv: list[str], src) -> float | None:
    """The command's time, or None where this version has no such command."""
    prefix, env = command(src)
    cmd = [sys.executable, *argv] if argv is IMPORT else [*prefix, *argv]
    start = time.perf_counter()
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start if done.returncode == 0 else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--before", metavar="REF", help="also time this git ref's version, alternating")
    a = p.parse_args()
    report: dict = {"machine": machine_info(), "target_seconds": 0.5}
    with contextlib.ExitStack() as stack:
        versions = {"now": None}
        if a.before:
            versions[f"before ({a.before})"] = stack.enter_context(source_of(a.before))
        for argv in commands():
            times = {v: [] for v in versions}
            for _ in range(a.rounds):
                for version, src in versions.items():  # alternating, so drift hits both alike
                    times[version].append(seconds(argv, src))
            name = "python -c 'import digitlearn'" if argv is IMPORT else " ".join(["digitlearn", *argv])
            report[name] = {
                v: round(statistics.median(t), 3) if None not in t else None for v, t in times.items()
            }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
