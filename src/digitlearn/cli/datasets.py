"""`digitlearn datasets`: the registered datasets, and whether each is in the cache."""

import argparse

from ..data.sources import REGISTRY, cache_home, mirror
from ..tables import table

NAME, HELP, TORCH = "datasets", "list the known datasets and whether they are cached", False


def add_arguments(q: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    where = mirror()
    print(f"cache: {cache_home()}" + (f"   mirror: {where}" if where else ""))
    rows = [
        [name, "cached" if (cache_home() / "data" / name).is_dir() else "not fetched", spec.description]
        for name, spec in sorted(REGISTRY.items())
    ]
    print(table(["dataset", "state", "what"], rows, align="<<<"))
    return 0
