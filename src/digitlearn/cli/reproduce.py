"""`digitlearn reproduce`: the chapter end to end, its figures next to ours, and a report."""

import argparse
from pathlib import Path

from .shared import add_device, add_seed

NAME, HELP, TORCH = "reproduce", "run the chapter end to end: its figures next to ours, and a report", True


def add_arguments(q: argparse.ArgumentParser) -> None:
    q.add_argument("--out", metavar="DIR", default="report", help="the report's folder (default %(default)s)")
    q.add_argument("--quick", action="store_true", help="mnist_sample only, under a minute; no full MNIST")
    add_device(q)
    add_seed(q)


def run(args: argparse.Namespace) -> int:
    from ..chapter.report import check_out, write_report
    from ..chapter.reproduce import format_table, reproduce, status

    out = Path(args.out)
    check_out(out)  # before the work: a bad --out costs no run
    what = "mnist_sample only (--quick)" if args.quick else "mnist_sample, then full MNIST"
    print(f"reproducing fastbook chapter 4: {what}, seed {args.seed}", flush=True)
    rep = reproduce(quick=args.quick, seed=args.seed, device=args.device)
    print()
    print(format_table(rep.checks))
    write_report(rep, out)
    print(f"\n{rep.seconds:.1f}s; wrote {out / 'report.html'}, {out / 'report.md'}, {out / 'results.json'}")
    return status(rep.checks)
