"""What `fit` returns: the epochs it trained, as Keras's `History` holds them, shown as a table.

    >>> history = learn.fit(3, 0.1)
    >>> history.history["valid_loss"]      # one value per epoch, as in Keras
    >>> history.epoch                      # [0, 1, 2]

In a notebook it renders as the epoch table (HTML); printed, as the same table in text.
"""

import html

from ..tables import epoch_cell, table


class History:
    """The rows of one fit: `history` maps each column (train_loss, valid_loss, the metrics, time)
    to its list of per-epoch values; `epoch` lists the epochs; `rows` are the rows as recorded."""

    def __init__(self, rows: list[dict]) -> None:
        self.rows = [dict(r) for r in rows]
        self.epoch = [r["epoch"] for r in self.rows]
        names = [k for k in (self.rows[0] if self.rows else {}) if k != "epoch"]
        self.history = {k: [r[k] for r in self.rows] for k in names}

    def __len__(self) -> int:
        return len(self.rows)

    def _cells(self) -> tuple[list[str], list[list[str]]]:
        header = ["epoch", *self.history]
        return header, [[epoch_cell(k, r[k], digits=4) for k in header] for r in self.rows]

    def __repr__(self) -> str:
        if not self.rows:
            return "History(no epochs)"
        return table(*self._cells())

    def _repr_html_(self) -> str:
        header, rows = self._cells()
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
        return f'<table class="digitlearn-history"><tr>{head}</tr>{body}</table>'
