"""Automatic disclosure checks on a file submitted to the airlock: bytes in, a verdict out.

:func:`check_file` reads a file as a finished table where it is one (csv, parquet,
xlsx, a JSON table) and applies the rules below, in :data:`RULES` order; other files
get status ``none`` (text-like ones are still scanned for NHS numbers). The report
is ACRO-shaped like :mod:`sde.sdc`'s ``results.json``, one output per table. Nothing
here raises on bad bytes: a file that cannot be read is ``review`` with the reason.

Rules (``fail`` > ``review`` > ``pass``; ``blocking`` forbids submission):

``identifier`` (fail, blocks)
    A column named like a person identifier (:data:`IDENTIFIER_NAME`, after the name
    is put in snake case): ``person_id``, ``patient_id``, ``subject_id``,
    ``participant_id``, ``pseudo_id``, ``nhs_number``/``nhs_no``/``nhsnumber``,
    ``chi_number``, ``mrn``, ``hospital_number``, those with any prefix
    (``provider_person_id``), ``chi`` and ``pseudonym``, and OMOP's ``*_source_value``
    columns (the source system's raw values; ``person_source_value`` is the NHS number).
``nhs-number`` (fail, blocks)
    Ten digits, optionally spaced or hyphenated 3-3-4, whose last digit is the
    modulus-11 check digit of the first nine (:func:`is_nhs_number`). A table column
    is blocked when at least one value is a valid whole-cell number and at least half
    of its ten-digit values are valid (random ten-digit codes pass the check one time
    in eleven), or when a valid number is embedded in a longer text cell or a column
    name. In text-like files (txt, md, html, svg, non-table json) any valid number
    standing alone blocks. Integer columns are checked too (nine-digit values padded
    with a leading zero, as a CSV reader drops it). Reasons never repeat the number.
``threshold`` (fail)
    A count cell with ``0 < value < rules.threshold``. Count columns: see
    :func:`column_role`. A recognised notebook report that rounded the table turns
    these into ``review`` (the rounding is the protection; a checker confirms it).
``zeros`` (review)
    A zero count cell, when ``rules.zeros_are_disclosive``: a checker decides whether
    it is structural. (:mod:`sde.sdc` fails zeros on the records; a finished table
    cannot tell a structural zero from an empty group.)
``dominance`` (review)
    A column of values (means, sums, rates, percentages: non-integer or named like a
    statistic). Dominance (``nk_n``/``nk_k``, ``p_ratio``) needs the records behind
    each cell, so it cannot be checked on a finished table; ACRO's answer is review.
``differencing`` (review)
    Against each earlier released table of the project (``earlier``), cells whose
    groups are the same or nested (:func:`sde.sdc.differencing.find_differences`:
    label columns are dimensions, the count column is one more) and whose counts
    differ by 1 to ``threshold - 1``. Above :data:`MAX_DIFFERENCING_PAIRS` cell pairs
    only identical categories are compared (when neither table repeats them).
``notebook`` (the notebook's own verdict)
    A companion ACRO ``results.json`` (as ``CheckedTable.write()`` writes) whose
    output lists this file's name, or the name in a companion ``checksums`` file
    (``<name>.txt`` holding this file's SHA-256): its status joins ours (it can only
    make the verdict worse, never better), and the report says it was recognised.
``unreadable`` (review)
    The file's type says table but its bytes are not one (or xlsx without openpyxl).

A table with no rows, or with no column recognised as counts or values, is ``review``.

>>> is_nhs_number("999 000 0018"), is_nhs_number("9990000017")
(True, False)
>>> column_role("n_patients", integer=True), column_role("mean_age", integer=False)
('count', 'statistic')
>>> column_role("year", integer=True), column_role("ward", integer=True)
('label', 'count')
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from sde import __version__
from sde.sdc.config import SDCConfig
from sde.sdc.differencing import Cell, In, find_differences
from sde.sdc.report import ACRO_FORMAT_VERSION
from sde.sdc.rules import BY_ID

Status = str  # "pass" | "fail" | "review" | "none"

TABLE_TYPES = frozenset({"csv", "parquet", "xlsx"})
TEXT_TYPES = frozenset({"txt", "md", "html", "svg", "json"})

#: At most this many cells per rule are listed (flags and report); counts stay exact.
MAX_LISTED = 1000
#: Above this many cells the ACRO ``outcome`` lists flagged rows only.
MAX_OUTCOME_CELLS = 10_000
#: Pairwise (nested-group) differencing runs up to this many cell pairs.
MAX_DIFFERENCING_PAIRS = 2_000_000
#: Companion files larger than this are not parsed as reports.
MAX_COMPANION_BYTES = 20_000_000


@dataclass(frozen=True)
class Rule:
    """An airlock check: a stable id, a severity, the nearest ACRO check and why it matters."""

    id: str
    severity: str
    acro_check: str
    explanation: str


RULES: tuple[Rule, ...] = (
    Rule(
        "identifier",
        "fail",
        "IdentifierCheck",
        "the column is named like a person identifier; identifiers never leave",
    ),
    Rule(
        "nhs-number",
        "fail",
        "IdentifierCheck",
        "the values are NHS numbers (ten digits with a valid check digit)",
    ),
    Rule("threshold", "fail", BY_ID["threshold"].acro_check, BY_ID["threshold"].explanation),
    Rule(
        "zeros",
        "review",
        BY_ID["zeros"].acro_check,
        "the count is zero: a checker decides whether it is structural or reveals a trait",
    ),
    Rule(
        "dominance",
        "review",
        BY_ID["nk-dominance"].acro_check,
        "the column holds values (means, sums, rates); dominance (nk, p-ratio) needs the "
        "records behind each cell, so a checker must review it",
    ),
    Rule(
        "differencing",
        "review",
        BY_ID["differencing"].acro_check,
        "with an earlier released table this count reveals a group below the threshold",
    ),
    Rule("notebook", "review", "NotebookReport", "the notebook's own output-checking verdict"),
    Rule("unreadable", "review", "FileCheck", "the file could not be read as a table"),
)
BY_RULE: dict[str, Rule] = {r.id: r for r in RULES}
_ORDER = {"none": 0, "pass": 1, "review": 2, "fail": 3}


def worst(*statuses: str) -> str:
    """The worst status: fail > review > pass (> none).

    >>> worst("pass", "review"), worst("none"), worst("review", "fail", "pass")
    ('review', 'none', 'fail')
    """
    return max(statuses, key=_ORDER.__getitem__, default="none")


@dataclass(frozen=True)
class CheckResult:
    """The verdict on one file.

    ``status`` is ``pass``, ``fail``, ``review`` or ``none`` (no check applies);
    ``report`` the ACRO-shaped ``results.json`` content (None for ``none``);
    ``blocking`` the reasons submission is forbidden (identifiers); ``flags`` the
    cells and columns to highlight: ``{"row", "column", "rule", "reason"}`` with
    ``row`` the 0-based data row (header excluded; None for a whole column) or, in a
    text file, the 1-based line.
    """

    status: Status
    report: dict[str, Any] | None
    blocking: tuple[str, ...]
    flags: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class _Flag:
    rule: str
    reason: str
    row: int | None = None
    column: Any = None
    col_index: int | None = None

    def to_dict(self) -> dict[str, Any]:
        column = None if self.column is None else str(self.column)
        return {"row": self.row, "column": column, "rule": self.rule, "reason": self.reason}


class _Unreadable(Exception):
    """The bytes are not what the file's type says (the message says why)."""


# --------------------------------------------------------------------------- names


def snake(name: Any) -> str:
    """A column name in snake case, for matching.

    >>> snake("NHSNumber"), snake("PersonID"), snake(" Person source value ")
    ('nhs_number', 'person_id', 'person_source_value')
    """
    text = str(name).strip()
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", text)
    return re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower()


#: Person identifiers, matched against the snake-case name (any prefix allowed).
IDENTIFIER_NAME = re.compile(
    r"^(?:.+_)?(?:person_id|patient_id|subject_id|participant_id|pseudo_id|nhs_number"
    r"|nhs_no|nhs_num|nhsno|nhsnumber|nhs_id|chi_number|chi_no|mrn|hospital_number"
    r"|hospital_no|patient_number|source_value)$|^(?:chi|pseudonym)$"
)


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


def is_identifier_name(name: Any) -> bool:
    """Whether a column name says it holds person identifiers.

    >>> [is_identifier_name(n) for n in ("person_id", "PersonSourceValue", "n_persons")]
    [True, True, False]
    """
    return bool(IDENTIFIER_NAME.match(snake(name)))


def column_role(name: Any, *, integer: bool) -> str:
    """``count``, ``statistic`` or ``label`` for a numeric column, from its name.

    Named like a statistic (``mean_age``, ``pct``, ``rate``): a statistic; named like
    a count (``n``, ``count``, ``n_patients``, ``deaths``): a count; named like a
    label (``year``, ``age``, ``*_code``, ``*_id``, ``decile``): a label. Otherwise
    whole numbers are counts (a wide crosstab's columns are categories) and other
    numbers statistics. Counts is the cautious guess: an integer label column with
    an unhelpful name is checked as counts; rename it (``ward_code``) or write it as
    text to have it read as a label.
    """
    tokens = set(snake(name).split("_")) or {""}
    if tokens & STATISTIC_TOKENS:
        return "statistic"
    if tokens & COUNT_TOKENS:
        return "count"
    if tokens & LABEL_TOKENS or tokens == {""}:
        return "label"
    return "count" if integer else "statistic"


# --------------------------------------------------------------------------- NHS numbers

_WEIGHTS = np.arange(10, 1, -1)
_SHAPE = r"(\d{3})([ -]?)(\d{3})\2(\d{4})"
#: A ten-digit number standing alone in text (not inside a longer number, word or decimal).
NHS_TOKEN = re.compile(rf"(?<![\w.]){_SHAPE}(?![\w]|\.\d)")
_WHOLE = re.compile(rf"^\s*{_SHAPE}\s*$")
#: The same shapes for pandas' vectorised (RE2, no back-references) matching.
_LOOSE = r"\d{3}[ -]?\d{3}[ -]?\d{4}"
_WHOLE_FLAT = r"\s*(?:\d{10}|\d{3} \d{3} \d{4}|\d{3}-\d{3}-\d{4})\s*"


def _valid_digits(digits: np.ndarray) -> np.ndarray:
    """Rows of ten digits whose last is the modulus-11 check digit of the first nine."""
    check = 11 - (digits[:, :9] @ _WEIGHTS) % 11
    check = np.where(check == 11, 0, check)
    return (check != 10) & (check == digits[:, 9])


def is_nhs_number(text: str) -> bool:
    """Ten digits (optionally spaced 3-3-4) with a valid modulus-11 check digit."""
    match = _WHOLE.match(text)
    if not match:
        return False
    digits = np.frombuffer("".join(match.group(1, 3, 4)).encode(), dtype=np.uint8).astype(
        np.int64
    ) - ord("0")
    return bool(_valid_digits(digits[None, :])[0])


def _valid_strings(values: Sequence[str]) -> np.ndarray:
    """Validity of ten-digit strings (separators already removed)."""
    if not values:
        return np.zeros(0, dtype=bool)
    raw = np.frombuffer("".join(values).encode("ascii"), dtype=np.uint8)
    return _valid_digits(raw.reshape(-1, 10).astype(np.int64) - ord("0"))


def _valid_integers(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ten-digit shaped, valid) for whole numbers (nine digits read as a leading zero)."""
    shaped = (values >= 100_000_000) & (values < 10_000_000_000)
    ints = values[shaped].astype(np.int64)
    digits = (ints[:, None] // 10 ** np.arange(9, -1, -1)) % 10
    valid = np.zeros(values.shape, dtype=bool)
    valid[shaped] = _valid_digits(digits)
    return shaped, valid


def _text_flags(text: str) -> list[_Flag]:
    """Valid NHS numbers standing alone in text, by line (the number is never repeated)."""
    flags: list[_Flag] = []
    matches = list(NHS_TOKEN.finditer(text))
    if not matches:
        return flags
    valid = _valid_strings(["".join(m.group(1, 3, 4)) for m in matches])
    for match, ok in zip(matches, valid, strict=True):
        if ok:
            line = text.count("\n", 0, match.start()) + 1
            flags.append(_Flag("nhs-number", f"line {line} holds an NHS number", row=line))
            if len(flags) >= MAX_LISTED:
                break
    return flags


# --------------------------------------------------------------------------- reading


def _decode(data: bytes) -> str:
    if b"\x00" in data[:65536]:
        raise _Unreadable("the file is binary (it holds NUL bytes), not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError:
            raise _Unreadable("the file is not text in UTF-8 or Windows-1252") from None


def _read_csv(data: bytes) -> pd.DataFrame:
    text = _decode(data)
    first = text.split("\n", 1)[0]
    sep = max((",", ";", "\t", "|"), key=first.count) if first.count(",") == 0 else ","
    try:
        frame = pd.read_csv(io.StringIO(text), sep=sep)
    except pd.errors.EmptyDataError:
        raise _Unreadable("the CSV file holds no table") from None
    except (pd.errors.ParserError, ValueError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise _Unreadable(f"the file is not a well-formed CSV table ({reason})") from None
    return frame


def _read_parquet(data: bytes) -> pd.DataFrame:
    try:
        return pd.read_parquet(io.BytesIO(data))
    except Exception as err:  # pyarrow raises many types for broken files
        raise _Unreadable(
            f"the file is not a readable Parquet table ({type(err).__name__})"
        ) from None


def _read_xlsx(data: bytes) -> list[tuple[str, pd.DataFrame]]:
    try:
        import openpyxl  # noqa: F401
    except ImportError:
        raise _Unreadable(
            "xlsx files cannot be read here (openpyxl is not installed): a checker must "
            "review it; the workbook's strings and numbers were scanned for identifiers"
        ) from None
    try:
        sheets = pd.read_excel(io.BytesIO(data), sheet_name=None)
    except Exception as err:  # openpyxl and zipfile raise many types for broken files
        raise _Unreadable(
            f"the file is not a readable xlsx workbook ({type(err).__name__})"
        ) from None
    return [(str(sheet), frame) for sheet, frame in sheets.items()]


def _scalars(values: Any) -> bool:
    return all(v is None or isinstance(v, str | int | float | bool) for v in values)


def _json_rows(obj: Any) -> tuple[list[Any], list[Any] | None] | None:
    """(rows, column names) of a JSON table in records or split orient, else None."""
    if isinstance(obj, list) and obj and all(isinstance(r, dict) for r in obj):
        return (obj, None) if all(_scalars(r.values()) for r in obj) else None
    if isinstance(obj, dict) and set(obj) >= {"columns", "data"}:
        rows = obj["data"]
        ok = isinstance(rows, list) and all(isinstance(r, list) and _scalars(r) for r in rows)
        return (rows, list(obj["columns"])) if ok else None
    return None


def _json_table(obj: Any) -> pd.DataFrame | None:
    """A JSON document as a table when it is one (records, split or columns orient).

    An ACRO report (a mapping with ``results``) and other documents are not tables.
    """
    rows = _json_rows(obj)
    if rows is not None:
        return pd.DataFrame(rows[0], columns=rows[1])
    if not isinstance(obj, dict) or not obj or "results" in obj:
        return None
    values = list(obj.values())
    lists = all(isinstance(v, list) and _scalars(v) for v in values)
    if lists and len({len(v) for v in values}) == 1:
        return pd.DataFrame(obj)
    if all(isinstance(v, dict) and v and _scalars(v.values()) for v in values):
        return pd.DataFrame(obj).reset_index(drop=True)
    return None


def _xlsx_scan(data: bytes) -> list[_Flag]:
    """Without openpyxl: identifiers among a workbook's strings and numbers (XML scan)."""
    flags: list[_Flag] = []
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as book:
            for info in book.infolist():
                if not info.filename.endswith(".xml") or info.file_size > 200_000_000:
                    continue
                xml = book.read(info).decode("utf-8", errors="replace")
                for raw in re.findall(r"<(?:t|v)(?:\s[^>]*)?>([^<]*)</(?:t|v)>", xml):
                    if is_identifier_name(raw) and raw.strip():
                        flags.append(
                            _Flag("identifier", f"a column is named {raw.strip()!r}", column=raw)
                        )
                    elif NHS_TOKEN.search(raw) and _text_flags(raw):
                        flags.append(_Flag("nhs-number", "a cell holds an NHS number"))
    except (zipfile.BadZipFile, OSError, ValueError, RuntimeError):
        pass
    return flags[:MAX_LISTED]


# --------------------------------------------------------------------------- columns

_NUMBER = re.compile(r"^\s*[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?\s*$")
#: Cells a count column may hold instead of a number: redaction and suppression marks.
_MARKER = re.compile(
    r"^\s*(?:\*+|-|–|x|c|\.\.|~|n/?a|redacted|\[redacted\]|suppressed|[<≤]=?\s*\d+)\s*$",
    re.IGNORECASE,
)
_HEADER_ROWS = 3  # extra header rows a CSV written from a MultiIndex carries


def _numeric(series: pd.Series) -> np.ndarray | None:
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


def _nhs_column(series: pd.Series, values: np.ndarray | None) -> str | None:
    """Why a column holds NHS numbers, or None."""
    if values is not None and pd.api.types.is_numeric_dtype(series.dtype):
        return _nhs_integers(values)
    if not (pd.api.types.is_string_dtype(series.dtype) or series.dtype == object):
        return None
    text = series.dropna().astype(str)
    candidates = text[text.str.contains(_LOOSE, regex=True).to_numpy(dtype=bool)]
    if candidates.empty:
        return None
    whole = candidates.str.fullmatch(_WHOLE_FLAT).to_numpy(dtype=bool)
    digits = candidates[whole].str.replace(r"\D", "", regex=True).tolist()
    valid = _valid_strings(digits)
    if valid.any() and valid.sum() * 2 >= len(digits):
        return _how_many(int(valid.sum()))
    if any(_text_flags(cell) for cell in candidates[~whole].iloc[:MAX_LISTED]):
        return "a text value holds an NHS number"
    return None


def _nhs_integers(values: np.ndarray) -> str | None:
    finite = values[np.isfinite(values)]
    shaped, valid = _valid_integers(finite[finite == np.floor(finite)])
    if valid.any() and valid.sum() * 2 >= shaped.sum():
        return _how_many(int(valid.sum()))
    return None


def _how_many(valid: int) -> str:
    return "1 value is an NHS number" if valid == 1 else f"{valid} values are NHS numbers"


# --------------------------------------------------------------------------- one table


@dataclass
class _Table:
    """What the rules found in one table."""

    uid: str
    frame: pd.DataFrame
    roles: dict[str, str]
    counts: dict[int, np.ndarray]
    flags: list[_Flag]
    notes: list[str]


def _identifier_flags(
    uid: str, column: Any, j: int, series: pd.Series, values: np.ndarray | None
) -> list[_Flag]:
    """The ``identifier`` and ``nhs-number`` findings on one column (they block)."""
    label = str(column)
    found = []
    if is_identifier_name(column):
        found.append(("identifier", f"{uid}: column {label!r} is named like a person identifier"))
    if _text_flags(label):
        found.append(("nhs-number", f"{uid}: a column name holds an NHS number"))
    why = _nhs_column(series, values)
    if why:
        found.append(("nhs-number", f"{uid}: column {label!r} holds NHS numbers ({why})"))
    return [_Flag(rule, reason, column=column, col_index=j) for rule, reason in found]


def _role(label: str, values: np.ndarray | None) -> str:
    if values is None:
        return "label"
    finite = values[np.isfinite(values)]
    integer = bool(len(finite)) and bool(np.all(finite == np.floor(finite)))
    role = column_role(label, integer=integer)
    return "label" if role == "count" and _is_row_number(label, finite) else role


def _examine(uid: str, frame: pd.DataFrame, rules: SDCConfig) -> _Table:
    """Identifiers, roles, small counts, zeros and unverifiable values of one table."""
    flags: list[_Flag] = []
    roles: dict[str, str] = {}
    counts: dict[int, np.ndarray] = {}
    for j, column in enumerate(frame.columns):
        series = frame.iloc[:, j]
        if isinstance(series.dtype, pd.CategoricalDtype):  # parquet from pandas categories
            series = pd.Series(np.asarray(series, dtype=object), name=series.name)
        label = str(column)
        values = _numeric(series)
        found = _identifier_flags(uid, column, j, series, values)
        flags += found
        roles[label] = "identifier" if found else _role(label, values)
        if roles[label] == "count" and values is not None:
            counts[j] = values
            flags += _count_flags(uid, values, column, j, rules)
        elif roles[label] == "statistic":
            flags.append(
                _Flag(
                    "dominance",
                    f"{uid}: column {label!r} holds values that need the "
                    "records to check (dominance); a checker must review them",
                    column=column,
                    col_index=j,
                )
            )
    return _Table(uid, frame, roles, counts, flags, _notes(frame, roles, counts, rules))


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


def _count_flags(
    uid: str, values: np.ndarray, column: Any, j: int, rules: SDCConfig
) -> list[_Flag]:
    flags = []
    small = np.flatnonzero((values > 0) & (values < rules.threshold))
    for i in small[:MAX_LISTED]:
        flags.append(
            _Flag(
                "threshold",
                f"{uid}: row {i}, column {column!s}: a count below {rules.threshold}",
                row=int(i),
                column=column,
                col_index=j,
            )
        )
    if len(small) > MAX_LISTED:
        flags.append(
            _Flag(
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
                _Flag(
                    "zeros",
                    f"{uid}: row {i}, column {column!s}: a zero count",
                    row=int(i),
                    column=column,
                    col_index=j,
                )
            )
    return flags


# --------------------------------------------------------------------------- notebook report


@dataclass(frozen=True)
class _Notebook:
    report: str
    uid: str
    status: str
    summary: str
    protection: str
    tool: str
    verified: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "recognised": True,
            "report": self.report,
            "output": self.uid,
            "status": self.status,
            "summary": self.summary,
            "protection": self.protection,
            "tool": self.tool,
            "checksum_verified": self.verified,
        }


def _notebook(name: str, data: bytes, companions: Mapping[str, bytes]) -> _Notebook | None:
    """The companion ACRO report that describes this file, if any."""
    digest = hashlib.sha256(data).hexdigest()
    verified_names = {
        cname.rsplit("/", 1)[-1][:-4].casefold()
        for cname, body in companions.items()
        if cname.lower().endswith(".txt")
        and len(body) < 200
        and body.strip().decode("ascii", errors="replace").lower() == digest
    }
    wanted = {name.casefold()} | verified_names
    for cname, body in sorted(companions.items()):
        if not cname.lower().endswith(".json") or len(body) > MAX_COMPANION_BYTES:
            continue
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            continue
        results = doc.get("results") if isinstance(doc, dict) else None
        if not isinstance(results, dict):
            continue
        for uid, entry in results.items():
            if not isinstance(entry, dict):
                continue
            files = entry.get("files") or []
            names = {
                str(f.get("name", "")).rsplit("/", 1)[-1].casefold()
                for f in files
                if isinstance(f, dict)
            }
            hit = names & wanted
            if not hit:
                continue
            status = str(entry.get("status", "review"))
            props = entry.get("properties")
            props = props if isinstance(props, dict) else {}
            about = doc.get("tool")
            tool = about.get("name", "ACRO") if isinstance(about, dict) else "ACRO"
            return _Notebook(
                report=cname,
                uid=str(uid),
                status=status if status in ("pass", "fail", "review") else "review",
                summary=str(entry.get("summary", "")),
                protection=str(props.get("protection", "none")),
                tool=str(tool),
                verified=bool(hit & verified_names),
            )
    return None


# --------------------------------------------------------------------------- differencing

_TOTAL_LABELS = frozenset({"total", "all", "overall", "any"})
_MEASURE = "__measure__"
_LONG_FIELDS = ("_count", "_row", "_col")


def _label_columns(table: _Table) -> list[int]:
    return [j for j, c in enumerate(table.frame.columns) if table.roles[str(c)] == "label"]


def _cells(table: _Table) -> list[Cell]:
    """Each count cell described by its row's labels and its column (the measure)."""
    labels = _label_columns(table)
    rows = table.frame.iloc[:, labels].astype(object).to_numpy() if labels else None
    names = [str(table.frame.columns[j]) for j in labels]
    cells = []
    for j, values in table.counts.items():
        measure = In({str(table.frame.columns[j])})
        for i in np.flatnonzero(np.isfinite(values)):
            constraints: dict[str, Any] = {_MEASURE: measure}
            if rows is not None:
                for name, label in zip(names, rows[i], strict=True):
                    if str(label).strip().casefold() not in _TOTAL_LABELS:
                        constraints[name] = In({"nan" if pd.isna(label) else label})
            cells.append(Cell(constraints, round(float(values[i])), position=(int(i), j)))
    return cells


def _long(table: _Table) -> pd.DataFrame:
    """Counts in long form keyed by normalised labels (the large-table comparison)."""
    labels = _label_columns(table)
    keys = {
        snake(table.frame.columns[j]): table.frame.iloc[:, j]
        .astype(str)
        .str.strip()
        .str.casefold()
        .str.replace(r"\.0$", "", regex=True)
        for j in labels
    }
    parts = []
    for j, values in table.counts.items():
        part = pd.DataFrame(keys)
        part[_MEASURE] = snake(table.frame.columns[j])
        part["_count"] = values
        part["_row"] = np.arange(len(values))
        part["_col"] = j
        parts.append(part)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _differencing(
    table: _Table, earlier: Sequence[tuple[str, _Table]], rules: SDCConfig
) -> tuple[list[_Flag], list[dict[str, Any]], list[str]]:
    flags: list[_Flag] = []
    findings: list[dict[str, Any]] = []
    notes: list[str] = []
    if not table.counts or not earlier:
        return flags, findings, notes
    new_size = sum(int(np.isfinite(v).sum()) for v in table.counts.values())
    for release, old in earlier:
        if not old.counts:
            continue
        old_size = sum(int(np.isfinite(v).sum()) for v in old.counts.values())
        pairs: list[tuple[int, int, int, tuple[int, int] | None]] = []
        if new_size * old_size <= MAX_DIFFERENCING_PAIRS:
            for f in find_differences(_cells(table), [(release, _cells(old))], rules.threshold):
                if f.position is not None:
                    pairs.append((*f.position, f.difference, f.earlier_position))
        else:
            notes.append(
                f"differencing against {release!r} compared identical categories only "
                f"({new_size} x {old_size} cells is too many for nested groups)"
            )
            a, b = _long(table), _long(old)
            keys = [c for c in a.columns if c not in _LONG_FIELDS]
            same = set(keys) == {c for c in b.columns if c not in _LONG_FIELDS}
            unique = same and not (a.duplicated(keys).any() or b.duplicated(keys).any())
            if not unique:
                notes.append(f"not compared with {release!r}: its categories differ or repeat")
            else:
                both = a.merge(b, on=keys, suffixes=("", "_old"))
                diff = (both["_count"] - both["_count_old"]).abs()
                risky = both[(diff > 0) & (diff < rules.threshold)]
                for row in risky.to_dict("records"):
                    pairs.append(
                        (
                            int(row["_row"]),
                            int(row["_col"]),
                            int(abs(row["_count"] - row["_count_old"])),
                            (int(row["_row_old"]), int(row["_col_old"])),
                        )
                    )
        for i, j, difference, then in pairs[:MAX_LISTED]:
            column = table.frame.columns[j]
            flags.append(
                _Flag(
                    "differencing",
                    f"{table.uid}: row {i}, column {column!s}: differs by "
                    f"{difference} from a count of the earlier release {release!r}",
                    row=i,
                    column=column,
                    col_index=j,
                )
            )
            findings.append(
                {
                    "cell": [i, j],
                    "release": release,
                    "earlier_cell": list(then) if then else None,
                    "difference": difference,
                }
            )
    return flags, findings, notes


# --------------------------------------------------------------------------- report


def _severity(flag: _Flag, rounded: bool) -> str:
    if rounded and flag.rule in ("threshold", "zeros"):
        return "review"
    return BY_RULE[flag.rule].severity


def _entry(
    uid: str,
    kind: str,
    status: str,
    flags: Sequence[_Flag],
    *,
    table: _Table | None = None,
    notes: Sequence[str] = (),
    exception: str = "",
    notebook: _Notebook | None = None,
    findings: Sequence[dict[str, Any]] = (),
    rounded: bool = False,
) -> dict[str, Any]:
    """One output of the ACRO ``results.json``: status, summary, flagged cells, reasons."""
    rules: dict[str, dict[str, Any]] = {}
    for rule in RULES:
        mine = [f for f in flags if f.rule == rule.id]
        if rule.id == "notebook" or (not mine and rule.id not in ("threshold", "zeros")):
            continue
        cells = [
            [f.row, f.col_index] for f in mine if f.row is not None and f.col_index is not None
        ]
        columns = sorted({str(f.column) for f in mine if f.row is None and f.column is not None})
        rules[rule.id] = {
            "status": (_severity(mine[0], rounded) if mine else "pass"),
            "acro_check": rule.acro_check,
            "count": len(cells) or len(columns) or len(mine),
            "cells": cells,
            "columns": columns,
            "explanation": rule.explanation,
        }
    parts = [f"{rid}: {info['count']}" for rid, info in rules.items() if info["count"]]
    if notebook:
        parts.append(f"notebook report: {notebook.status}")
    summary = status + ("; " + "; ".join(parts) if parts else "")
    return {
        "uid": uid,
        "status": status,
        "type": "table" if table is not None else "custom",
        "properties": {
            "method": "airlock-check",
            "file_type": kind,
            "rows": None if table is None else len(table.frame),
            "columns": {} if table is None else table.roles,
        },
        "files": [
            {
                "name": uid,
                "sdc": {
                    "summary": {**{r: i["count"] for r, i in rules.items()}, "suppressed": False},
                    "cells": {r: i["cells"] for r, i in rules.items()},
                },
            }
        ],
        "outcome": _outcome(table, flags) if table is not None else {},
        "command": "airlock.checks.check_file",
        "summary": summary,
        "timestamp": datetime.now(UTC).isoformat(),
        "comments": list(notes),
        "exception": exception,
        "fair": {"rules": {r: i["status"] for r, i in rules.items()}},
        "rules": rules,
        "flags": [f.to_dict() for f in flags[: MAX_LISTED * 4]],
        "notebook": notebook.to_dict() if notebook else {"recognised": False},
        "differencing": list(findings),
    }


def _outcome(table: _Table, flags: Sequence[_Flag]) -> dict[str, dict[str, str]]:
    """ACRO's outcome: per checked column, each row's rules (``"ok"`` when none)."""
    checked = [str(c) for c in table.frame.columns if table.roles[str(c)] in ("count", "statistic")]
    marks: dict[tuple[int, str], str] = {}
    for f in flags:
        if f.row is not None and f.column is not None:
            key = (f.row, str(f.column))
            marks[key] = marks.get(key, "") + f"{f.rule}; "
    everything = len(table.frame) * len(checked) <= MAX_OUTCOME_CELLS
    rows = range(len(table.frame)) if everything else sorted({r for r, _ in marks})
    return {c: {str(i): marks.get((i, c), "ok") for i in rows} for c in checked}


def _document(entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {
        "version": ACRO_FORMAT_VERSION,
        "tool": {
            "@type": "SoftwareApplication",
            "name": "SDE Workbench airlock checks",
            "version": __version__,
        },
        "results": {e["uid"]: e for e in entries},
    }


# --------------------------------------------------------------------------- entry point


def _kind(name: str) -> str:
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def _tables(name: str, kind: str, data: bytes) -> list[tuple[str, pd.DataFrame]] | None:
    """The file's tables (one per sheet), None when it is not a table; raises _Unreadable."""
    if kind == "csv":
        return [(name, _read_csv(data))]
    if kind == "parquet":
        return [(name, _read_parquet(data))]
    if kind == "xlsx":
        sheets = _read_xlsx(data)
        return [(name if len(sheets) == 1 else f"{name}!{s}", f) for s, f in sheets]
    if kind == "json":
        try:
            frame = _json_table(json.loads(data))
        except (ValueError, UnicodeDecodeError):
            return None
        return None if frame is None else [(name, frame)]
    return None


def _result(status: str, entries: Sequence[dict[str, Any]], flags: Sequence[_Flag]) -> CheckResult:
    blocking = tuple(
        dict.fromkeys(f.reason for f in flags if f.rule in ("identifier", "nhs-number"))
    )
    return CheckResult(
        status=status,
        report=_document(entries) if entries else None,
        blocking=blocking,
        flags=tuple(f.to_dict() for f in flags),
    )


def _text_check(name: str, kind: str, data: bytes) -> CheckResult:
    flags = [
        _Flag(f.rule, f"{name}: {f.reason}", row=f.row)
        for f in _text_flags(data.decode("utf-8", errors="replace"))
    ]
    if not flags:
        return CheckResult("none", None, (), ())
    return _result("fail", [_entry(name, kind, "fail", flags)], flags)


def _unreadable(name: str, kind: str, data: bytes, reason: str) -> CheckResult:
    flags = [_Flag("unreadable", f"{name}: {reason}")]
    if kind == "xlsx":
        flags += [_Flag(f.rule, f"{name}: {f.reason}", column=f.column) for f in _xlsx_scan(data)]
    elif b"\x00" not in data[:65536]:
        flags += [
            _Flag(f.rule, f"{name}: {f.reason}", row=f.row)
            for f in _text_flags(data.decode("utf-8", errors="replace"))
        ]
    status = "fail" if len(flags) > 1 else "review"
    return _result(status, [_entry(name, kind, status, flags, exception=reason)], flags)


def _earlier_tables(
    earlier: Sequence[tuple[str, bytes]], rules: SDCConfig
) -> list[tuple[str, _Table]]:
    out = []
    for release, body in earlier:
        try:
            for uid, frame in _tables(release, _kind(release), body) or []:
                out.append((release, _examine(uid, frame, rules)))
        except _Unreadable:
            continue
    return out


def check_file(
    name: str,
    data: bytes,
    rules: SDCConfig,
    *,
    companions: Mapping[str, bytes] = {},
    earlier: Sequence[tuple[str, bytes]] = (),
) -> CheckResult:
    """Check one submitted file: the verdict, the ACRO report, blocking reasons, flags.

    ``companions`` are the other files submitted with it (name -> bytes: a notebook's
    ``results.json`` and checksums are recognised); ``earlier`` the tables the project
    released before (name, bytes), for differencing. Never raises on bad input.
    """
    kind = _kind(name)
    try:
        return _check(name, kind, data, rules, companions, earlier)
    except Exception as err:  # the workflow must always get a verdict
        reason = f"the checks could not complete ({type(err).__name__}); a checker must review it"
        flags = [_Flag("unreadable", f"{name}: {reason}")]
        return _result("review", [_entry(name, kind, "review", flags, exception=reason)], flags)


def _check(
    name: str,
    kind: str,
    data: bytes,
    rules: SDCConfig,
    companions: Mapping[str, bytes],
    earlier: Sequence[tuple[str, bytes]],
) -> CheckResult:
    try:
        tables = _tables(name, kind, data)
    except _Unreadable as err:
        return _unreadable(name, kind, data, str(err))
    if tables is None:
        return (
            _text_check(name, kind, data)
            if kind in TEXT_TYPES
            else CheckResult("none", None, (), ())
        )
    notebook = _notebook(name, data, companions)
    rounded = notebook is not None and notebook.protection not in ("none", "suppression", "")
    old = _earlier_tables(earlier, rules) if earlier else []
    entries, all_flags, overall = [], [], "pass"
    for uid, frame in tables:
        table = _examine(uid, frame, rules)
        diff_flags, findings, diff_notes = _differencing(table, old, rules)
        flags = table.flags + diff_flags
        notes = table.notes + diff_notes
        status = worst("pass", *(_severity(f, rounded) for f in flags))
        if table.frame.empty or any(n.startswith("no count") for n in notes):
            status = worst(status, "review")
        if notebook is not None:
            status = worst(status, notebook.status)
            notes.append(
                f"recognised the notebook's report {notebook.report!r} (output "
                f"{notebook.uid!r}, {notebook.tool}): {notebook.summary or notebook.status}"
                + ("; its checksum matches this file" if notebook.verified else "")
            )
            if rounded:
                notes.append(
                    f"the notebook rounded this table ({notebook.protection}): small counts "
                    "are for a checker to review, not failures"
                )
        entries.append(
            _entry(
                uid,
                kind,
                status,
                flags,
                table=table,
                notes=notes,
                notebook=notebook,
                findings=findings,
                rounded=rounded,
            )
        )
        all_flags += flags
        overall = worst(overall, status)
    return _result(overall, entries, all_flags)
