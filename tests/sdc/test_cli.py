"""``sde sdc check`` on a CSV of records."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from sde.cli import app


def write_csv(tmp_path: Path) -> Path:
    df = pd.DataFrame(
        {
            "sex": ["F"] * 30 + ["M"] * 27,
            "ward": ["A"] * 12 + ["B"] * 18 + ["A"] * 4 + ["B"] * 23,
            "bmi": [25.0] * 57,
        }
    )
    path = tmp_path / "records.csv"
    df.to_csv(path, index=False)
    return path


def test_check_prints_the_verdict_and_exits_by_status(tmp_path: Path) -> None:
    path = write_csv(tmp_path)
    out = CliRunner().invoke(
        app, ["sdc", "check", str(path), "--index", "sex", "--columns", "ward"]
    )
    assert out.exit_code == 1, out.output
    assert "Status: fail" in out.output
    ok = CliRunner().invoke(app, ["sdc", "check", str(path), "--index", "sex"])
    assert ok.exit_code == 0, ok.output


def test_check_values_json_and_out_folder(tmp_path: Path) -> None:
    path = write_csv(tmp_path)
    folder = tmp_path / "out"
    args = ["sdc", "check", str(path), "-i", "sex", "-c", "ward", "--values", "bmi"]
    out = CliRunner().invoke(app, [*args, "--aggfunc", "mean", "--json", "--out", str(folder)])
    report = json.loads(out.output)
    assert report["aggfunc"] == ["mean"]
    assert (folder / "results.json").exists()
    assert (folder / "output_0.csv").exists()


def test_unknown_column_is_one_line_error(tmp_path: Path) -> None:
    from sde.cli import main

    path = write_csv(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["sdc", "check", str(path), "--index", "nope"])
    assert exit_.value.code == 2


def test_json_and_out_publish_the_public_report_only(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = write_csv(tmp_path)
    folder = tmp_path / "release"
    args = ["sdc", "check", str(path), "-i", "sex", "-c", "ward", "--margins"]
    run = subprocess.run(
        [sys.executable, "-m", "sde.cli", *args, "--json", "--out", str(folder)],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert run.returncode == 1, run.stderr
    printed = json.loads(run.stdout)
    assert "primary" not in printed["protection"]
    assert "secondary" not in printed["protection"]
    assert printed["rules"]["threshold"]["cells"] == []  # the 4 is hidden: "suppressed"
    assert "threshold" not in printed["summary"]
    written = (folder / "results.json").read_text() + (folder / "summary.md").read_text()
    assert "threshold; " not in written
    assert "complementary" not in written
    assert "secondary" not in written
    human = subprocess.run(
        [sys.executable, "-m", "sde.cli", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert "~~suppressed~~" in human.stdout
    assert "(threshold)" not in human.stdout
