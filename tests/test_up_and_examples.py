"""`sde tour` (the embedded walkthrough) and the runnable examples work end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=600
    )


def test_sde_tour_synthesises_queries_and_refuses(tmp_path: Path) -> None:
    out = _run("-m", "sde.cli", "tour", "--workdir", str(tmp_path), "--persons", "1500")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "data" / "manifest.json").exists()
    assert (tmp_path / "htn-deprivation.scope.yaml").exists()
    text = " ".join(out.stdout.split())  # rich wraps long lines
    assert "nodes: lth, elht, umbh" in text
    assert "refused [columns.not-allowed] column person_source_value" in text
    assert "persons with atrial fibrillation by decile and sex: status" in text
    assert (tmp_path / "outputs" / "results.json").exists()
    assert (tmp_path / "htn-by-imd-decile.png").stat().st_size > 10_000
    assert "privacy budget: spent 0.5 of 3 epsilon" in text
    assert "The tour is over" in text
    # A second run reuses the population instead of synthesising it again.
    again = _run("-m", "sde.cli", "tour", "--workdir", str(tmp_path), "--persons", "1500")
    assert again.returncode == 0, again.stderr
    again_text = " ".join(again.stdout.split())
    assert "reusing the demo population" in again_text
    assert "privacy budget: spent 0.5 of 3 epsilon" in again_text  # the repeat was free


def test_researcher_quickstart_runs(tmp_path: Path) -> None:
    out = _run(
        str(ROOT / "examples" / "researcher_quickstart.py"),
        "--persons",
        "1500",
        "--out",
        str(tmp_path),
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "ScopeViolation" in out.stdout or "refused" in out.stdout.lower()
