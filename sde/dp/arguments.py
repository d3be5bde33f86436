"""Checks of ``sql_dp`` arguments: each bad value is refused with a rule naming the argument.

Python lets ``True`` stand for 1, ``float("inf")`` pass ``> 0`` and a list pass where a
number is expected; each of those would reach OpenDP or the ledger as a raw ``TypeError``,
``OverflowError`` or, worse, be charged as if meant (``epsilon=True`` as 1.0). Everything is
checked here, before any analysis, and refused as ``dp.<argument>``: an
:class:`~sde.errors.InvalidInput` (bad input, not a query DP cannot answer).

>>> check_number("epsilon", True, low=0.0)
Traceback (most recent call last):
...
sde.errors.InvalidInput: epsilon must be a number, not True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from numbers import Real
from typing import Any

from sde.errors import InvalidInput


def refuse(rule: str, message: str) -> InvalidInput:
    """An argument error ``dp.<rule>``."""
    return InvalidInput(f"dp.{rule}", message)


#: Largest |bound| / resolution: grid values stay exact integers in a double and a BIGINT.
MAX_GRID = 2**52
#: Largest contribution caps a query may ask for.
MAX_ROWS_PER_PERSON = 100_000
MAX_GROUPS_PER_PERSON = 10_000
#: Most values in one public key set.
MAX_KEYS = 100_000


def check_number(
    name: str, value: Any, *, low: float, high: float = math.inf, open_low: bool = True
) -> float:
    """``value`` as a finite float within (low, high) (``open_low=False``: [low, high))."""
    rule = name.replace("_", "-")
    if isinstance(value, bool) or not isinstance(value, Real):
        raise refuse(rule, f"{name} must be a number, not {value!r}"[:200])
    v = float(value)
    ok = math.isfinite(v) and (v > low if open_low else v >= low) and v < high
    if not ok:
        span = f"{'(' if open_low else '['}{low:g}, {high:g})"
        raise refuse(rule, f"{name} must be a finite number in {span}, not {v!r}")
    return v


def check_count(name: str, value: Any, limit: int) -> int | None:
    """None, or an int (not a bool) in [1, limit]."""
    if value is None:
        return None
    rule = name.replace("_", "-")
    if isinstance(value, bool) or not isinstance(value, int):
        raise refuse(rule, f"{name} must be a whole number, not {value!r}"[:200])
    if not 1 <= value <= limit:
        raise refuse(rule, f"{name} must lie between 1 and {limit}, not {value}")
    return value


def check_bounds(bounds: Any) -> None:
    """``{name: (lower, upper[, resolution])}`` with finite numbers and a usable grid."""
    if bounds is None:
        return
    if not isinstance(bounds, Mapping):
        raise refuse("bounds", "bounds must be a mapping {column: (lower, upper[, resolution])}")
    for key, spec in bounds.items():
        if (
            not isinstance(key, str)
            or isinstance(spec, str | bytes)
            or not isinstance(spec, Sequence)
        ):
            raise refuse("bounds", f"bounds[{key!r}] must be (lower, upper[, resolution])")
        if len(spec) not in (2, 3):
            raise refuse("bounds", f"bounds[{key!r}] must be (lower, upper[, resolution])")
        lo = check_number("bounds", spec[0], low=-math.inf)
        hi = check_number("bounds", spec[1], low=-math.inf)
        if not lo < hi:
            raise refuse("bounds", f"bounds[{key!r}]: lower must be below upper")
        if len(spec) == 3:
            res = check_number("bounds", spec[2], low=0.0)
            check_grid(lo, hi, res, rule="bounds")


def check_grid(lower: float, upper: float, resolution: float, *, rule: str) -> None:
    """Refuse a grid whose values would not be exact integers (too fine for the range)."""
    if max(abs(lower), abs(upper)) / resolution > MAX_GRID:
        raise refuse(
            rule,
            f"bounds [{lower:g}, {upper:g}] at resolution {resolution:g} give more than 2^52 "
            "grid steps; choose a coarser resolution or narrower bounds",
        )


def check_keys(keys: Any) -> None:
    """``{name: [key, ...]}``: lists of plain values (numbers, text, booleans, None)."""
    if keys is None:
        return
    if not isinstance(keys, Mapping):
        raise refuse("keys", "keys must be a mapping {column: [key, ...]}")
    for name, values in keys.items():
        if not isinstance(name, str) or isinstance(values, str | bytes | Mapping):
            raise refuse("keys", f"keys[{name!r}] must be a list of key values")
        if not isinstance(values, Sequence | set | frozenset) or len(values) > MAX_KEYS:
            raise refuse("keys", f"keys[{name!r}] must be a list of at most {MAX_KEYS} values")
        for v in values:
            plain = v is None or isinstance(v, str | bool | int)
            if not plain and not (isinstance(v, float) and math.isfinite(v)):
                raise refuse("keys", f"keys[{name!r}] holds {v!r}: use numbers or text"[:200])


def check_accuracy(accuracy: Any) -> None:
    if accuracy is None:
        return
    if isinstance(accuracy, Mapping):
        for name, v in accuracy.items():
            if not isinstance(name, str):
                raise refuse("accuracy", "accuracy must map output column names to half-widths")
            check_number("accuracy", v, low=0.0)
        return
    check_number("accuracy", accuracy, low=0.0)


def check_all(
    *,
    epsilon: Any,
    delta: Any,
    accuracy: Any,
    alpha: Any,
    bounds: Any,
    keys: Any,
    rows: Any,
    groups: Any,
    noise: Any,
) -> None:
    """Every argument of ``sql_dp``/``quote``; nothing is read or spent before this passes."""
    check_number("alpha", alpha, low=0.0, high=1.0)
    if epsilon is not None:
        check_number("epsilon", epsilon, low=0.0)
    if delta is not None:
        check_number("delta", delta, low=0.0, high=1.0, open_low=False)
    check_accuracy(accuracy)
    check_bounds(bounds)
    check_keys(keys)
    check_count("max_rows_per_person", rows, MAX_ROWS_PER_PERSON)
    check_count("max_groups_per_person", groups, MAX_GROUPS_PER_PERSON)
    if not isinstance(noise, str) or noise not in ("laplace", "gaussian"):
        raise refuse("noise", f"noise must be 'laplace' or 'gaussian', not {noise!r}"[:200])
