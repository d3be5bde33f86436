"""What a check returns: the table, its flags, the verdict, the protected table, a report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from sde.sdc.differencing import Cell

Status = Literal["pass", "fail", "review"]


@dataclass(frozen=True)
class ReleaseSpec:
    """How a table's published cells are described to the differencing ledger."""

    population: str
    units: str
    cells: list[Cell]


@dataclass(frozen=True)
class CheckedTable:
    """A table with its disclosure check.

    ``table`` is the unprotected table (never release it as is); ``flags`` has
    the same shape, each cell a tuple of the rule ids that flag it (empty when
    safe); ``status`` is the verdict on ``table`` (``fail`` if any failing rule
    flags a cell, else ``review`` if any rule asks for review, else ``pass``);
    ``safe`` is the protected table (suppressed cells are NaN, or rounded
    counts); ``report`` is a JSON-ready dict (see :mod:`sde.sdc.report`).
    """

    table: pd.DataFrame
    flags: pd.DataFrame
    status: Status
    safe: pd.DataFrame
    report: dict[str, Any]
    #: Cells hidden in ``safe`` (primary and secondary suppression, or redaction).
    hidden: pd.DataFrame
    _release: Callable[[], ReleaseSpec] = field(repr=False, compare=False)

    @property
    def flagged(self) -> pd.DataFrame:
        """True where at least one rule flags the cell."""
        return self.flags.map(bool)

    @property
    def public_flags(self) -> pd.DataFrame:
        """The reasons that may be published with ``safe`` (see :mod:`sde.sdc.report`)."""
        from sde.sdc.report import public_flags

        return public_flags(self.flags, self.hidden, self.report["protection"]["method"])

    @property
    def public_report(self) -> dict[str, Any]:
        """``report`` as ``write()`` publishes it: no reason that narrows a hidden cell.

        ``report`` is the checker's record (every reason, differencing findings with
        the size of each difference); do not release it as is.
        """
        from sde.sdc.report import public_report

        return public_report(self.report, self.flags, self.hidden)

    def release_cells(self) -> ReleaseSpec:
        """The published cells as the differencing ledger records them."""
        return self._release()

    def results_json(self, uid: str = "output_0", files: list[str] | None = None) -> dict[str, Any]:
        """This output in ACRO's ``results.json`` shape (see :mod:`sde.sdc.report`)."""
        from sde.sdc.report import results_document

        return results_document({uid: self}, files={uid: files} if files else None)

    def write(self, folder: str | Path, uid: str = "output_0") -> Path:
        """Write ``safe`` as CSV, ``results.json``, checksums and summaries into ``folder``."""
        from sde.sdc.report import write_outputs

        return write_outputs(folder, {uid: self})

    def to_markdown(self) -> str:
        """A human summary with the flagged cells highlighted."""
        from sde.sdc.report import markdown_summary

        return markdown_summary(self)

    def to_html(self) -> str:
        """The same summary as a standalone HTML page."""
        from sde.sdc.report import html_summary

        return html_summary(self)
