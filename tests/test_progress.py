"""Progress while training: HTML in Jupyter (in a real kernel), bars in a terminal, lines in a pipe."""

import io
import math
import re
import sys
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from digitlearn import DigitlearnError, Learner, ProgressCallback, batch_accuracy, bce_loss
from digitlearn.training import progress

from .conftest import toy_dls
from .kernel import all_text, kernel, streamed  # noqa: F401 (kernel: the fixture)


class Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def in_a_terminal(monkeypatch) -> Terminal:
    """Make stderr a terminal; in the test itself, as pytest sets sys.stderr again after fixtures."""
    err = Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    return err


@pytest.fixture(autouse=True)
def undecided(monkeypatch):
    """No override from the environment."""
    monkeypatch.delenv(progress.ENV, raising=False)


def fit(epochs: int = 2) -> None:
    torch.manual_seed(0)
    Learner(toy_dls(), nn.Linear(8, 1), loss_func=bce_loss, metrics=batch_accuracy).fit(epochs, 0.3)


def test_a_terminal_gets_bars(monkeypatch, capsys):
    terminal = in_a_terminal(monkeypatch)
    assert progress.choose_mode() == "bars"
    fit()
    assert "train" in terminal.getvalue() and "\r" in terminal.getvalue()  # bars redrawing their line
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == ["epoch", "0", "1"]


def test_a_pipe_gets_lines(capsys):
    assert progress.choose_mode() == "lines"  # pytest captures stderr: not a terminal
    fit()
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 3 and err == ""


def test_the_environment_and_the_argument_override_detection(monkeypatch, capsys):
    terminal = in_a_terminal(monkeypatch)
    monkeypatch.setenv(progress.ENV, "lines")
    assert progress.choose_mode() == "lines"
    fit()
    assert terminal.getvalue() == "" and len(capsys.readouterr().out.splitlines()) == 3
    monkeypatch.setenv(progress.ENV, " Bars ")
    assert progress.choose_mode() == "bars"
    assert progress.choose_mode("lines") == "lines"  # the argument wins
    assert progress.choose_mode(file=io.StringIO()) == "lines"  # a table sent to a file: plain lines
    monkeypatch.setenv(progress.ENV, "auto")
    assert progress.choose_mode() == "bars"


def test_html_needs_ipython(monkeypatch):
    in_a_terminal(monkeypatch)
    # asked for where nothing renders HTML (a script, say), it falls back to what fits
    assert progress.choose_mode("html") == "bars"


def test_unknown_modes_are_refused(monkeypatch):
    with pytest.raises(DigitlearnError, match=r"mode='fancy': progress is shown as one of html, bars, lines"):
        ProgressCallback(mode="fancy")
    monkeypatch.setenv(progress.ENV, "tqdm")
    with pytest.raises(DigitlearnError, match=r"DIGITLEARN_PROGRESS='tqdm'"):
        fit(epochs=1)


@pytest.mark.parametrize(
    ("shell", "expected"),
    [
        (None, False),  # plain Python that imported IPython
        (SimpleNamespace(), False),  # IPython in a terminal: no kernel
        (SimpleNamespace(kernel=object()), True),  # a Jupyter kernel (notebook, lab, VS Code, Colab)
    ],
)
def test_a_notebook_is_an_ipython_with_a_kernel(monkeypatch, shell, expected):
    monkeypatch.setitem(sys.modules, "IPython", SimpleNamespace(get_ipython=lambda: shell))
    assert progress.in_notebook() is expected


def test_html_pieces():
    names = ["epoch", "train_loss", "time"]
    table = progress.html_table(names, [{"epoch": 0, "train_loss": math.nan, "time": 1.5}])
    assert "<th>train_loss</th>" in table and "<td>-</td><td>1.50s</td>" in table
    bar, text = progress.html_bar("train", 3, 6, 1.0)
    assert '<progress value="3" max="6"' in bar and text == "train 3/6 [00:01<00:01]"
    assert "&lt;" in bar  # the text is escaped inside the HTML


FIT = """\
learn = Learner(toy_dls(bs=4), nn.Linear(8, 1), loss_func=bce_loss, metrics=batch_accuracy)
_ = learn.fit(2, 0.3)
"""


@pytest.fixture(scope="module")
def notebook_fit(kernel):  # noqa: F811 (the fixture imported above)
    """A 2-epoch fit of 48 + 16 batches an epoch, run as a notebook cell."""
    kernel.run(
        "from torch import nn\n"
        "from digitlearn import Learner, bce_loss, batch_accuracy\n"
        "from tests.conftest import toy_dls"
    )
    return kernel.run(FIT)


def test_jupyter_shows_html_bars_and_table(notebook_fit):
    shown = [o for o in notebook_fit if o.type == "display_data"]
    assert len(shown) == 2 and all(o.display_id and "text/html" in o.data for o in shown)
    bars, table = (o.display_id for o in shown)
    updates = [o for o in notebook_fit if o.type == "update_display_data"]
    assert {o.display_id for o in updates} == {bars, table}
    last_table = [o.data["text/html"] for o in updates if o.display_id == table][-1]
    assert re.findall(r"<tr><td>(\d)</td>", last_table) == ["0", "1"]
    last_bars = [o.data for o in updates if o.display_id == bars][-1]
    assert "epochs 2/2" in last_bars["text/plain"] and "<progress" in last_bars["text/html"]
    assert len(updates) < 40  # 128 batches, but redrawn at most 10 times a second


def test_jupyter_gets_nothing_on_stderr_nor_terminal_codes(notebook_fit):
    assert streamed(notebook_fit, "stderr") == "" and streamed(notebook_fit, "stdout") == ""
    assert "\x1b[" not in all_text(notebook_fit) and "\r" not in all_text(notebook_fit)


def test_jupyter_follows_the_environment(kernel, notebook_fit):  # noqa: F811
    outputs = kernel.run(
        "import os\n"
        f"os.environ[{progress.ENV!r}] = 'lines'\n"
        f"try:\n    {FIT.replace(chr(10), chr(10) + '    ')}\n"
        f"finally:\n    del os.environ[{progress.ENV!r}]"
    )
    assert {(o.type, o.name) for o in outputs} == {("stream", "stdout")}  # no HTML
    assert len(streamed(outputs, "stdout").splitlines()) == 3


@pytest.mark.parametrize("mode", ["lines", "bars", "html"])
def test_validate_and_get_preds_outside_fit_show_nothing(mode, capsys):
    """`show_results`, `Interpretation.from_learner` and `validate` run the validation events
    outside any fit: the progress display stays silent there (and does not fail)."""
    learn = Learner(toy_dls(), nn.Linear(8, 1), cbs=[ProgressCallback(mode=mode)], progress=False)
    learn.validate()
    probs, _ = learn.get_preds()
    assert probs.shape == (64, 2) and capsys.readouterr() == ("", "")
