"""The registry's schema is made and changed only by its Alembic migrations.

Three starting points, on SQLite and PostgreSQL: an empty database, a registry made by the
first milestone's code (``tests/fixtures/registry_v1.*.sql``: its ``create_all`` schema and a
few rows, dumped from that code), and one already at the newest revision. Each ends at the
head with every model's table and column in place (Alembic's own comparison finds no
difference), the old rows intact and the old audit chain still verifying.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.orm import Session

from sde.audit import AuditLog, AuditRecord
from sde.errors import ConfigurationError
from sde.registry import open_registry
from sde.registry.db import Base
from sde.registry.keys import ProjectKey
from sde.registry.migrate import current, head, upgrade

FIXTURES = Path(__file__).parent / "fixtures"


def _url_of(pg: Any, dbname: str) -> str:
    return f"postgresql+psycopg://{pg.user}@{pg.host}:{pg.port}/{dbname}"


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.sqlite'}"
        return
    pg = request.getfixturevalue("pg_server")
    dsn = pg.create_database()
    yield _url_of(pg, dsn.rsplit("dbname=", 1)[1])


def _load_v1(url: str) -> None:
    """Fill the empty database at ``url`` as the first milestone's code left a registry."""
    if url.startswith("sqlite"):
        con = sqlite3.connect(url.removeprefix("sqlite:///"))
        con.executescript((FIXTURES / "registry_v1.sqlite.sql").read_text())
        con.close()
        return
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute((FIXTURES / "registry_v1.postgresql.sql").read_text())  # type: ignore[arg-type]


def _schema_differences(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))


def test_an_empty_database_is_created_at_head(empty_db: str) -> None:
    engine = open_registry(empty_db)
    assert current(engine) == head()
    assert _schema_differences(engine) == []


def test_a_registry_made_by_the_first_milestone_is_stamped_and_upgraded(empty_db: str) -> None:
    _load_v1(empty_db)
    plain = create_engine(empty_db)
    assert current(plain) is None
    engine = open_registry(empty_db)
    assert current(engine) == head()
    assert _schema_differences(engine) == []
    with Session(engine) as session:
        keys = session.scalars(select(ProjectKey.project)).all()
        assert keys == ["htn-deprivation"]
        budget = session.execute(text("SELECT epsilon_spent FROM dp_budget")).scalar_one()
        assert budget == 500_000_000_000  # 0.5 in 1e-12 units
        assert session.execute(text("SELECT count(*) FROM sdc_releases")).scalar_one() == 1
    log = AuditLog(engine)
    assert log.verify().ok
    assert log.verify().entries == 3
    log.append(AuditRecord.event("ada", "request.submit", "request:1", details={"files": 2}))
    result = log.verify()
    assert result.ok, result.problems
    assert result.entries == 4


def test_upgrading_twice_changes_nothing(empty_db: str) -> None:
    engine = open_registry(empty_db)
    AuditLog(engine).append(AuditRecord.event("ada", "login", "user:ada"))
    assert upgrade(create_engine(empty_db)) == head()
    assert AuditLog(engine).verify().entries == 1


def test_a_database_holding_some_other_schema_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'other.sqlite'}"
    con = sqlite3.connect(tmp_path / "other.sqlite")
    con.execute("CREATE TABLE audit_log (id INTEGER)")
    con.close()
    with pytest.raises(ConfigurationError) as info:
        open_registry(url)
    assert info.value.rule == "registry.unknown-schema"
    assert "project_keys" in info.value.message


def test_registry_commands(tmp_path: Path) -> None:
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'r.sqlite'}"

    def sde_(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sde.cli", "registry", *args, "--registry", url],
            capture_output=True,
            text=True,
            check=False,
        )

    behind = sde_("status")
    assert behind.returncode == 1
    assert "not managed yet" in behind.stdout
    up = sde_("upgrade")
    assert up.returncode == 0, up.stderr
    assert f"to {head()}" in up.stdout
    assert sde_("status").returncode == 0
