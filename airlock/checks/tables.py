"""One table: column roles, identifiers, NHS numbers, small counts, zeros, values."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from airlock.checks.base import MAX_LISTED, Flag
from airlock.checks.identifiers import (
    NHS_SHAPE,
    header_cells,
    is_identifier_name,
    is_key_name,
    nhs_matches,
    normalise,
    snake,
    text_flags,
    valid_integers,
    valid_strings,
)
from sde.sdc.config import SDCConfig


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: Name tokens (snake case, split on ``_``) saying what a numeric column holds. A
#: statistic token wins over a count token, which wins over a label token.
STATISTIC_TOKENS = _words(
    "mean avg average median sd std stdev se sem var variance pct percent percentage "
    "proportion prop share rate ratio or hr rr ci lci uci lower upper p pvalue estimate "
    "est coef coefficient beta min max iqr q1 q3 sum weight weighted prevalence incidence "
    "cost value"
)
COUNT_TOKENS = _words(
    "n count counts cnt freq frequency total totals num number persons people patients "
    "individuals records events cases deaths admissions visits episodes prescriptions "
    "encounters numerator denominator population participants subjects"
)
LABEL_TOKENS = _words(
    "year yr month week day date quarter period age id code concept decile quintile "
    "quartile tertile centile percentile band group category cat level stage grade score "
    "rank index order sex gender ethnicity imd region lsoa msoa postcode site practice "
    "icb ccg icd snomed opcs bnf atc flag indicator bin bucket cohort arm cluster wave "
    "unnamed row"
)


def column_role(name: Any, *, integer: bool) -> str:
    """``count``, ``statistic`` or ``label`` for a numeric column, from its name.

    Named like a statistic (``mean_age``, ``pct``, ``rate``): a statistic; named like
    a count (``n``, ``count``, ``n_patients``, ``deaths``): a count; named like a
    label (``year``, ``age``, ``*_code``, ``*_id``, ``decile``): a label. Otherwise
    whole numbers are counts (a wide crosstab's columns are categories) and other
    numbers statistics. Counts is the cautious guess: an integer label column with
    an unhelpful name is checked as counts; rename it (``ward_code``) or write it as
    text to have it read as a label.

    >>> column_role("n_patients", integer=True), column_role("mean_age", integer=False)
    ('count', 'statistic')
    >>> column_role("year", integer=True), column_role("ward", integer=True)
    ('label', 'count')
    """
    tokens = set(snake(name).split("_")) or {""}
    if tokens & STATISTIC_TOKENS:
        return "statistic"
    if tokens & COUNT_TOKENS:
        return "count"
    if tokens & LABEL_TOKENS or tokens == {""}:
        return "label"
    return "count" if integer else "statistic"


# --------------------------------------------------------------------------- columns

_NUMBER = re.compile(r"^\s*[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?\s*$")
#: Cells a count column may hold instead of a number: redaction and suppression marks.
_MARKER = re.compile(
    r"^\s*(?:\*+|-|–|x|c|\.\.|~|n/?a|redacted|\[redacted\]|suppressed|[<≤]=?\s*\d+)\s*$",
    re.IGNORECASE,
)
_HEADER_ROWS = 3  # extra header rows a CSV written from a MultiIndex carries
#: Rows searched for a header below a title (a header row names a person identifier).
HEADER_SEARCH_ROWS = 10


def numeric(series: pd.Series) -> np.ndarray | None:
    """The column as floats (NaN: missing or a redaction mark), or None if not numbers."""
    if pd.api.types.is_bool_dtype(series.dtype):
        return None
    if pd.api.types.is_numeric_dtype(series.dtype):
        return series.to_numpy(dtype=float, na_value=np.nan)
    if not (pd.api.types.is_string_dtype(series.dtype) or series.dtype == object):
        return None
    text = series.dropna().astype(str)
    sample = text.iloc[:1000]
    numbers = sample.str.replace(",", "", regex=False).str.match(_NUMBER.pattern)
    if sample.empty or numbers.mean() < 0.5:
        return None
    if sample.str.contains(",", regex=False).any():  # thousands separators: "1,234"
        text = series.astype(str)
        grouped = text.str.fullmatch(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?").to_numpy(dtype=bool)
        series = series.mask(grouped, text.str.replace(",", "", regex=False))
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    odd = np.flatnonzero(np.isnan(values) & series.notna().to_numpy())
    odd = odd[odd >= _HEADER_ROWS]
    if len(odd) and not series.iloc[odd].astype(str).str.match(_MARKER.pattern).all():
        return None
    return values


#: One random ten-digit string in eleven passes the modulus-11 check.
CHANCE = 1 / 11
#: The false-alarm rate allowed on a column of random ten-digit codes.
ALPHA = 0.025


def above_chance(valid: int, total: int) -> bool:
    """Whether ``valid`` NHS numbers among ``total`` ten-digit values are more than chance.

    A column is taken to hold NHS numbers when all of its ten-digit values pass the
    check digit (and one does), or when so many pass that random codes would do so at
    most :data:`ALPHA` (2.5%) of the time (the binomial tail with p = 1/11): 3 of 7,
    6 of 20, 16 of 100, 110 of 1,000. So a column of random ten-digit codes is taken
    for NHS numbers at most 2.5% of the time whatever its length (9% for a column of
    one value, 0.8% of two). The limit of any such rule: real numbers diluted with
    enough decoys (invalid check digits) look like chance - 3 real numbers hide among
    5 decoys, 10 among 45, 100 among 805 - unless the column is named like a key
    (``*_id``, ``ref``, ``nhs``...) or sits beside an identifier column: then any one
    valid number blocks.

    >>> above_chance(3, 7), above_chance(3, 20), above_chance(1, 1), above_chance(0, 5)
    (True, False, True, False)
    >>> above_chance(5, 20), above_chance(6, 20), above_chance(15, 100), above_chance(16, 100)
    (False, True, False, True)
    """
    if valid < 1:
        return False
    if valid >= total:
        return True
    mean = total * CHANCE
    spread = math.sqrt(total * CHANCE * (1 - CHANCE))
    if valid <= mean:
        return False
    if valid > mean + 10 * spread + 10:
        return True
    log_p, log_q = math.log(CHANCE), math.log1p(-CHANCE)
    top = math.lgamma(total + 1)
    below = sum(
        math.exp(
            top - math.lgamma(k + 1) - math.lgamma(total - k + 1) + k * log_p + (total - k) * log_q
        )
        for k in range(valid)
    )
    return 1 - below <= ALPHA


#: Whole-cell shapes: a ten-digit value with at most a short prefix or suffix glued on.
_SHORT_REST = 6
_ALONE = rf"\s*[A-Za-z_#+-]{{0,6}}{NHS_SHAPE}[A-Za-z_#]{{0,6}}\s*"


def nhs_column(series: pd.Series, values: np.ndarray | None, *, key: bool) -> str | None:
    """Why a column holds NHS numbers, or None (``key``: named like a key, or beside one)."""
    if values is not None and pd.api.types.is_numeric_dtype(series.dtype):
        return nhs_integers(values, key=key)
    if not (pd.api.types.is_string_dtype(series.dtype) or series.dtype == object):
        return None
    whole, valid_whole, in_text = _nhs_cells(series.dropna().astype(str))
    if valid_whole and (key or above_chance(valid_whole, whole)):
        return _how_many(valid_whole)
    return "a text value holds an NHS number" if in_text else None


def _nhs_cells(text: pd.Series) -> tuple[int, int, bool]:
    """(whole-cell ten-digit values, how many are valid, whether a longer text holds a
    valid one) among a column's texts (normalised first where they are not ASCII)."""
    if text.empty:
        return 0, 0, False
    if not text.str.isascii().all():
        text = text.str.normalize("NFKC")
        odd = ~text.str.isascii().to_numpy(dtype=bool)
        if odd.any():  # other Unicode digits, invisible characters, dashes
            text = pd.Series([normalise(t) for t in text.tolist()], index=text.index)
    candidates = text[text.str.contains(NHS_SHAPE, regex=True).to_numpy(dtype=bool)]
    # a ten-digit value alone in its cell, at most a short word or sign glued on: at once
    lone = candidates.str.fullmatch(_ALONE, case=True).to_numpy(dtype=bool)
    digits = candidates[lone].str.replace(r"[^0-9]", "", regex=True).tolist()
    owners: list[tuple[int, bool]] = [(i, True) for i in range(len(digits))]
    for i, cell in enumerate(candidates[~lone].tolist(), len(digits)):
        found = list(nhs_matches(cell))
        if not found:
            continue
        first = found[0]
        rest = len((cell[: first.start()] + cell[first.end() :]).strip())
        alone = len(found) == 1 and rest <= _SHORT_REST
        for match in found:
            digits.append(re.sub(r"[^0-9]", "", match.group()))
            owners.append((i, alone))
    valid = valid_strings(digits)
    whole_cells = {i for i, alone in owners if alone}
    valid_cells = {i for (i, alone), ok in zip(owners, valid, strict=True) if ok and alone}
    in_text = any(ok and not alone for (_, alone), ok in zip(owners, valid, strict=True))
    whole, valid_whole = len(whole_cells), len(valid_cells)
    return whole, valid_whole, in_text


def nhs_integers(values: np.ndarray, *, key: bool = False) -> str | None:
    finite = values[np.isfinite(values)]
    shaped, valid = valid_integers(finite[finite == np.floor(finite)])
    count = int(valid.sum())
    if count and (key or above_chance(count, int(shaped.sum()))):
        return _how_many(count)
    return None


def _how_many(valid: int) -> str:
    return "1 value is an NHS number" if valid == 1 else f"{valid} values are NHS numbers"


# --------------------------------------------------------------------------- one table


@dataclass
class Table:
    """What the rules found in one table."""

    uid: str
    frame: pd.DataFrame
    roles: dict[str, str]
    counts: dict[int, np.ndarray]
    flags: list[Flag]
    notes: list[str]


def identifier_flags(
    uid: str, column: Any, j: int, series: pd.Series, values: np.ndarray | None, *, key: bool
) -> list[Flag]:
    """The ``identifier`` and ``nhs-number`` findings on one column (they block)."""
    label = str(column)
    found = []
    if is_identifier_name(column):
        found.append(("identifier", f"{uid}: column {label!r} is named like a person identifier"))
    if text_flags(label):
        found.append(("nhs-number", f"{uid}: a column name holds an NHS number"))
    why = nhs_column(series, values, key=key or is_key_name(column))
    if why:
        found.append(("nhs-number", f"{uid}: column {label!r} holds NHS numbers ({why})"))
    return [Flag(rule, reason, column=column, col_index=j) for rule, reason in found]


def header_flags(uid: str, frame: pd.DataFrame) -> list[Flag]:
    """Header rows below a title: in the first rows, a row with no number in it that
    names a person identifier (``person_id`` under "Cohort extract, March 2025")."""
    flags = []
    head = frame.iloc[:HEADER_SEARCH_ROWS]
    for i, row in enumerate(head.itertuples(index=False, name=None)):
        for cell in header_cells(list(row)):
            flags.append(
                Flag(
                    "identifier",
                    f"{uid}: row {i} reads like a header naming {cell!r}, named like a "
                    "person identifier (a header below a title?)",
                    row=i,
                )
            )
    return flags


def _role(label: str, values: np.ndarray | None) -> str:
    if values is None:
        return "label"
    finite = values[np.isfinite(values)]
    integer = bool(len(finite)) and bool(np.all(finite == np.floor(finite)))
    role = column_role(label, integer=integer)
    return "label" if role == "count" and _is_row_number(label, finite) else role


def examine(uid: str, frame: pd.DataFrame, rules: SDCConfig) -> Table:
    """Identifiers, roles, small counts, zeros and unverifiable values of one table."""
    flags: list[Flag] = header_flags(uid, frame)
    roles: dict[str, str] = {}
    counts: dict[int, np.ndarray] = {}
    beside_identifier = any(is_identifier_name(c) for c in frame.columns) or bool(flags)
    for j, column in enumerate(frame.columns):
        series = frame.iloc[:, j]
        if isinstance(series.dtype, pd.CategoricalDtype):  # parquet from pandas categories
            series = pd.Series(np.asarray(series, dtype=object), name=series.name)
        label = str(column)
        values = numeric(series)
        found = identifier_flags(uid, column, j, series, values, key=beside_identifier)
        flags += found
        roles[label] = "identifier" if found else _role(label, values)
        if roles[label] == "count" and values is not None:
            counts[j] = values
            flags += _count_flags(uid, values, column, j, rules)
        elif roles[label] == "statistic":
            flags.append(
                Flag(
                    "dominance",
                    f"{uid}: column {label!r} holds values that need the "
                    "records to check (dominance); a checker must review them",
                    column=column,
                    col_index=j,
                )
            )
    return Table(uid, frame, roles, counts, flags, _notes(frame, roles, counts, rules))


def _notes(
    frame: pd.DataFrame, roles: Mapping[str, str], counts: Mapping[int, Any], rules: SDCConfig
) -> list[str]:
    notes = []
    if frame.empty:
        notes.append("the table has no rows")
    elif not counts and "statistic" not in roles.values():
        notes.append("no count or value columns were recognised: a checker must review it")
    if counts:
        notes.append(
            f"counts were checked against the threshold {rules.threshold}"
            + (" and for zeros" if rules.zeros_are_disclosive else "")
        )
    notes.append(
        f"dominance (nk-dominance with n={rules.nk_n}, k={rules.nk_k}; p-ratio "
        f"{rules.p_ratio}) needs record-level data and cannot be checked on a finished table"
    )
    return notes


def _is_row_number(label: str, finite: np.ndarray) -> bool:
    """An unnamed column holding 0..n-1 or 1..n: the row index a writer left in."""
    if snake(label) not in ("", "unnamed_0") or not len(finite):
        return False
    start = finite[0]
    return bool(start in (0, 1) and np.array_equal(finite, np.arange(start, start + len(finite))))


def _count_flags(uid: str, values: np.ndarray, column: Any, j: int, rules: SDCConfig) -> list[Flag]:
    flags = []
    small = np.flatnonzero((values > 0) & (values < rules.threshold))
    for i in small[:MAX_LISTED]:
        flags.append(
            Flag(
                "threshold",
                f"{uid}: row {i}, column {column!s}: a count below {rules.threshold}",
                row=int(i),
                column=column,
                col_index=j,
            )
        )
    if len(small) > MAX_LISTED:
        flags.append(
            Flag(
                "threshold",
                f"{uid}: column {column!s}: {len(small)} counts below {rules.threshold} in all",
                column=column,
                col_index=j,
            )
        )
    if rules.zeros_are_disclosive:
        zero = np.flatnonzero(values == 0)
        for i in zero[:MAX_LISTED]:
            flags.append(
                Flag(
                    "zeros",
                    f"{uid}: row {i}, column {column!s}: a zero count",
                    row=int(i),
                    column=column,
                    col_index=j,
                )
            )
    return flags
