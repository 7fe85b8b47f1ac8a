"""A reproduction's report: report.html (one self-contained page, figures embedded), report.md
(figures beside it in figures/), and results.json (every figure, machine-readable).

The pages come from Jinja templates in `templates/`; HTML is autoescaped, so a step's text can
never break the page.
"""

import base64
import itertools
import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import torch
from jinja2 import Environment, PackageLoader, select_autoescape
from matplotlib.figure import Figure

from .. import __version__
from ..errors import DigitlearnError
from ..files import atomic_dir
from ..jsondata import jsonable
from ..plots.charts import png_bytes
from .reproduce import TOLERANCE, Reproduction

# the report's sections of figures, in order: (title, figure names or name prefixes ending in "_")
GROUPS = [
    ("The data and the pixel-similarity baseline", ("example_pixels", "means")),
    ("Activation functions", ("activations",)),
    ("SGD on a quadratic: the roller coaster", ("quadratic_fit", "quadratic_loss")),
    ("Training curves", ("curves_",)),
    ("The learning-rate finder", ("lr_find",)),
    ("All ten digits", ("means_mnist",)),
    ("Where the model fails", ("confusion_matrix", "top_losses")),
]
FILES = ("report.html", "report.md", "results.json", "figures")


@dataclass
class _Shown:
    name: str
    caption: str
    data: str  # base64 PNG


_FIGURES: list[Figure] = []  # the figures a forked drawing process inherits, not pickled


def _png_of(i: int) -> bytes:
    return png_bytes(_FIGURES[i])


def _pngs(figures: list[Figure]) -> list[bytes]:
    """Each figure as PNG bytes. Drawing the report's sixteen takes seconds of matplotlib, pure
    Python that threads would only take turns at: with PyTorch's threads set to two or more (one
    per core), forked processes draw them side by side."""
    workers = min(torch.get_num_threads(), len(figures))
    if workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return [png_bytes(fig) for fig in figures]
    global _FIGURES
    _FIGURES = figures
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            return list(pool.map(_png_of, range(len(figures))))
    finally:
        _FIGURES = []


def _groups(shown: list[_Shown]) -> list[dict]:
    groups, left = [], list(shown)
    for title, names in GROUPS:
        mine = [
            f for f in left if any(f.name == n or (n.endswith("_") and f.name.startswith(n)) for n in names)
        ]
        left = [f for f in left if f not in mine]
        if mine:
            groups.append({"title": title, "figures": mine})
    if left:
        groups.append({"title": "More figures", "figures": left})
    return groups


def _md(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def check_out(out: Path) -> None:
    """`out` must be new, empty, or an earlier report: replacing anything else would lose files."""
    if out.exists() and not out.is_dir():
        raise DigitlearnError(f"{out} is a file: --out names a folder for the report")
    if out.is_dir():
        extra = sorted(p.name for p in out.iterdir() if p.name not in FILES)
        if extra:
            raise DigitlearnError(
                f"{out} holds other files ({', '.join(extra[:3])}{'...' if len(extra) > 3 else ''}): "
                "choose another --out for the report"
            )


def write_report(rep: Reproduction, out: str | Path) -> Path:
    """Write report.html, report.md, results.json and figures/*.png into the folder `out`, all at
    once: an earlier report there is replaced only when the new one is complete."""
    out = Path(out)
    check_out(out)
    pngs = dict(zip(rep.figures, _pngs([fig for _, fig in rep.figures.values()]), strict=True))
    shown = [
        _Shown(name, caption, base64.b64encode(pngs[name]).decode("ascii"))
        for name, (caption, _) in rep.figures.items()
    ]
    env = Environment(
        loader=PackageLoader("digitlearn.chapter", "templates"),
        autoescape=select_autoescape(["html.j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["md"] = _md
    context = {
        "checks": rep.checks,
        "n_ok": sum(c.ok for c in rep.checks),
        "passed": rep.passed,
        "quick": rep.quick,
        "seed": rep.seed,
        "seconds": rep.seconds,
        "when": datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "versions": {"digitlearn": __version__, "torch": torch.__version__},
        "tolerance": TOLERANCE,
        "sections": [(s, list(rows)) for s, rows in itertools.groupby(rep.checks, key=lambda c: c.section)],
        "groups": _groups(shown),
    }
    results = {**rep.to_json(), "versions": context["versions"], "figures": sorted(pngs)}
    with atomic_dir(out, replace=True) as tmp:
        (tmp / "figures").mkdir()
        for name, data in pngs.items():
            (tmp / "figures" / f"{name}.png").write_bytes(data)
        (tmp / "results.json").write_text(json.dumps(jsonable(results), indent=2, allow_nan=False) + "\n")
        (tmp / "report.md").write_text(env.get_template("report.md.j2").render(context))
        (tmp / "report.html").write_text(env.get_template("report.html.j2").render(context))
    return out
