"""The registry's database: one SQLAlchemy metadata, SQLite by default, PostgreSQL in production.

Each part of the registry (project keys, audit log, budget ledger, users...)
declares its tables in its own module on :class:`Base`; the schema itself is made
and changed only by the Alembic migrations in ``sde/registry/migrations/``, which
:func:`open_registry` applies once per database per process. In embedded mode the
registry is a SQLite file beside the data, so a researcher needs no set-up.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import DeclarativeBase

DEFAULT_FILENAME = "sde-registry.sqlite"


class Base(DeclarativeBase):
    """Declarative base of every registry table."""


def registry_url_beside(data_path: str | Path) -> str:
    """The default registry URL for data at ``data_path`` (a node file or a folder)."""
    path = Path(data_path)
    folder = path if path.is_dir() else path.parent
    return f"sqlite:///{(folder / DEFAULT_FILENAME).resolve()}"


#: Registries already brought to the newest revision by this process.
_UPGRADED: set[str] = set()


def open_registry(url: str) -> Engine:
    """An engine for the registry at ``url``, its schema at the newest revision."""
    from sde.registry import migrate

    engine = registry_engine(url)
    key = engine.url.render_as_string(hide_password=False)
    if key not in _UPGRADED or url in {"sqlite://", "sqlite:///:memory:"}:
        migrate.upgrade(engine)
        _UPGRADED.add(key)
    return engine


def registry_engine(url: str) -> Engine:
    """An engine for ``url`` with the registry's connection settings; no schema change."""
    # Import the table modules so their classes are on Base.metadata.
    import sde.registry.tables  # noqa: F401

    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

    else:
        engine = create_engine(url, pool_pre_ping=True)
    return engine
