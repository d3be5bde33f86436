"""``sde synth`` on the command line: a summary, or one line and exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def _sde(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sde.cli", "synth", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_writes_the_nodes_and_prints_a_summary(tmp_path: Path) -> None:
    out = tmp_path / "pop"
    done = _sde(
        "--persons", "300", "--nodes", "2", "--seed", "3", "--out", str(out), "--no-progress"
    )
    assert done.returncode == 0, done.stderr
    assert "lth" in done.stdout
    assert "elht" in done.stdout
    assert "prevalence" in done.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["persons"] == 300
    assert manifest["seed"] == 3


def _one_line_error(done: subprocess.CompletedProcess[str], needle: str) -> None:
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ")
    assert needle in lines[0]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--persons", "-5"), "persons"),
        (("--persons", "0"), "persons"),
        (("--nodes", "9"), "nodes"),
        (("--seed", "-1"), "seed"),
    ],
)
def test_bad_numbers_give_one_line(tmp_path: Path, args: tuple[str, ...], needle: str) -> None:
    _one_line_error(_sde(*args, "--out", str(tmp_path / "x")), needle)
    assert not (tmp_path / "x").exists()


def test_an_output_path_under_a_file_gives_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    _one_line_error(_sde("--persons", "10", "--out", str(blocker / "pop")), str(blocker))
    _one_line_error(_sde("--persons", "10", "--out", str(blocker)), "not a folder")


def test_a_non_empty_folder_needs_force(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    _one_line_error(_sde("--persons", "10", "--out", str(tmp_path)), "--force")
    done = _sde("--persons", "10", "--out", str(tmp_path), "--force", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "notes.txt").read_text() == "keep me"
