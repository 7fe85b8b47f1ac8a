"""`import digitlearn` and the command line's quick answers load no library they do not use.

torch, matplotlib and scipy take seconds to import, so `digitlearn --help` waited for them and
notebook users paid for plotting they never did. Each check runs in a fresh interpreter: the
test process itself has imported everything long before.
"""

import subprocess
import sys

import pytest

import digitlearn
from digitlearn.chapter.baseline import DISTANCES
from digitlearn.cli import baseline as baseline_command
from digitlearn.cli import shared
from digitlearn.training.losses import LOSSES

HEAVY = ("torch", "numpy", "PIL", "matplotlib", "scipy", "safetensors", "fastapi", "uvicorn", "jinja2")


def loaded_after(code: str) -> list[str]:
    """The HEAVY modules that running `code` in a fresh interpreter leaves imported."""
    probe = f"{code}\nimport sys\nprint(*[m for m in {HEAVY!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[-1].split()


def test_the_package_loads_plotting_and_serving_only_when_used():
    loaded = loaded_after("import digitlearn\nfrom digitlearn import *")
    assert "torch" in loaded  # the names were imported, not just listed
    assert not {"matplotlib", "scipy", "fastapi", "uvicorn"} & set(loaded)


def test_help_recipes_and_datasets_load_no_heavy_library():
    code = """
import argparse
from digitlearn.cli import build_parser, main

main(["recipes"])
main(["datasets"])
parser = build_parser()
commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
for argv in (["--help"], ["--version"], *([name, "--help"] for name in commands)):
    try:
        parser.parse_args(argv)
    except SystemExit:
        pass
"""
    assert loaded_after(code) == []


def test_every_public_name_resolves_and_is_listed():
    for name in digitlearn.__all__:
        assert getattr(digitlearn, name) is not None, name
    assert set(digitlearn.__all__) <= set(dir(digitlearn))
    assert isinstance(digitlearn.__version__, str)
    with pytest.raises(AttributeError, match="no_such_name"):
        digitlearn.no_such_name  # noqa: B018


def test_the_parser_offers_the_names_the_modules_know():
    # the command line keeps its own copies of these names, so that building it needs no torch
    assert set(baseline_command.DISTANCES) == set(DISTANCES)
    assert set(shared.LOSS_NAMES.values()) == set(LOSSES)
