"""A model's options: the builder arguments a user may set, each with its type and bounds.

One declaration, in the model's registration, is all there is: the recipe setting, the command
line's flag, the check of a config.json someone else wrote, and the loading all read it.

    Option("sizes", 1, MAX_WIDTH, "channels per stage")   # a list of whole numbers
    Option("int", 1, MAX_WIDTH, "hidden units")            # a whole number
    Option("float", 0, 1, "dropout probability")           # a number
"""

from dataclasses import dataclass
from typing import Any, Literal

from .limits import MAX_CLASSES, MAX_LAYERS, MAX_SIZE


@dataclass(frozen=True)
class Option:
    """A builder argument's type (`kind`) and bounds, and what it is for (`help`).

    For "sizes", `count` bounds the list's length and `first_low` raises the bound of its first
    entry. `setting` names the recipe setting and flag where they differ from the argument's name.
    """

    kind: Literal["int", "float", "sizes"]
    low: float
    high: float
    help: str = ""
    count: tuple[int, int] = (1, MAX_LAYERS)
    first_low: int | None = None
    setting: str | None = None

    def describe(self, first: bool = False) -> str:
        """What a value must be, as the end of "... must be <this>"."""
        low = self.first_low if first and self.first_low is not None else self.low
        if self.kind == "float":
            return f"a number from {low:g} to {self.high:g}"
        return f"a whole number from {int(low):,} to {int(self.high):,}"

    def problem(self, value: Any) -> tuple[str, str, Any] | None:
        """None if `value` is allowed, else (where in it, what it must be, the value there):
        ("[1]", "a whole number from 1 to 4,096", 100000) for a list's second entry."""
        if self.kind == "sizes":
            lo, hi = self.count
            if not isinstance(value, list | tuple) or not lo <= len(value) <= hi:
                length = f"{lo}" if lo == hi else f"{lo} to {hi}"
                return "", f"a list of {length} whole numbers", value
            for i, v in enumerate(value):
                if self._bad_number(v, int, self.first_low if i == 0 and self.first_low else self.low):
                    return f"[{i}]", self.describe(first=i == 0), v
            return None
        if self._bad_number(value, int if self.kind == "int" else float, self.low):
            return "", self.describe(), value
        return None

    def _bad_number(self, value: Any, kind: type, low: float) -> bool:
        # type(), not isinstance: true is an int to Python, and 16.0 is not a count of channels
        allowed = (int,) if kind is int else (int, float)
        return type(value) not in allowed or not low <= value <= self.high  # NaN fails too

    def parse(self, text: str) -> Any:
        """A command-line value: "16,32" for sizes, "0.1" for a float. ValueError says what is wrong."""
        try:
            if self.kind == "sizes":
                value: Any = tuple(int(p) for p in text.split(","))
            else:
                value = int(text) if self.kind == "int" else float(text)
        except ValueError:
            value = text
        found = self.problem(value)
        if found:
            where, what, _ = found
            raise ValueError(
                f"{text!r} is not {what}" if not where else f"{text!r}: entry {where} must be {what}"
            )
        return value


# the arguments every builder may take, set by the data rather than by a user
N_OUT = Option("int", 1, MAX_CLASSES, "outputs: one per class, or one for two classes")
SIZE_ARGS = {
    "n_in": Option("int", 1, MAX_SIZE * MAX_SIZE, "pixels per image (flat models)"),
    "in_size": Option("sizes", 1, MAX_SIZE, "image height and width", count=(2, 2)),
}
