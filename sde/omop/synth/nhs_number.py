"""Synthetic NHS numbers in the 999 test range, with valid modulus-11 check digits.

NHS numbers starting 999 are never issued to patients, so one seen outside a
node is recognisably synthetic. The range holds 909,091 valid numbers; larger
populations reuse them (``person_source_value`` is not a key here).

>>> check_digit("999000001")
8
>>> check_digit("999000000") is None      # no valid check digit: never issued
True
>>> is_valid("9990000018") and not is_valid("9990000017")
True
"""

from __future__ import annotations

from functools import cache

import numpy as np

PREFIX = 999
_WEIGHTS = np.arange(10, 1, -1)  # 10, 9, ..., 2 for the first nine digits
#: Multiplier of the permutation from person id to number: odd-looking and coprime
#: with the count of valid numbers, so consecutive persons get unrelated numbers.
_STRIDE = 611_953


def check_digit(first_nine: str) -> int | None:
    """The modulus-11 check digit of nine digits, or None when none is valid."""
    total = sum(int(ch) * w for ch, w in zip(first_nine, range(10, 1, -1), strict=True))
    digit = 11 - total % 11
    if digit == 11:
        return 0
    return None if digit == 10 else digit


def is_valid(number: str) -> bool:
    """True for ten digits whose last is the check digit of the first nine."""
    if len(number) != 10 or not number.isdigit():
        return False
    return check_digit(number[:9]) == int(number[9])


@cache
def _valid_numbers() -> np.ndarray:
    """Every valid ten-digit number starting 999, ascending, as int64."""
    base = PREFIX * 1_000_000 + np.arange(1_000_000, dtype=np.int64)  # 9 digits
    digits = (base[:, None] // 10 ** np.arange(8, -1, -1)) % 10
    check = 11 - (digits @ _WEIGHTS) % 11
    check = np.where(check == 11, 0, check)
    ok = check != 10
    return base[ok] * 10 + check[ok]


def nhs_numbers(person_ids: np.ndarray) -> np.ndarray:
    """A synthetic NHS number (as a ten-character string) for each person id."""
    valid = _valid_numbers()
    if np.gcd(_STRIDE, len(valid)) != 1:  # pragma: no cover - guards the constant
        raise AssertionError("stride must be coprime with the count of valid numbers")
    index = (person_ids.astype(np.int64) * _STRIDE + 7) % len(valid)
    return valid[index].astype("U10")
