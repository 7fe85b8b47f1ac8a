"""JSON-ready values: the one conversion for config.json, results.json and every --json output.

Tensors and NumPy values become lists and numbers, tuples become lists, paths become strings,
and NaN or infinite floats become null, which JSON has (it has no NaN).
"""

import math
from pathlib import PurePath


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
