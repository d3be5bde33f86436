"""Every documented exit status, through the real ``sde`` entry point (not CliRunner).

CliRunner runs click in standalone mode, which hides a bug the installed script had:
``main()`` dropped the status a command returned, so a broken audit log or a failing
table exited 0. These tests run ``python -m sde.cli`` as a user's shell would.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from sde.audit import AuditLog, AuditRecord
from sde.registry.audit_log import AuditEntry
from sde.registry.db import open_registry, registry_url_beside


def _sde(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sde.cli", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
    )


def _registry_with_entries(folder: Path, n: int = 3) -> str:
    url = registry_url_beside(folder)
    log = AuditLog(open_registry(url))
    for i in range(n):
        log.append(
            AuditRecord("ada", "p", "1", "sql", f"SELECT {i}", outcome="ok", duration_ms=1.0)
        )
    return url


def test_audit_verify_intact_exits_0(tmp_path: Path) -> None:
    _registry_with_entries(tmp_path)
    out = _sde("audit", "verify", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "intact: 3 entries" in out.stdout


def test_audit_verify_tampered_exits_1(tmp_path: Path) -> None:
    url = _registry_with_entries(tmp_path)
    with Session(open_registry(url)) as session:
        session.execute(update(AuditEntry).where(AuditEntry.seq == 2).values(sql="SELECT 42"))
        session.commit()
    out = _sde("audit", "verify", str(tmp_path))
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert "BROKEN" in out.stdout
    assert "entry 2 was changed" in out.stdout


def test_audit_verify_without_argument_exits_2(tmp_path: Path) -> None:
    out = _sde("audit", "verify", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().startswith("error: ")
    assert list(tmp_path.iterdir()) == []


def test_audit_verify_where_no_registry_exists_exits_2_and_creates_nothing(
    tmp_path: Path,
) -> None:
    out = _sde("audit", "verify", str(tmp_path))
    assert out.returncode == 2, out.stdout
    assert "no registry" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def _records(tmp_path: Path, small_cell: bool) -> Path:
    n_small = 4 if small_cell else 14
    df = pd.DataFrame(
        {
            "sex": ["F"] * 30 + ["M"] * (13 + n_small),
            "ward": ["A"] * 12 + ["B"] * 18 + ["A"] * n_small + ["B"] * 13,
        }
    )
    path = tmp_path / "records.csv"
    df.to_csv(path, index=False)
    return path


def test_sdc_check_pass_exits_0(tmp_path: Path) -> None:
    out = _sde("sdc", "check", str(_records(tmp_path, False)), "-i", "sex", "-c", "ward")
    assert out.returncode == 0, out.stdout
    assert "Status: pass" in out.stdout


def test_sdc_check_fail_exits_1(tmp_path: Path) -> None:
    out = _sde("sdc", "check", str(_records(tmp_path, True)), "-i", "sex", "-c", "ward")
    assert out.returncode == 1, out.stdout
    assert "Status: fail" in out.stdout


def test_sdc_check_review_exits_3(tmp_path: Path) -> None:
    df = pd.DataFrame({"sex": ["F"] * 20 + ["M"] * 20, "bmi": [20.0] * 19 + [-5.0] + [25.0] * 20})
    path = tmp_path / "neg.csv"
    df.to_csv(path, index=False)
    out = _sde("sdc", "check", str(path), "-i", "sex", "--values", "bmi", "--aggfunc", "sum")
    assert out.returncode == 3, out.stdout
    assert "Status: review" in out.stdout


@pytest.mark.parametrize(
    "content",
    [
        "# a heading\n\nsome prose\nwith, commas, here, and, more\n",  # ragged, not a table
        "",  # empty file
        "\x00\x01\x02binary",
    ],
)
def test_sdc_check_on_a_file_that_is_not_a_table_is_one_line(tmp_path: Path, content: str) -> None:
    path = tmp_path / "notes.csv"
    path.write_text(content)
    out = _sde("sdc", "check", str(path), "--index", "ward")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert str(path) in lines[0]


@pytest.mark.parametrize("args", [(), ("audit",), ("sdc",)])
def test_bare_groups_print_help_once(args: tuple[str, ...]) -> None:
    out = _sde(*args)
    assert out.returncode == 0
    assert out.stdout.count("Usage:") == 1, out.stdout
