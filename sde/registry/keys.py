"""Registry table ``project_keys``: each project's pseudonymisation key.

A 32-byte random key per project, created on first use. The key never leaves
the registry's process: engines receive only per-node, per-namespace subkeys
(:mod:`sde.pseudonym`), and it is never logged, shown or returned by an API.
"""

from __future__ import annotations

import datetime as dt
import secrets

from sqlalchemy import DateTime, Engine, LargeBinary, String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from sde.registry.db import Base


class ProjectKey(Base):
    __tablename__ = "project_keys"

    project: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[bytes] = mapped_column(LargeBinary(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:  # never show the key
        return f"ProjectKey(project={self.project!r})"


def project_key(engine: Engine, project: str) -> bytes:
    """The project's key, created (32 random bytes) if it has none yet."""
    with Session(engine) as session:
        found = session.scalar(select(ProjectKey.key).where(ProjectKey.project == project))
        if found is not None:
            return bytes(found)
        key = secrets.token_bytes(32)
        session.add(ProjectKey(project=project, key=key, created_at=dt.datetime.now(dt.UTC)))
        try:
            session.commit()
            return key
        except IntegrityError:  # another process created it first
            session.rollback()
            found = session.scalar(select(ProjectKey.key).where(ProjectKey.project == project))
            if found is None:
                raise
            return bytes(found)
