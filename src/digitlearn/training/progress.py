"""Showing progress while training: bars for the epochs and batches, and the epoch table.

Three displays, chosen where training runs:

    html   in Jupyter (an IPython kernel): an HTML progress bar for the epochs, one for the
           batches, and the epoch table growing in place, all updated in the cell's output
           (no ipywidgets needed, nothing written to stderr)
    bars   in a terminal (stderr is a tty): tqdm bars on stderr, the table's lines above them
    lines  in a pipe or a log file: just the table, a plain line per epoch as each epoch ends

To choose yourself: `ProgressCallback(mode="lines")` (or "html", "bars"), or for every fit the
environment variable DIGITLEARN_PROGRESS=html|bars|lines ("auto" or unset: detect). The argument
wins over the variable; a callback given a `file` writes lines to it. "html" needs a running
IPython: elsewhere it falls back to what was detected.
"""

import html
import math
import os
import sys
import time
from typing import Any, TextIO

from tqdm import tqdm  # not tqdm.auto: without ipywidgets it warns "IProgress not found" in Jupyter

from ..errors import DigitlearnError
from ..tables import epoch_cell, line
from .events import Callback, Learner

MODES = ("html", "bars", "lines")
ENV = "DIGITLEARN_PROGRESS"
MIN_INTERVAL = 0.1  # seconds between two HTML redraws: each one is a message to the notebook


def format_row(names: list[str], row: dict | None = None) -> str:
    """One line of the epoch table, printed as each epoch ends: the header when `row` is None."""
    widths = [max(len(n), 5 if n == "epoch" else 8) for n in names]
    align = ">" * len(names)
    if row is None:
        return line(names, widths, align)
    return line([epoch_cell(n, row.get(n, math.nan)) for n in names], widths, align)


def _ipython() -> Any:
    """The running IPython shell, or None (without importing IPython where nobody has)."""
    module = sys.modules.get("IPython")
    return module.get_ipython() if module is not None else None


def in_notebook() -> bool:
    """True in a Jupyter kernel (notebook, lab, VS Code, Colab), False in a terminal IPython."""
    shell = _ipython()
    return shell is not None and (
        type(shell).__name__ == "ZMQInteractiveShell" or getattr(shell, "kernel", None) is not None
    )


def interactive() -> bool:
    """True in a terminal or a Jupyter kernel: places where a progress bar can redraw its line."""
    # in_notebook, not "ipykernel" in sys.modules: jupyter_client imports ipykernel to find kernels
    return sys.stderr.isatty() or in_notebook()


def _parse(value: str, source: str) -> str:
    chosen = value.strip().lower() or "auto"
    if chosen not in (*MODES, "auto"):
        raise DigitlearnError(f"{source}={value!r}: progress is shown as one of {', '.join(MODES)} or auto")
    return chosen


def choose_mode(mode: str | None = None, file: TextIO | None = None) -> str:
    """The display to use: `mode`, else lines to a `file`, else $DIGITLEARN_PROGRESS, else detected."""
    if mode is None and file is not None:
        return "lines"
    chosen = _parse(mode, "mode") if mode is not None else _parse(os.environ.get(ENV, ""), ENV)
    detected = "html" if in_notebook() else "bars" if interactive() else "lines"
    if chosen == "auto" or (chosen == "html" and _ipython() is None):
        return detected  # and for html where nothing could render it: bars or lines
    return chosen


class _Lines:
    """A pipe or a log: the epoch table, a plain line per epoch, and nothing that redraws."""

    def __init__(self, file: TextIO | None) -> None:
        self.file = file or sys.stdout

    def print(self, text: str) -> None:
        print(text, file=self.file, flush=True)

    def begin(self, learn: Learner) -> None:
        self.print(format_row(learn.recorder.names))

    def stage(self, desc: str, total: int) -> None:
        pass

    def step(self) -> None:
        pass

    def end_stage(self) -> None:
        pass

    def epoch_done(self, learn: Learner) -> None:
        self.print(format_row(learn.recorder.names, learn.recorder.history[-1]))

    def end(self) -> None:
        pass


class _Bars(_Lines):
    """A terminal: tqdm bars on stderr (epochs, then the batches under them), the table above."""

    def __init__(self, file: TextIO | None) -> None:
        super().__init__(file)
        self.epochs = self.batches = None

    def print(self, text: str) -> None:
        tqdm.write(text, file=self.file)  # clears the bars, prints, redraws them below

    def begin(self, learn: Learner) -> None:
        self.epochs = tqdm(total=learn.n_epoch, desc="epochs", unit="epoch", leave=False)
        super().begin(learn)

    def stage(self, desc: str, total: int) -> None:
        self.batches = tqdm(total=total, desc=desc, unit="batch", leave=False)

    def step(self) -> None:
        if self.batches is not None:
            self.batches.update(1)

    def end_stage(self) -> None:
        if self.batches is not None:
            self.batches.close()
            self.batches = None

    def epoch_done(self, learn: Learner) -> None:
        super().epoch_done(learn)
        self.epochs.update(1)

    def end(self) -> None:
        self.end_stage()
        self.epochs.close()


def html_bar(desc: str, n: int, total: int, elapsed: float) -> tuple[str, str]:
    """A progress bar as (HTML, plain text): `n` of `total` done in `elapsed` seconds."""
    left = tqdm.format_interval(elapsed / n * (total - n)) if n else "?"
    text = f"{desc} {n}/{total} [{tqdm.format_interval(elapsed)}<{left}]"
    bar = f'<progress value="{n}" max="{max(total, 1)}" style="width:300px;vertical-align:middle"></progress>'
    return f"<div>{bar} {html.escape(text)}</div>", text


def html_table(names: list[str], rows: list[dict]) -> str:
    """The epoch table as an HTML table (styled as Jupyter styles a pandas DataFrame)."""
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape(epoch_cell(n, r.get(n, math.nan)))}</td>" for n in names)
        + "</tr>"
        for r in rows
    )
    return (
        f'<table border="1" class="dataframe"><thead><tr style="text-align: left;">{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


class _Bar:
    """One bar's state: what it counts, how far it is, since when."""

    def __init__(self, desc: str, total: int) -> None:
        self.desc, self.total, self.n = desc, total, 0
        self.start = time.perf_counter()

    def render(self) -> tuple[str, str]:
        return html_bar(self.desc, self.n, self.total, time.perf_counter() - self.start)


class _Html:
    """Jupyter: two outputs updated in place, the bars (epochs, batches) and the table under them.

    Each output is a display with an id that `update` redraws; a batch redraws the bars at most
    every MIN_INTERVAL seconds (and always on the last batch), so a long epoch stays cheap.
    """

    def __init__(self) -> None:
        self.epochs = self.batches = None
        self.bars = self.table = None  # the display handles
        self.shown = 0.0

    @staticmethod
    def _show(html_text: str, plain: str, handle: Any = None) -> Any:
        """Display (or with a handle, redraw) HTML with a plain-text form for text-only readers."""
        from IPython.display import display

        bundle = {"text/html": html_text, "text/plain": plain}
        if handle is None:
            return display(bundle, raw=True, display_id=True)
        handle.update(bundle, raw=True)
        return handle

    def _draw_bars(self) -> None:
        parts = [bar.render() for bar in (self.epochs, self.batches) if bar is not None]
        self.bars = self._show("".join(h for h, _ in parts), "\n".join(t for _, t in parts), self.bars)
        self.shown = time.perf_counter()

    def _draw_table(self, learn: Learner) -> None:
        names, rows = learn.recorder.names, learn.recorder.history
        plain = "\n".join([format_row(names), *(format_row(names, r) for r in rows)])
        self.table = self._show(html_table(names, rows), plain, self.table)

    def begin(self, learn: Learner) -> None:
        self.epochs = _Bar("epochs", learn.n_epoch)
        self._draw_bars()
        self._draw_table(learn)

    def stage(self, desc: str, total: int) -> None:
        self.batches = _Bar(desc, total)
        self._draw_bars()

    def step(self) -> None:
        self.batches.n += 1
        if self.batches.n >= self.batches.total or time.perf_counter() - self.shown >= MIN_INTERVAL:
            self._draw_bars()

    def end_stage(self) -> None:
        self.batches = None

    def epoch_done(self, learn: Learner) -> None:
        self.epochs.n += 1
        self._draw_table(learn)
        self._draw_bars()

    def end(self) -> None:
        self.batches = None
        self._draw_bars()  # what stays in the notebook: the epochs bar, how far it got and how long


class _Silent:
    """The display outside a fit: `validate` and `get_preds` run the same events, and show nothing."""

    def stage(self, desc: str, total: int) -> None: ...

    def step(self) -> None: ...

    def end_stage(self) -> None: ...


class ProgressCallback(Callback):
    """Progress while training: HTML bars in Jupyter, tqdm bars in a terminal, and the epoch table.

    `mode` ("html", "bars", "lines" or None: detect, see the module docstring) sets the display;
    `file` takes the table's lines (default: sys.stdout at fit time) and, with no `mode`, means lines.
    """

    order = 60
    in_lr_find = False

    def __init__(self, file: TextIO | None = None, mode: str | None = None) -> None:
        self.file, self.mode = file, mode
        if mode is not None:
            _parse(mode, "mode")  # a misspelt mode fails here, not when training starts
        self.display: _Lines | _Html | _Silent = _Silent()

    def before_fit(self, learn: Learner) -> None:
        # Chosen at each fit, not at construction: sys.stdout and the environment may have changed.
        mode = choose_mode(self.mode, self.file)
        self.display = (
            _Html() if mode == "html" else _Bars(self.file) if mode == "bars" else _Lines(self.file)
        )
        self.display.begin(learn)

    def before_train(self, learn: Learner) -> None:
        self.display.stage("train", len(learn.dl))

    def before_validate(self, learn: Learner) -> None:
        self.display.stage("valid", len(learn.dl))

    def after_batch(self, learn: Learner) -> None:
        self.display.step()

    def after_train(self, learn: Learner) -> None:
        self.display.end_stage()

    after_validate = after_train

    def after_epoch(self, learn: Learner) -> None:
        self.display.epoch_done(learn)

    def after_fit(self, learn: Learner) -> None:
        if not isinstance(self.display, _Silent):  # silent when before_fit failed
            self.display.end()
            self.display = _Silent()
