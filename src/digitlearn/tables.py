"""Text tables, the one way every command and report lines up its columns.

    >>> print(table(["class", "accuracy"], [["3", "0.9168"], ["7", "0.9854"]]))
    class  accuracy
    3        0.9168
    7        0.9854

Cells are strings (format numbers first). Each column is as wide as its widest cell, or as wide
as `widths` says when a table is printed a row at a time (the epoch table of `fit`).
"""

import math
from collections.abc import Iterable, Sequence


def default_align(n_columns: int) -> str:
    """Names on the left, figures on the right: the first column left-aligned, the rest right."""
    return "<" + ">" * (n_columns - 1)


def line(cells: Sequence[str], widths: Sequence[int], align: str | None = None, gap: int = 2) -> str:
    """One row: each cell padded to its column's width, `align` "<" or ">" per column."""
    align = align or default_align(len(cells))
    padded = (f"{c:{a}{w}}" for c, w, a in zip(cells, widths, align, strict=True))
    return (" " * gap).join(padded).rstrip()


def widths_of(rows: Iterable[Sequence[str]]) -> list[int]:
    """The width of each column: its widest cell."""
    return [max(len(c) for c in column) for column in zip(*rows, strict=True)]


def table(
    header: Sequence[str],
    rows: Iterable[Sequence[str]],
    align: str | None = None,
    rule: bool = False,
    sections: Iterable[str | None] | None = None,
) -> str:
    """A header line (and a line of dashes under it if `rule`), then a line per row.

    `sections`, one per row, inserts a "[section]" line wherever the section changes.
    """
    rows = [list(r) for r in rows]
    widths = widths_of([header, *rows])
    out = [line(header, widths, align)]
    if rule:
        out.append(line(["-" * w for w in widths], widths, "<" * len(widths)))
    current = None
    for row, section in zip(rows, sections or [None] * len(rows), strict=True):
        if section is not None and section != current:
            current = section
            out.append(f"[{section}]")
        out.append(line(row, widths, align))
    return "\n".join(out)


def epoch_cell(name: str, value: object, digits: int = 6) -> str:
    """One value of an epoch table (the progress's lines, a History) as text: the epoch number,
    seconds, or a figure to `digits` places; "-" for one not measured (validation skipped, or a
    stage cancelled)."""
    if not isinstance(value, float):
        return str(value)
    if math.isnan(value):
        return "-"
    return f"{value:.2f}s" if name == "time" else f"{value:.{digits}f}"
