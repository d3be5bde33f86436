"""Bring a registry's schema to the newest revision (Alembic), once per database per process.

Three cases, told apart by what the database holds:

* empty: every revision runs, creating the schema;
* made by the first milestone's code (its tables, no ``alembic_version``): stamped at
  revision ``0001``, whose schema it has, then upgraded;
* managed: upgraded from its recorded revision (nothing to do when current).

>>> from sqlalchemy import create_engine
>>> engine = create_engine("sqlite://")
>>> upgrade(engine) == head()
True
"""

from __future__ import annotations

import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

from sde.errors import ConfigurationError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_LOCK = threading.Lock()
#: PostgreSQL advisory lock key of registry migrations ("sde-migr" in ASCII).
_PG_LOCK_KEY = 0x7364652D6D696772


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head() -> str:
    """The newest revision this code knows."""
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None  # noqa: S101 (the package always ships its migrations)
    return revision


def current(engine: Engine) -> str | None:
    """The revision the database is at (None: not managed by Alembic yet)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> str:
    """Upgrade ``engine``'s registry to :func:`head`; the revision it ends at."""
    from sde.registry.migrations.versions.r0001_baseline import TABLES

    config = _config()
    with _LOCK, engine.connect() as conn:
        _lock(conn)  # services starting together upgrade one at a time
        config.attributes["connection"] = conn
        tables = set(inspect(conn).get_table_names())
        at = MigrationContext.configure(conn).get_current_revision()
        if at is None and tables & set(TABLES):
            missing = set(TABLES) - tables
            if missing:
                raise ConfigurationError(
                    "registry.unknown-schema",
                    f"the registry at {engine.url.render_as_string(hide_password=True)} has "
                    f"some of the workbench's tables but not {sorted(missing)}: "
                    "it was not made by this software; refusing to change it",
                )
            command.stamp(config, "0001")
        command.upgrade(config, "head")
        conn.commit()
    return current(engine) or ""


def _lock(conn: Connection) -> None:
    """Hold the database's migration lock until ``conn``'s transaction ends."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
