"""The rules, the verdict and the limits shared by every part of the airlock's checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sde.sdc.rules import BY_ID

Status = str  # "pass" | "fail" | "review" | "none"

TABLE_TYPES = frozenset({"csv", "parquet", "xlsx"})
TEXT_TYPES = frozenset({"txt", "md", "html", "svg", "json"})
BINARY_TYPES = frozenset({"png", "pdf"})

#: At most this many cells per rule are listed (flags and report); counts stay exact.
MAX_LISTED = 1000
#: Above this many cells the ACRO ``outcome`` lists flagged rows only.
MAX_OUTCOME_CELLS = 10_000
#: Pairwise (nested-group) differencing runs up to this many cell pairs.
MAX_DIFFERENCING_PAIRS = 2_000_000
#: Companion files larger than this are not parsed as reports.
MAX_COMPANION_BYTES = 20_000_000
#: A table file is decoded only when its decoded size (estimated from its metadata:
#: parquet's row count and column types, xlsx's zip entry sizes) stays under
#: :data:`MAX_DECODED_BYTES` and, above :data:`DECODED_FLOOR_BYTES`, under
#: :data:`MAX_EXPANSION` times the file's size; and parquet under :data:`MAX_ROWS` rows.
MAX_DECODED_BYTES = 200_000_000
MAX_EXPANSION = 100
DECODED_FLOOR_BYTES = 16_000_000
MAX_ROWS = 5_000_000
#: Compressed text inside a png or pdf is inflated up to this many bytes in all.
MAX_INFLATED_BYTES = 50_000_000


def decoded_limit(size: int) -> int:
    """The most bytes a file of ``size`` bytes may decode to before the checks refuse it.

    >>> decoded_limit(10_000), decoded_limit(1_000_000), decoded_limit(10_000_000)
    (16000000, 100000000, 200000000)
    """
    return min(MAX_DECODED_BYTES, max(DECODED_FLOOR_BYTES, MAX_EXPANSION * size))


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
    Rule(
        "incomplete",
        "fail",
        "IdentifierCheck",
        "the checks could not look at all of the file (an error, or it decodes beyond the "
        "airlock's bound), so identifiers cannot be ruled out: it is blocked (fail closed)",
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
#: Findings of these rules forbid submission.
BLOCKING_RULES = frozenset({"identifier", "nhs-number", "incomplete"})
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
    ``blocking`` the reasons submission is forbidden (identifiers, NHS numbers, checks
    that could not complete); ``flags`` the cells and columns to highlight:
    ``{"row", "column", "rule", "reason"}`` with ``row`` the 0-based data row (header
    excluded; None for a whole column) or, in a text file, the 1-based line.
    """

    status: Status
    report: dict[str, Any] | None
    blocking: tuple[str, ...]
    flags: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class Flag:
    rule: str
    reason: str
    row: int | None = None
    column: Any = None
    col_index: int | None = None

    def to_dict(self) -> dict[str, Any]:
        column = None if self.column is None else str(self.column)
        return {"row": self.row, "column": column, "rule": self.rule, "reason": self.reason}

    def named(self, name: str) -> Flag:
        """The same finding with its reason prefixed by the file's name."""
        return Flag(self.rule, f"{name}: {self.reason}", self.row, self.column, self.col_index)


class Unreadable(Exception):
    """The bytes are not what the file's type says (the message says why)."""


class TooLarge(Exception):
    """The file decodes beyond the airlock's bound (the message says how): it is blocked."""
