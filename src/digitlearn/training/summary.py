"""`learn.summary()`: every layer, the shape of what it outputs and its parameter count (as fastai's
and Keras's summaries show them), found by running one batch through the model with hooks."""

import html

import torch
from torch import nn

from ..tables import table


class Summary:
    """Rows of (layer, output shape, parameters, trainable), and the totals; a table in text or HTML."""

    def __init__(self, name: str, input_shape: tuple[int, ...], rows: list[tuple[str, str, int, bool]]):
        self.name, self.input_shape, self.rows = name, input_shape, rows

    @property
    def total(self) -> int:
        return sum(n for _, _, n, _ in self.rows)

    @property
    def trainable(self) -> int:
        return sum(n for _, _, n, t in self.rows if t)

    def _cells(self) -> tuple[list[str], list[list[str]]]:
        header = ["layer", "output shape", "parameters", "trainable"]
        return header, [[layer, shape, f"{n:,}", "yes" if t else ("-" if not n else "no")]
                        for layer, shape, n, t in self.rows]  # fmt: skip

    def _footer(self) -> str:
        shape = " x ".join(map(str, self.input_shape))
        return f"{self.total:,} parameters ({self.trainable:,} trainable); input {shape}"

    def __repr__(self) -> str:
        return f"{self.name}\n{table(*self._cells())}\n{self._footer()}"

    def _repr_html_(self) -> str:
        header, rows = self._cells()
        head = "".join(f"<th>{h}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
        return (
            f"<p><b>{html.escape(self.name)}</b></p><table><tr>{head}</tr>{body}</table>"
            f"<p>{html.escape(self._footer())}</p>"
        )


def _shape(out: object) -> str:
    if isinstance(out, torch.Tensor):
        return " x ".join(map(str, out.shape))
    if isinstance(out, tuple | list):
        return ", ".join(_shape(o) for o in out)
    return type(out).__name__


def summarize(model: nn.Module, x: torch.Tensor) -> Summary:
    """Run the batch `x` through `model` in eval mode and no grad; each leaf module (one with no
    submodules) is a row, in the order it ran."""
    rows: list[tuple[str, str, int, bool]] = []
    names = {m: n for n, m in model.named_modules()}

    def record(module: nn.Module, _inputs: object, out: object) -> None:
        params = list(module.parameters(recurse=False))
        n = sum(p.numel() for p in params)
        label = f"{names[module]}: {type(module).__name__}" if names[module] else type(module).__name__
        rows.append((label, _shape(out), n, any(p.requires_grad for p in params)))

    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    hooks = [m.register_forward_hook(record) for m in leaves]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    # parameters a module holds besides its submodules' (none in digitlearn's models) still count
    other = sum(p.numel() for p in model.parameters()) - sum(n for _, _, n, _ in rows)
    if other:
        rows.append(("(parameters outside the layers above)", "", other, True))
    return Summary(type(model).__name__, tuple(x.shape), rows)
