"""The ACRO-shaped report (``results.json``) and the verdict built from the findings."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from airlock.checks.base import (
    BLOCKING_RULES,
    BY_RULE,
    MAX_LISTED,
    MAX_OUTCOME_CELLS,
    RULES,
    CheckResult,
    Flag,
)
from airlock.checks.notebook import Notebook
from airlock.checks.tables import Table
from sde import __version__
from sde.sdc.report import ACRO_FORMAT_VERSION


def severity(flag: Flag, rounded: bool) -> str:
    if rounded and flag.rule in ("threshold", "zeros"):
        return "review"
    return BY_RULE[flag.rule].severity


def entry(
    uid: str,
    kind: str,
    status: str,
    flags: Sequence[Flag],
    *,
    table: Table | None = None,
    notes: Sequence[str] = (),
    exception: str = "",
    notebook: Notebook | None = None,
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
            "status": (severity(mine[0], rounded) if mine else "pass"),
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


def _outcome(table: Table, flags: Sequence[Flag]) -> dict[str, dict[str, str]]:
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


def document(entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {
        "version": ACRO_FORMAT_VERSION,
        "tool": {
            "@type": "SoftwareApplication",
            "name": "SDE Workbench airlock checks",
            "version": __version__,
        },
        "results": {e["uid"]: e for e in entries},
    }


def result(status: str, entries: Sequence[dict[str, Any]], flags: Sequence[Flag]) -> CheckResult:
    """The verdict: blocking reasons are the findings of the blocking rules, once each."""
    blocking = tuple(dict.fromkeys(f.reason for f in flags if f.rule in BLOCKING_RULES))
    return CheckResult(
        status=status,
        report=document(entries) if entries else None,
        blocking=blocking,
        flags=tuple(f.to_dict() for f in flags),
    )
