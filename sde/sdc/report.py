"""Reports: a JSON-ready dict per output, ACRO's ``results.json``, Markdown and HTML.

``results.json`` follows ACRO's shape so SACRO-Viewer opens it::

    {"version": ..., "tool": {...}, "results": {uid: {
        "uid", "status", "type", "properties", "files": [{"name", "sdc"}],
        "outcome", "command", "summary", "timestamp", "comments", "exception", "fair"}}}

where ``sdc`` is ``{"summary": {rule: number of cells, "suppressed": bool},
"cells": {rule: [[row, col], ...]}}`` (positions in the published table,
margins included) and ``outcome`` maps each column to each row's flags
(``"ok"`` or ``"threshold; p-ratio; "``). Each file has a SHA-256 in
``checksums/<name>.txt``. The human summaries show the *protected* table, so
they can travel with it: flagged cells are marked, hidden cells say why.
"""

from __future__ import annotations

import hashlib
import html
import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sde import __version__
from sde.sdc.config import SDCConfig
from sde.sdc.rules import BY_ID, RULES

if TYPE_CHECKING:
    from sde.sdc.checked import CheckedTable
    from sde.sdc.outputs import CheckedOutput

#: The ACRO results.json version whose shape we write (SACRO-Viewer checks major.minor).
ACRO_FORMAT_VERSION = "1.0.2"


def _positions(mask: np.ndarray, offset: int = 0) -> list[list[int]]:
    return [[int(i), int(j) + offset] for i, j in np.argwhere(mask)]


def table_report(
    *,
    method: str,
    aggs: list[str | None],
    status: str,
    per_agg: list[dict[str, np.ndarray]],
    block_width: int,
    cfg: SDCConfig,
    units: str,
    protection: str,
    failing: np.ndarray,
    hidden: np.ndarray,
    findings: list[dict[str, Any]],
    dropped: int,
    audit: dict[str, Any] | None = None,
    margins: bool,
    dims: dict[str, list[str]],
) -> dict[str, Any]:
    """The report of a checked table (positions are in the assembled table)."""
    rules: dict[str, dict[str, Any]] = {}
    for rule in RULES:
        cells: list[list[int]] = []
        applied = False
        for block, masks in enumerate(per_agg):
            if rule.id in masks:
                applied = True
                cells += _positions(masks[rule.id], block * block_width)
        if not applied:
            continue
        rules[rule.id] = {
            "status": rule.severity if cells else "pass",
            "acro_check": rule.acro_check,
            "count": len(cells),
            "cells": cells,
            "explanation": rule.explanation,
        }
    secondary = hidden & ~failing if protection == "suppression" else np.zeros_like(hidden)
    width = len(per_agg)
    protection_report: dict[str, Any] = {
        "method": protection,
        "primary": [p for b in range(width) for p in _positions(hidden & failing, b * block_width)]
        if protection == "suppression"
        else [],
        "secondary": [p for b in range(width) for p in _positions(secondary, b * block_width)],
        "hidden": [p for b in range(width) for p in _positions(hidden, b * block_width)],
    }
    if audit is not None:
        protection_report["audit"] = audit
    notes = []
    if dropped:
        notes.append(f"{dropped} records with a missing label were left out, as pandas does")
    return {
        "method": method,
        "aggfunc": [a or "count" for a in aggs],
        "status": status,
        "summary": _summary(status, rules, protection_report),
        "units": units,
        "dimensions": dims,
        "margins": margins,
        "parameters": asdict(cfg),
        "rules": rules,
        "protection": protection_report,
        "differencing": findings,
        "records_left_out": dropped,
        "notes": notes,
    }


def _summary(status: str, rules: Mapping[str, Any], protection: Mapping[str, Any]) -> str:
    parts = [f"{rid}: {info['count']} cells" for rid, info in rules.items() if info["count"]]
    summary = status + ("; " + "; ".join(parts) if parts else "")
    if protection["method"] == "suppression" and protection["hidden"]:
        summary += (
            f"; suppressed {len(protection['primary'])} flagged and "
            f"{len(protection['secondary'])} complementary cells"
        )
    elif protection["method"] not in ("none", "suppression"):
        summary += f"; rounded ({protection['method']})"
    return summary


#: The only reason published for a hidden cell, whatever hid it. Any other would narrow
#: it down: ``zeros`` says it is 0, ``p-ratio`` without ``nk-dominance`` that every
#: contribution is 0, ``differencing`` that it is 1-9 away from an earlier cell, and
#: ``threshold`` (0-9) next to "complementary" (10 or more) bounds both kinds of cell.
PUBLIC_HIDDEN_REASON = "suppressed"

#: Rules never named in published output (they describe hidden cells only).
PRIVATE_RULES = frozenset({"unprotected"})


def public_flags(flags: pd.DataFrame, hidden: pd.DataFrame, protection: str) -> pd.DataFrame:
    """The reasons that may travel with the protected table.

    Every hidden cell reads ``suppressed`` and nothing else, flagged or
    complementary alike. A rounded cell keeps no reason (``zeros`` on a rounded
    0, or ``threshold`` on a rounded 10, would undo the rounding).
    """
    if protection == "none":
        return flags
    rounded = protection != "suppression"
    values = flags.to_numpy(dtype=object).copy()
    hide = hidden.to_numpy(dtype=bool)
    for i, j in np.argwhere(hide | rounded):
        values[i, j] = () if rounded else (PUBLIC_HIDDEN_REASON,)
    return pd.DataFrame(values, index=flags.index, columns=flags.columns)


def _public_rules(report: Mapping[str, Any], shown: np.ndarray) -> dict[str, dict[str, Any]]:
    """The rules with the published cells each flags (hidden cells flag none)."""
    rules: dict[str, dict[str, Any]] = {}
    for rid, info in report["rules"].items():
        if rid in PRIVATE_RULES:
            continue
        cells = [
            [i, j]
            for i in range(shown.shape[0])
            for j in range(shown.shape[1])
            if rid in shown[i, j]
        ]
        whole_table = not info["cells"] and info["status"] != "pass"  # e.g. ``empty``
        rules[rid] = {
            **info,
            "status": BY_ID[rid].severity if cells or whole_table else "pass",
            "count": len(cells),
            "cells": cells,
        }
    return rules


def _public_notes(report: Mapping[str, Any]) -> tuple[int | None, list[str]]:
    """Records left out, unless fewer than the threshold (a count about a group)."""
    threshold = int(report["parameters"]["threshold"])
    left_out = int(report.get("records_left_out") or 0)
    notes = [n for n in report.get("notes", []) if "missing label" not in n]
    if 0 < left_out < threshold:
        notes.append(
            f"fewer than {threshold} records with a missing label were left out, as pandas does"
        )
        return None, notes
    if left_out:
        notes.append(f"{left_out} records with a missing label were left out, as pandas does")
    return left_out, notes


def public_report(
    report: Mapping[str, Any], flags: pd.DataFrame, hidden: pd.DataFrame
) -> dict[str, Any]:
    """``report`` as it may travel with the protected table (what ``write()`` publishes).

    The checker's report (``CheckedTable.report``) holds every reason, which
    hidden cells are primary or complementary, the audit's unmet cells, the
    differencing findings (with the size of each difference) and the number of
    records left out; published, those give hidden cells away. Here every
    hidden cell is ``suppressed`` (:func:`public_flags`), rules count published
    cells only, differencing findings are left out, and a number of records
    left out below the threshold is not given.
    """
    method = report["protection"]["method"]
    shown = public_flags(flags, hidden, method).to_numpy(dtype=object)
    rules = _public_rules(report, shown)
    protection = {
        k: v for k, v in report["protection"].items() if k not in ("primary", "secondary")
    }
    if "audit" in protection:
        protection["audit"] = {
            k: v for k, v in protection["audit"].items() if k not in ("unmet", "unprotected")
        }
    left_out, notes = _public_notes(report)
    return {
        **report,
        "summary": _public_summary(report["status"], rules, protection),
        "rules": rules,
        "protection": protection,
        "differencing": [],
        "records_left_out": left_out,
        "notes": notes,
    }


def _public_summary(status: str, rules: Mapping[str, Any], protection: Mapping[str, Any]) -> str:
    parts = [
        f"{rid}: {info['count']} cells" if info["count"] else f"{rid}: the table"
        for rid, info in rules.items()
        if info["count"] or info["status"] != "pass"
    ]
    summary = status + ("; " + "; ".join(parts) if parts else "")
    if protection["method"] == "suppression" and protection["hidden"]:
        summary += f"; {PUBLIC_HIDDEN_REASON} {len(protection['hidden'])} cells"
    elif protection["method"] not in ("none", "suppression"):
        summary += f"; rounded ({protection['method']})"
    return summary


def sdc_block(report: Mapping[str, Any]) -> dict[str, Any]:
    """The ``sdc`` entry of a results.json file: counts and positions per rule."""
    summary: dict[str, Any] = {rid: info["count"] for rid, info in report["rules"].items()}
    cells: dict[str, Any] = {rid: info["cells"] for rid, info in report["rules"].items()}
    protection = report.get("protection", {})
    summary["suppressed"] = bool(protection.get("hidden"))  # ACRO's flag
    if protection.get("method") == "suppression":
        cells[PUBLIC_HIDDEN_REASON] = protection.get("hidden", [])
    return {"summary": summary, "cells": cells}


def _flat(label: Any) -> str:
    if isinstance(label, tuple):
        return " / ".join(str(p) for p in label if str(p) != "")
    return str(label)


def outcome_frame(flags: pd.DataFrame) -> pd.DataFrame:
    """ACRO's outcome table: ``"ok"`` or the flagging rules, ``"; "``-separated."""
    text = flags.map(lambda t: "".join(f"{r}; " for r in t) if t else "ok")
    text.index = [_flat(i) for i in text.index]
    text.columns = [_flat(c) for c in text.columns]
    return text


def _output_entry(uid: str, item: CheckedTable | CheckedOutput, files: list[str]) -> dict[str, Any]:
    report = getattr(item, "public_report", item.report)
    sdc = sdc_block(report)
    if hasattr(item, "public_flags"):
        outcome = json.loads(outcome_frame(item.public_flags).to_json())
        kind = "table"
    else:
        outcome = {}
        kind = str(report.get("type", "custom"))
    return {
        "uid": uid,
        "status": item.status,
        "type": kind,
        "properties": {
            "method": report.get("method", kind),
            "protection": report.get("protection", {}).get("method", "none"),
            "units": report.get("units"),
        },
        "files": [{"name": name, "sdc": sdc} for name in files],
        "outcome": outcome,
        "command": report.get("command", report.get("method", kind)),
        "summary": report["summary"],
        "timestamp": datetime.now().isoformat(),
        "comments": [],
        "exception": "",
        "fair": {"rules": {rid: info["status"] for rid, info in report["rules"].items()}},
    }


def results_document(
    outputs: Mapping[str, CheckedTable | CheckedOutput],
    files: Mapping[str, list[str] | None] | None = None,
) -> dict[str, Any]:
    """A whole ``results.json`` document for ``outputs`` (uid -> checked output)."""
    files = files or {}
    return {
        "version": ACRO_FORMAT_VERSION,
        "tool": {
            "@type": "SoftwareApplication",
            "name": "SDE Workbench output checking",
            "version": __version__,
        },
        "results": {
            uid: _output_entry(uid, item, files.get(uid) or [f"{uid}.csv"])
            for uid, item in outputs.items()
        },
    }


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_outputs(
    folder: str | Path,
    outputs: Mapping[str, CheckedTable | CheckedOutput],
    attachments: Mapping[str, Sequence[str | Path]] | None = None,
) -> Path:
    """Write each output's published file, ``results.json``, summaries and checksums.

    Tables are written as their protected form (``safe``) only; other outputs
    as JSON of what may be published. ``attachments`` lists files already made
    for an output (a figure's PNG): they are copied in and listed with it.
    Returns the path of ``results.json``.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, list[str] | None] = {}
    md_parts: list[str] = []
    for uid, item in outputs.items():
        if hasattr(item, "safe"):
            name = f"{uid}.csv"
            item.safe.to_csv(out / name)
        else:
            name = f"{uid}.json"
            (out / name).write_text(json.dumps(item.published, indent=2, default=str))
        files[uid] = [name]
        for extra in (attachments or {}).get(uid, []):
            source = Path(extra)
            if source.resolve() != (out / source.name).resolve():
                shutil.copyfile(source, out / source.name)
            files[uid] = [*(files[uid] or []), source.name]
        md_parts.append(f"## {uid}\n\n{item.to_markdown()}")
    results = out / "results.json"
    results.write_text(json.dumps(results_document(outputs, files), indent=4))
    (out / "summary.md").write_text("# Output checking summary\n\n" + "\n\n".join(md_parts))
    (out / "summary.html").write_text(
        _page("Output checking summary", "".join(i.to_html() for i in outputs.values()))
    )
    sums = out / "checksums"
    sums.mkdir(exist_ok=True)
    for path in sorted(out.iterdir()):
        if path.is_file():
            (sums / f"{path.name}.txt").write_text(_sha256(path))
    return results


def _cell_text(value: Any) -> str:
    if isinstance(value, float) and np.isnan(value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _annotated(table: CheckedTable) -> list[list[tuple[str, str, str]]]:
    """Per cell of ``safe``: (text, css class, why) with flags and hiding explained."""
    safe = table.safe.to_numpy()
    flags = table.public_flags.to_numpy()
    hidden = table.hidden.to_numpy()
    rows: list[list[tuple[str, str, str]]] = []
    for i in range(safe.shape[0]):
        row: list[tuple[str, str, str]] = []
        for j in range(safe.shape[1]):
            rule_ids = flags[i, j]
            if hidden[i, j]:
                row.append((PUBLIC_HIDDEN_REASON, "hidden", PUBLIC_HIDDEN_REASON))
            elif rule_ids:
                row.append((_cell_text(safe[i, j]), "flagged", ", ".join(rule_ids)))
            else:
                row.append((_cell_text(safe[i, j]), "", ""))
        rows.append(row)
    return rows


def _rules_lines(report: Mapping[str, Any]) -> list[str]:
    lines = ["| rule | status | cells | why |", "| --- | --- | --- | --- |"]
    for rid, info in report["rules"].items():
        lines.append(f"| {rid} | {info['status']} | {info['count']} | {info['explanation']} |")
    return lines


def markdown_summary(table: CheckedTable) -> str:
    """Status, rule results, and the protected table with flagged cells marked (public)."""
    report = table.public_report
    cols = [_flat(c) for c in table.safe.columns]
    lines = [
        f"**Status: {table.status}** ({report['method']}, {', '.join(report['aggfunc'])}, "
        f"units: {report['units']}, protection: {report['protection']['method']})",
        "",
        report["summary"],
        "",
        *_rules_lines(report),
        "",
        "| " + " | ".join(["", *cols]) + " |",
        "| " + " | ".join(["---"] * (len(cols) + 1)) + " |",
    ]
    for label, row in zip(table.safe.index, _annotated(table), strict=True):
        cells = []
        for text, css, why in row:
            if css == "hidden":
                cells.append(f"~~{text}~~")
            elif css == "flagged":
                cells.append(f"**{text}** ⚠ {why}")
            else:
                cells.append(text)
        lines.append("| " + " | ".join([_flat(label), *cells]) + " |")
    for f in report.get("differencing", []):
        lines.append(
            f"\n- cell {f['cell']} differs by {f['difference']} from cell "
            f"{f['earlier_cell']} of earlier release '{f['release']}'"
        )
    for note in report.get("notes", []):
        lines.append(f"\n- {note}")
    return "\n".join(lines) + "\n"


_STYLE = (
    "table{border-collapse:collapse}td,th{border:1px solid #999;padding:2px 6px}"
    ".flagged{background:#fdd}.hidden{background:#f99}"
)


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def html_summary(table: CheckedTable) -> str:
    """An HTML fragment: status, rules, and the protected table with flagged cells coloured."""
    report = table.public_report
    esc = html.escape
    head = "".join(f"<th>{esc(_flat(c))}</th>" for c in table.safe.columns)
    body_rows = []
    for label, row in zip(table.safe.index, _annotated(table), strict=True):
        tds = "".join(
            f"<td class='{css}' title='{esc(why)}'>{esc(text)}</td>" if css else f"<td>{text}</td>"
            for text, css, why in row
        )
        body_rows.append(f"<tr><th>{esc(_flat(label))}</th>{tds}</tr>")
    rules = "".join(
        f"<tr><td>{esc(rid)}</td><td>{esc(info['status'])}</td><td>{info['count']}</td>"
        f"<td>{esc(info['explanation'])}</td></tr>"
        for rid, info in report["rules"].items()
    )
    return (
        f"<section><p><strong>Status: {esc(table.status)}</strong> {esc(report['summary'])}</p>"
        f"<table><tr><th>rule</th><th>status</th><th>cells</th><th>why</th></tr>{rules}</table>"
        f"<p></p><table><tr><th></th>{head}</tr>{''.join(body_rows)}</table></section>"
    )


def rules_known() -> list[str]:
    """Every rule id a report can name (for readers that validate)."""
    return [r.id for r in RULES] + [PUBLIC_HIDDEN_REASON]


__all__ = [
    "ACRO_FORMAT_VERSION",
    "BY_ID",
    "html_summary",
    "markdown_summary",
    "public_flags",
    "public_report",
    "results_document",
    "rules_known",
    "sdc_block",
    "table_report",
    "write_outputs",
]
