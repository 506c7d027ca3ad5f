"""Typed, bounded fields for the settings Audrey reads back from files.

A config dataclass declares each field's type (its annotation) and range (`bounded(...)`) once;
`from_fields` turns untrusted parsed JSON into an instance, or raises one AudreyError that names
the file, the field, the value found and the values allowed. A class may also define
`inconsistency(self) -> str | None` for rules between fields (win_length <= n_fft, ...).

Ranges are generous for real use and small enough that nothing built from a config in range can
exhaust memory or divide by zero.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from functools import lru_cache

from audrey.errors import AudreyError

SHOWN_CHARS = 40  # a found value is quoted up to this many characters


def bounded(default, lo: float, hi: float, items: tuple[int, int] = (1, 16)):
    """A dataclass field whose value (each element, for a tuple field) must lie in [lo, hi];
    `items` bounds a tuple field's length. For str fields lo/hi bound the length. A float field is
    always finite unless hi is math.inf (then +inf is allowed: "no best loss yet") or lo is -math.inf
    (then -inf is: a threshold that lets everything through); NaN never is."""
    return dataclasses.field(default=default, metadata={"bounds": (lo, hi), "items": items})


def shown(value) -> str:
    """A found value as JSON would write it (null, "x", NaN), cut short."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


def parse_json(text, where: str, remedy: str = ""):
    """Parsed JSON from a metadata string (None, i.e. an absent key, is "missing"); malformed, truncated or
    absurdly nested JSON is one AudreyError naming `where`, ending with `remedy`."""
    tail = f"; {remedy}" if remedy else ""
    if not isinstance(text, str):
        raise AudreyError(f"{where} is missing{tail}")
    try:
        return json.loads(text)
    except RecursionError:
        raise AudreyError(f"{where} is not valid JSON (nested too deeply){tail}") from None
    except ValueError as exc:  # JSONDecodeError, and ints too long to convert
        raise AudreyError(f"{where} is not valid JSON ({str(exc).splitlines()[0]}){tail}") from None


@lru_cache(maxsize=None)
def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _expected(kind, lo, hi) -> str:
    if kind is bool:
        return "true or false"
    if kind is str:
        return f"a string of {lo} to {hi} characters"
    word = "an integer" if kind is int else "a number"
    top = "any size" if hi == math.inf else f"{hi:g}"
    return f"{word} from {lo:g} to {top}"


class FieldError(ValueError):
    """One field's problem, before it is given the file's name and the remedy."""


def _scalar(name: str, kind, value, lo, hi):
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi
    elif kind is float:
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
              and not math.isnan(value) and (math.isfinite(value) or value in (lo, hi)) and lo <= value <= hi)
    elif kind is str:
        ok = isinstance(value, str) and lo <= len(value) <= hi
    else:  # a schema mistake, not a file's
        raise TypeError(f"schema field {name}: unsupported type {kind!r}")
    if not ok:
        raise FieldError(f"field {name} is {shown(value)}; expected {_expected(kind, lo, hi)}")
    return kind(value)


def check_field(f: dataclasses.Field, kind, value):
    """`value` checked against one field's type and bounds (a list becomes the tuple the field
    wants); FieldError says what is wrong."""
    lo, hi = f.metadata.get("bounds", (-math.inf, math.inf))
    if typing.get_origin(kind) is tuple:
        elem = typing.get_args(kind)[0]
        least, most = f.metadata.get("items", (1, 16))
        if not isinstance(value, (list, tuple)) or not least <= len(value) <= most:
            raise FieldError(f"field {f.name} is {shown(value)}; expected a list of {least} to {most} "
                             f"items, each {_expected(elem, lo, hi)}")
        return tuple(_scalar(f"{f.name}[{i}]", elem, v, lo, hi) for i, v in enumerate(value))
    return _scalar(f.name, kind, value, lo, hi)


def from_fields(cls, data, where: str, remedy: str = ""):
    """An instance of the config dataclass `cls` from untrusted parsed JSON `data`.

    Every problem is one AudreyError: `where` (the source: "models/x.safetensors: frontend"), what
    is wrong, then `remedy`. Fields absent from `data` keep their defaults (files written before
    the field existed); fields this audrey does not know are refused (a newer file format)."""
    tail = f"; {remedy}" if remedy else ""
    if not isinstance(data, dict):
        raise AudreyError(f"{where} is {shown(data)}, not a JSON object{tail}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise AudreyError(f"{where} has unknown fields {unknown}; upgrade audrey")
    hints = _hints(cls)
    try:
        obj = cls(**{name: check_field(known[name], hints[name], value) for name, value in data.items()})
        problem = obj.inconsistency() if hasattr(obj, "inconsistency") else None
    except FieldError as exc:
        raise AudreyError(f"{where} {exc}{tail}") from None
    if problem:
        raise AudreyError(f"{where}: {problem}{tail}")
    return obj


def unlike(value, template, name: str = "") -> str | None:
    """Where untrusted JSON `value` differs in kind from a known-good `template` of the same thing
    (an optimizer's param_groups, a scheduler's state), as "field X is Y; expected Z"; None when
    it is alike: numbers (finite) where the template has numbers, booleans, strings, lists of the
    same length, objects whose shared keys are alike. A None in the template accepts any scalar
    (torch's "not set" options). Keys only one side has are left to the consumer's own defaults."""
    label = name or "value"
    if template is None:
        ok = value is None or isinstance(value, (bool, int, float, str))
        return None if ok and not _non_finite(value) else f"field {label} is {shown(value)}; expected a plain value"
    if isinstance(template, bool):
        return None if isinstance(value, bool) else f"field {label} is {shown(value)}; expected true or false"
    if isinstance(template, (int, float)):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and not _non_finite(value)
        return None if ok else f"field {label} is {shown(value)}; expected a finite number"
    if isinstance(template, str):
        return None if isinstance(value, str) else f"field {label} is {shown(value)}; expected a string"
    if isinstance(template, (list, tuple)):
        if not isinstance(value, list) or len(value) != len(template):
            return f"field {label} is {shown(value)}; expected a list of {len(template)}"
        return next((p for i, (v, t) in enumerate(zip(value, template)) if (p := unlike(v, t, f"{label}[{i}]"))), None)
    if isinstance(template, dict):
        if not isinstance(value, dict):
            return f"field {label} is {shown(value)}; expected a JSON object"
        return next((p for k in template if k in value and (p := unlike(value[k], template[k], f"{name}.{k}" if name else k))), None)
    raise TypeError(f"template of unsupported type {type(template).__name__}")


def _non_finite(value) -> bool:
    return isinstance(value, float) and not math.isfinite(value)
