"""JSON both ways: the one conversion to JSON-ready values (config.json, results.json, every
--json output), and the one strict reader (config files and request bodies).

Tensors and NumPy values become lists and numbers, tuples become lists, paths become strings,
and NaN or infinite floats become null, which JSON has (it has no NaN).
"""

import json
import math
import re
from pathlib import PurePath
from typing import Any, NoReturn

from .errors import DigitlearnError


def jsonable(value: object) -> object:
    """`value` with everything JSON cannot hold turned into something it can."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    if hasattr(value, "tolist"):  # tensors, NumPy arrays and scalars, without importing either
        return jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class JSONError(DigitlearnError):
    """Bytes that are not strict JSON within the reader's limits."""


# a JSON string, or an unclosed one: what lies inside strings is no nesting and no number
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NUMBER = re.compile(rb"-?[0-9][0-9.eE+\-]*")


def read_json(data: bytes, max_depth: int = 32, max_number_chars: int = 40, constants: bool = False) -> Any:
    """`data` as strict JSON, the one reader for config files and request bodies.

    Refused with a JSONError, whose message says why: text that is not UTF-8, NaN and Infinity
    (not JSON, and NaN passes every range check), numbers too large for a float, a key twice in
    one object (which one counts would depend on the parser), and, before parsing, nesting deeper
    than `max_depth` (Python's parser recurses on it) or numbers longer than `max_number_chars`
    (int() of thousands of digits is slow). The pre-scan runs without recursion, in NumPy.
    `constants` lets NaN and Infinity through, for files of our own that hold them (a checkpoint's
    history: an epoch not validated).
    """
    import numpy as np

    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise JSONError("not valid JSON: it is not UTF-8 text") from None
    # valid UTF-8: a byte that reads as " [ { ] } \ or a digit is that character, never part of another
    outside = _STRING.sub(b"", data)
    steps = np.zeros(256, np.int8)
    steps[list(b"[{")], steps[list(b"]}")] = 1, -1
    depth = int(np.cumsum(steps[np.frombuffer(outside, np.uint8)], dtype=np.int32).max(initial=0))
    if depth > max_depth:
        raise JSONError(f"nested {depth:,} levels deep (at most {max_depth})")
    longest = max((m.group(0) for m in _NUMBER.finditer(outside)), key=len, default=b"")
    if len(longest) > max_number_chars:
        raise JSONError(f"a number of {len(longest):,} characters (at most {max_number_chars})")
    try:
        return json.loads(
            text,
            parse_float=float if constants else _finite_float,
            parse_constant=float if constants else _no_constants,
            object_pairs_hook=_unique_keys,
        )
    except ValueError as e:  # also JSONDecodeError
        raise JSONError(f"not valid JSON ({e})") from None


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # json reads 1e999 as infinity
        raise ValueError(f"{text} is too large for a number")
    return value


def _no_constants(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    seen: dict = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"the key {key!r} appears twice in one object")
        seen[key] = value
    return seen
