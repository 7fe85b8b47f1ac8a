"""notebooks/chapter4.ipynb, run in a real Jupyter kernel as a reader would run it (Run All).

One run for the module: each test reads the executed cells. A cell is found by its tag (cell
metadata), so editing the prose between cells moves nothing here.
"""

import ast
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "chapter4.ipynb"


@pytest.fixture(scope="module")
def executed(sample, mnist, tmp_path_factory):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    folder = tmp_path_factory.mktemp("notebook")  # where a reader opens it: the repository's notebooks/
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
    ).execute()
    nb.metadata["written"] = sorted(p.name for p in folder.iterdir())
    return nb


def test_running_the_notebook_writes_nothing_where_it_is(executed):
    assert executed.metadata["written"] == []


def tagged(nb, tag: str) -> list:
    cells = [c for c in nb.cells if tag in c.metadata.get("tags", [])]
    assert cells, f"no cell tagged {tag!r}"
    return cells


def text(cell) -> str:
    """What a cell printed (stdout) and its value's plain-text form."""
    parts = [o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stdout"]
    parts += [o.data["text/plain"] for o in cell.outputs if "text/plain" in o.get("data", {})]
    return "\n".join(parts)


def kinds(cell) -> set[str]:
    return {kind for o in cell.outputs for kind in o.get("data", {})}


def test_the_notebook_is_stored_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert len(code) >= 20 and all(c.outputs == [] and c.execution_count is None for c in code)


def test_every_cell_runs_and_stderr_stays_quiet(executed):
    errors = [o for c in executed.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors == []
    stderr = "".join(o.text for c in executed.cells for o in c.get("outputs", [])
                     if o.output_type == "stream" and o.name == "stderr")  # fmt: skip
    assert len(stderr.splitlines()) <= 3, stderr
    assert "\x1b[" not in "".join(text(c) for c in executed.cells if c.cell_type == "code")


def test_the_chapters_figures(executed):
    assert "6131 6265" in text(tagged(executed, "figure")[0])
    assert "pixel similarity, 3s / 7s / average: 0.9168 / 0.9854 / 0.9511" in text(
        tagged(executed, "baseline")[0]
    )
    assert "tensor(6.)\ntensor([ 6.,  8., 20.])" in text(tagged(executed, "gradients")[0])

    def accuracy(tag: str) -> float:
        printed = "".join(o.text for o in tagged(executed, tag)[0].outputs if o.get("name") == "stdout")
        return float(re.search(r": (0\.\d{4})\s*$", printed).group(1))

    assert accuracy("linear1") >= 0.9677 - 0.005  # the chapter: 0.9677 to 0.9741
    assert accuracy("basic_optim") >= 0.9678 - 0.005
    assert accuracy("simple_net") >= 0.980  # the chapter: 0.982; 0.9809 at seed 42
    assert accuracy("resnet") >= 0.9941 - 0.005
    assert accuracy("full_mnist") >= 0.99
    assert "drawn digit read as 7" in text(tagged(executed, "predict")[0])
    # most_confused: (actual, predicted, count) triples, the most frequent first
    pairs = ast.literal_eval(text(tagged(executed, "most_confused")[0]).splitlines()[0])
    assert len(pairs) == 5 and all(a != p and n >= 1 for a, p, n in pairs)
    assert [n for *_, n in pairs] == sorted((n for *_, n in pairs), reverse=True)


def test_every_plot_cell_shows_an_image(executed):
    cells = tagged(executed, "figure")
    assert len(cells) >= 9
    for cell in cells:
        assert "image/png" in kinds(cell), cell.source
        assert "<Figure size" not in text(cell), cell.source


def test_training_shows_html_progress_and_tables(executed):
    fit = tagged(executed, "progress")[0]
    assert "text/html" in kinds(fit)
    assert not [o for o in fit.outputs if o.output_type == "stream" and o.name == "stderr"]
    summary, history = tagged(executed, "summary")[0], tagged(executed, "history")[0]
    for cell in (summary, history):
        assert "<table" in "".join(o.data.get("text/html", "") for o in cell.outputs if "data" in o)
    assert "23,581 parameters" in text(summary)
    assert re.search(r"^1\s+\S+\s+\S+\s+0\.99", text(history), re.M)  # the last (second) epoch's row


def test_reprs_are_short(executed):
    for tag in ("dataset", "learner"):
        shown = text(tagged(executed, tag)[0])
        assert len(shown.splitlines()) <= 3 and len(shown) < 300, shown
    lr_find = text(tagged(executed, "lr_find")[0])
    one_line = r"LRFindResult\(suggestion \d\.\d\de[+-]\d\d; 100 learning rates .*\)"
    assert re.fullmatch(one_line, lr_find), lr_find
