"""Alembic environment of the registry: always run from :func:`sde.registry.migrate.upgrade`.

The caller hands over an open SQLAlchemy connection in ``config.attributes["connection"]``;
there is no ``alembic.ini`` and no URL here, so a migration can never run against a
database other than the one the workbench opened.
"""

from __future__ import annotations

from alembic import context

from sde.registry.db import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
