"""The parser, made of each command's own arguments, and `main`: run a command, and turn what
goes wrong into one line and an exit status."""

import argparse
import os
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import DigitlearnError
from . import (
    baseline,
    compare,
    datasets,
    evaluate,
    export,
    lr_find,
    predict,
    recipes,
    reproduce,
    serve,
    show,
    train,
)
from .shared import Interrupted, Parser, threads_parent

# in the order `digitlearn --help` lists them
COMMANDS = (
    datasets, baseline, show, train, recipes, compare, lr_find, evaluate, predict, export, reproduce, serve,
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="digitlearn", description="fastbook chapter 4 as real software.")
    p.add_argument("--version", action="version", version=f"digitlearn {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    threads = threads_parent()
    for command in COMMANDS:
        q = sub.add_parser(command.NAME, help=command.HELP, parents=[threads] if command.TORCH else [])
        command.add_arguments(q)
        q.set_defaults(run=command.run, parser=q)  # a command's usage errors name it, not digitlearn
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if hasattr(args, "threads"):  # a command that computes with torch
            from ..hardware import set_threads

            set_threads(args.threads)
        return args.run(args)
    except DigitlearnError as e:
        print(f"digitlearn: error: {e}", file=sys.stderr)
    except BrokenPipeError:  # the reader went away (`digitlearn recipes | head`): nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so exit's flush is quiet
    except OSError as e:  # the environment said no (permissions, disk full): not a bug to trace
        print(f"digitlearn: error: {e.strerror or e}: {e.filename or ''}".rstrip(": "), file=sys.stderr)
    except (Interrupted, KeyboardInterrupt) as e:
        detail = str(e) if isinstance(e, Interrupted) else ""
        print("digitlearn: interrupted" + (f": {detail}" if detail else ""), file=sys.stderr)
        return 130
    return 1
