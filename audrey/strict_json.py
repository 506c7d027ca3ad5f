"""The one JSON writer for output: strict JSON, which has no NaN or Infinity.

jq, JavaScript and strict parsers reject the `NaN` Python would write, so a number that is not
finite (a diverged run's loss, an undefined rate) is written as null, "no value", and the rest of
the output stays usable; allow_nan=False guards that nothing slips through. The CLI's `--json`
output and `audrey listen --json`'s events both go through `json_text`.
"""

from __future__ import annotations

import json
import math


def json_text(obj, indent: int | None = None) -> str:
    """`obj` as strict JSON (non-finite numbers as null; numpy and torch values as lists/numbers)."""
    return json.dumps(finite_or_null(obj), indent=indent, default=str, allow_nan=False)


def finite_or_null(obj):
    if isinstance(obj, dict):
        return {k: finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_null(v) for v in obj]
    if hasattr(obj, "tolist") and hasattr(obj, "dtype"):  # numpy scalars and arrays, tensors
        return finite_or_null(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
