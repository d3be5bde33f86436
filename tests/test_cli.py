"""The command-line shell: every error is one line and a non-zero exit, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sde.cli.bench import available


def _sde(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sde.cli", *args], capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("bogus",), "No such command 'bogus'"),
        (("synth", "--persons", "abc", "--out", "x"), "Invalid value for '--persons'"),
        (("synth", "--nope"), "No such option: --nope"),
        (("bench", "nope"), f"unknown benchmark 'nope'; choose one of {', '.join(available())}"),
    ],
)
def test_usage_errors_are_one_line(args: tuple[str, ...], expected: str) -> None:
    out = _sde(*args)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: ")
    assert expected in lines[0]


def test_bare_command_prints_help() -> None:
    out = _sde()
    assert out.returncode == 0
    assert "synth" in out.stdout
