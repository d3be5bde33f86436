"""Static types with value ranges, for deciding from SQL text alone that nothing can fail.

A :class:`T` is a family (``int``, ``float``, ``text``, ``date``, ``timestamp``, ``bool``,
``null``, ``any``) and, for numbers, a closed interval ``[lo, hi]`` that holds every value
the expression can take on any data. NaN orders above every number on DuckDB, PostgreSQL
and Spark (so ``LEAST(x, 250)`` maps NaN to 250); intervals treat it as ``+inf``. A float
with a finite interval is therefore finite and not NaN.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from datetime import date, datetime

from sqlglot import exp

from sde.omop.cdm import CDM
from sde.pseudonym import NAMESPACES

INT4 = (-(2.0**31), 2.0**31 - 1)
#: Pseudonymised identifiers: 63-bit non-negative BIGINTs.
ID = (0.0, 2.0**63 - 1)
#: The largest magnitude an integer expression may statically reach. Not 2^63 - 1: as a
#: float that rounds to 2^63, which overflows BIGINT, so a range check against it would pass
#: the one value that fails. 2^62 is exact and leaves room for one more addition.
BIGINT_MAX = 2.0**62
NUMERIC = {"int", "float"}
#: Longest text an expression may statically produce (concatenations are refused beyond):
#: text that grows only on one person's rows is a timeout or a memory kill, a bit about
#: that person that no epsilon covers (and a way to stop the process).
MAX_CHARS = 10_000.0
#: Longest text of a CDM ``text`` column (no declared length): a stated assumption.
TEXT_COLUMN_CHARS = 2.0**16
#: Longest text of a number, date, timestamp or boolean cast to TEXT on any engine.
SCALAR_CHARS = 64.0


@dataclass(frozen=True)
class T:
    family: str
    lo: float = -math.inf
    hi: float = math.inf
    #: The text of a string literal (checked statically where an engine would cast it).
    literal: str | None = None
    #: For text: the most characters it can hold on any data.
    chars: float = math.inf

    @property
    def numeric(self) -> bool:
        return self.family in NUMERIC

    @property
    def finite(self) -> bool:
        return math.isfinite(self.lo) and math.isfinite(self.hi)

    @property
    def mag(self) -> float:
        return max(abs(self.lo), abs(self.hi))

    def within(self, lo: float, hi: float) -> bool:
        return lo <= self.lo and self.hi <= hi

    def span(self, lo: float, hi: float) -> T:
        return replace(self, lo=lo, hi=hi, literal=None)


ANY = T("any")
NULL = T("null")
BOOL = T("bool")
TEXT = T("text")
FLOAT = T("float")


def literal(node: exp.Literal) -> T:
    if node.is_string:
        return T("text", literal=str(node.this), chars=float(len(str(node.this))))
    v = float(node.this)
    if re.fullmatch(r"[+-]?\d+", str(node.this)):
        # An integer literal is a BIGINT to the engine however large; exact range checks
        # (against BIGINT_MAX) then refuse arithmetic that could overflow.
        return T("int", v, v)
    return T("float", v, v)


def cdm_column(table: str, name: str) -> T | None:
    """The type of a column of an OMOP table, or None if the table has no such column."""
    if not CDM.has_table(table) or not CDM.table(table).has_column(name):
        return None
    if name in NAMESPACES:
        return T("int", *ID)
    base = CDM.table(table).column(name).base_type
    if base == "integer":
        return T("int", *INT4)
    if base == "numeric":
        return FLOAT
    if base in {"date", "timestamp"}:
        return T(base)
    declared = re.fullmatch(r"varchar\((\d+)\)", CDM.table(table).column(name).type)
    return T("text", chars=float(declared.group(1)) if declared else TEXT_COLUMN_CHARS)


def unify(a: T, b: T) -> T | None:
    """The type of a value that is either ``a`` or ``b`` with no cast that can fail."""
    if a.family == "null":
        return b
    if b.family == "null":
        return a
    if a.numeric and b.numeric:
        fam = "int" if a.family == b.family == "int" else "float"
        return T(fam, min(a.lo, b.lo), max(a.hi, b.hi))
    if a.family == b.family and a.family != "any":
        return T(a.family, chars=max(a.chars, b.chars))
    return None


def comparable(a: T, b: T) -> bool:
    """Whether ``a`` and ``b`` compare without a cast that can fail on some data."""
    if "null" in (a.family, b.family) or unify(a, b) is not None:
        return True
    return any(x.literal is not None and literal_fits(x.literal, y) for x, y in ((a, b), (b, a)))


def literal_fits(text: str, target: T) -> bool:
    """Whether a string literal casts to ``target``'s family on every engine."""
    s = text.strip()
    try:
        if target.family == "int":
            return re.fullmatch(r"[+-]?\d{1,18}", s) is not None
        if target.family == "float":
            return re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d{1,3})?", s) is not None and (
                math.isfinite(float(s))
            )
        if target.family == "date":
            return re.fullmatch(r"\d{4}-\d{2}-\d{2}", s) is not None and bool(date.fromisoformat(s))
        if target.family == "timestamp":
            ok = re.fullmatch(r"\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}:\d{2})?", s) is not None
            return ok and bool(datetime.fromisoformat(s))
    except ValueError:
        return False
    return False
