"""Steps that tests/test_reproduce.py runs in a second process through `beside` (an entry
"tests.beside_steps:run"): one finds a check, a figure and a result, one fails as a user's
missing data does, one has a bug."""

from matplotlib.figure import Figure

from digitlearn.chapter import beside
from digitlearn.chapter.reproduce import Context, exact
from digitlearn.errors import DigitlearnError


def _finds(ctx: Context) -> None:
    ctx.checks.append(exact("sums", "1 + 1", "2", str(1 + 1), 2))
    fig = Figure(figsize=(2, 2))
    fig.add_subplot().plot([0, 1], [1, 0])
    ctx.figure("line", "A falling line.", fig)
    ctx.results.setdefault("sums", {})["two"] = 2


def _fails(ctx: Context) -> None:
    raise DigitlearnError("mnist: no such file in the mirror")


def _breaks(ctx: Context) -> None:
    {}["a key"]  # a bug: a KeyError


def run(request: dict) -> None:
    beside.answer(request, {"finds": _finds, "fails": _fails, "breaks": _breaks}, Context)
