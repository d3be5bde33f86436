"""``sde load``: bad input gets one line and exit 2; good input loads every node."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sde.backends.duckdb import DuckDBBackend
from sde.backends.pg_local import LocalPostgres, free_port
from sde.backends.postgresql import PostgresBackend
from sde.backends.spark import SparkBackend
from sde.cli import main


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = 0
    try:
        main(list(argv))
    except SystemExit as exited:
        code = int(exited.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--backend", "oracle", "--node", "x.duckdb"], "unknown backend 'oracle'"),
        (["--node", "x.duckdb"], "--backend is required"),
        (
            ["--backend", "spark", "--node", "/nonexistent/lth.duckdb", "--warehouse", "w"],
            "no node file or folder at /nonexistent/lth.duckdb",
        ),
        (["--backend", "spark"], "--node is required"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    code, _, err = run_cli(capsys, "load", *argv)
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith("error: ")
    assert expected in err


def test_missing_target_options(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = tmp_path / "lth.duckdb"
    DuckDBBackend(node).close()
    monkeypatch.delenv("SDE_PG_URL", raising=False)
    code, _, err = run_cli(capsys, "load", "--backend", "postgresql", "--node", str(node))
    assert code == 2
    assert "--url is required" in err
    code, _, err = run_cli(capsys, "load", "--backend", "spark", "--node", str(node))
    assert code == 2
    assert "--warehouse is required" in err
    code, _, err = run_cli(
        capsys,
        "load",
        "--backend",
        "spark",
        "--node",
        str(tmp_path),
        "--warehouse",
        str(tmp_path / "w"),
        "--schema",
        "x",
    )
    assert code == 2
    assert "--schema applies to one node file" in err


def test_unreachable_server_is_one_line_without_the_password(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    node = tmp_path / "lth.duckdb"
    DuckDBBackend(node).close()
    url = f"postgresql://sde:hunter2@127.0.0.1:{free_port()}/sde"
    code, _, err = run_cli(
        capsys, "load", "--backend", "postgresql", "--node", str(node), "--url", url
    )
    assert code == 2
    assert err.count("\n") == 1
    assert "postgresql.unreachable" in err
    assert "hunter2" not in err


def test_the_real_command_never_shows_a_traceback() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sde.cli", "load", "--backend", "oracle", "--node", "x"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0


@pytest.mark.postgres
def test_load_a_synth_folder_into_postgresql(
    capsys: pytest.CaptureFixture[str], synth_dir: Path, pg_server: LocalPostgres
) -> None:
    url = pg_server.create_database("cli_load")
    code, out, _ = run_cli(
        capsys,
        "load",
        "--backend",
        "postgresql",
        "--node",
        str(synth_dir),
        "--url",
        url,
        "--no-progress",
    )
    assert code == 0
    nodes = sorted(p.stem for p in synth_dir.glob("*.duckdb"))
    assert len(out.strip().splitlines()) == len(nodes) == 3
    for name in nodes:
        source = DuckDBBackend(synth_dir / f"{name}.duckdb", read_only=True)
        target = PostgresBackend(url, schema=name)
        persons = target.query("SELECT COUNT(*) AS n FROM person")["n"].tolist()
        assert persons == [source.row_count("person")]
        source.close()
        target.close()


@pytest.mark.spark
def test_load_one_node_into_spark_under_another_name(
    capsys: pytest.CaptureFixture[str], synth_node: Path, tmp_path: Path, spark: object
) -> None:
    code, out, _ = run_cli(
        capsys,
        "load",
        "--backend",
        "spark",
        "--node",
        str(synth_node),
        "--warehouse",
        str(tmp_path),
        "--schema",
        "lancs",
        "--no-progress",
    )
    assert code == 0
    assert "lancs" in out
    target = SparkBackend(tmp_path, "lancs", session=spark)  # type: ignore[arg-type]
    source = DuckDBBackend(synth_node, read_only=True)
    persons = target.query("SELECT COUNT(*) AS n FROM person")["n"].tolist()
    assert persons == [source.row_count("person")]
    source.close()
