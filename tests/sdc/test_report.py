"""Reports: ACRO's results.json shape (what SACRO-Viewer reads), checksums, summaries."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from sde import sdc


def small_table() -> sdc.CheckedTable:
    df = pd.DataFrame(
        {"sex": ["F"] * 30 + ["M"] * 27, "ward": ["A"] * 12 + ["B"] * 18 + ["A"] * 4 + ["B"] * 23}
    )
    return sdc.crosstab(df.sex, df.ward, margins=True)


def sacro_viewer_reads(path: Path) -> dict[str, dict[str, list[str]]]:
    """What SACRO-Viewer checks when it opens a results.json, and its cell index."""
    raw = json.loads(path.read_text())
    assert "version" in raw
    assert "results" in raw
    major, minor, *_ = raw["version"].split(".")
    assert (int(major), int(minor)) >= (0, 4)
    index: dict[str, dict[str, list[str]]] = {}
    for uid, result in raw["results"].items():
        assert result["files"]
        for key in ("status", "type", "properties", "outcome", "command", "summary"):
            assert key in result, key
        for filedata in result["files"]:
            checksum = (path.parent / "checksums" / f"{filedata['name']}.txt").read_text()
            actual = hashlib.sha256((path.parent / filedata["name"]).read_bytes()).hexdigest()
            assert checksum == actual
            cells: dict[str, list[str]] = defaultdict(list)
            for flag, positions in filedata.get("sdc", {}).get("cells", {}).items():
                for x, y in positions:
                    cells[f"{x},{y}"].append(flag)
            index[uid] = dict(cells)
    return index


def test_results_json_opens_in_the_viewer_shape(tmp_path: Path) -> None:
    t = small_table()
    results = t.write(tmp_path, uid="sex_by_ward")
    index = sacro_viewer_reads(results)
    # Every hidden cell, flagged (the 4) or complementary, has the one published reason
    # "suppressed": "threshold" (< 10) vs complementary (>= 10) would narrow it.
    hidden = np.argwhere(t.hidden.to_numpy()).tolist()
    assert [1, 0] in hidden
    for x, y in hidden:
        assert index["sex_by_ward"][f"{x},{y}"] == ["suppressed"]
    entry = json.loads(results.read_text())["results"]["sex_by_ward"]
    assert entry["status"] == "fail"
    summary = entry["files"][0]["sdc"]["summary"]
    assert summary["suppressed"] is True  # ACRO's flag; the positions are under "cells"
    assert len(entry["files"][0]["sdc"]["cells"]["suppressed"]) == len(hidden)
    assert summary["threshold"] == 0
    assert "secondary-suppression" not in summary
    assert entry["outcome"]["A"]["M"] == "suppressed; "
    for x, y in hidden:  # (d) a blank cell of the CSV is never "ok" in results.json
        column, row = t.safe.columns[y], t.safe.index[x]
        assert entry["outcome"][str(column)][str(row)] == "suppressed; "
    shown = np.argwhere(~t.hidden.to_numpy()).tolist()
    assert shown
    for x, y in shown:
        column, row = t.safe.columns[y], t.safe.index[x]
        assert entry["outcome"][str(column)][str(row)] == "ok"
    assert "threshold" not in entry["summary"]
    assert "complementary" not in entry["summary"]


def test_the_checkers_report_keeps_the_reasons() -> None:
    t = small_table()
    assert t.report["rules"]["threshold"]["cells"] == [[1, 0]]
    assert t.report["protection"]["primary"] == [[1, 0]]
    assert t.report["protection"]["secondary"]
    public = t.public_report["protection"]
    assert "primary" not in public
    assert "secondary" not in public
    assert public["hidden"] == t.report["protection"]["hidden"]


def test_only_the_protected_table_is_written(tmp_path: Path) -> None:
    t = small_table()
    t.write(tmp_path)
    written = pd.read_csv(tmp_path / "output_0.csv", index_col=0)
    assert written.isna().to_numpy().sum() == t.hidden.to_numpy().sum()
    text = (tmp_path / "summary.md").read_text() + (tmp_path / "summary.html").read_text()
    assert "| 4 " not in text
    assert ">4<" not in text


def test_markdown_and_html_mark_flagged_and_hidden_cells() -> None:
    df = pd.DataFrame(
        {"g": ["a"] * 12 + ["b"] * 30, "c": "x", "v": [1.0] * 11 + [np.nan] + [2.0] * 30}
    )
    t = sdc.pivot_table(df, values="v", index="g", columns="c", aggfunc="mean")
    md = t.to_markdown()
    assert "**1** ⚠ missing" in md
    assert "**Status: review**" in md
    html = t.to_html()
    assert "class='flagged'" in html
    assert "title='missing'" in html
    hidden = small_table().to_markdown()
    assert "~~suppressed~~" in hidden
    assert "(threshold)" not in hidden
    assert "complementary" not in hidden
    assert "class='secondary'" not in small_table().to_html()


def test_other_outputs_share_the_document(tmp_path: Path) -> None:
    bars = sdc.check_counts(pd.Series({"F": 30, "M": 9}))
    results = sdc.write_outputs(tmp_path, {"table": small_table(), "bars": bars})
    index = sacro_viewer_reads(results)
    assert index["bars"]["1,0"] == ["threshold"]
    doc = json.loads(results.read_text())
    assert doc["results"]["bars"]["type"] == "bar chart"
