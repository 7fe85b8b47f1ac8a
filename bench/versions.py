"""Another version of digitlearn beside this one, for benchmarks that compare before and after.

`source_of(ref)` checks out a git ref (a commit, tag or branch of this repository) into a
temporary worktree; `command(src)` is the `python -m digitlearn` that runs that version's code
(or this checkout's, for src None) with this environment's packages.
"""

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def source_of(ref: str | None) -> Iterator[Path | None]:
    """The `src` folder of `ref` checked out in a temporary worktree (None: this checkout)."""
    if ref is None:
        yield None
        return
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        git = ["git", "-C", str(ROOT), "worktree"]
        subprocess.run([*git, "add", "--detach", "-q", str(tree), ref], check=True)
        try:
            yield tree / "src"
        finally:
            subprocess.run([*git, "remove", "--force", str(tree)], check=True)


def command(src: Path | None) -> tuple[list[str], dict]:
    """(argv prefix, environment) that run `digitlearn` from `src` (None: the installed one)."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH")]))
    return [sys.executable, "-m", "digitlearn"], env
