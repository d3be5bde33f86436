"""Registry table ``project_keys``: each project's pseudonymisation key.

A 32-byte random key per project, created on first use. :class:`KeyStore` owns the
table: nothing else reads or writes it. The key never leaves the registry's process:
engines receive only per-node, per-namespace subkeys (:mod:`sde.pseudonym`), and it is
never logged, shown or returned by an API.
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


class KeyStore:
    """The ``project_keys`` table of one registry: the one way to a project's key."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def project_key(self, project: str) -> bytes:
        """The project's key, created (32 random bytes) if it has none yet."""
        with Session(self.engine) as session:
            found = self._find(session, project)
            if found is not None:
                return found
            key = secrets.token_bytes(32)
            session.add(ProjectKey(project=project, key=key, created_at=dt.datetime.now(dt.UTC)))
            try:
                session.commit()
                return key
            except IntegrityError:  # another process created it first
                session.rollback()
                found = self._find(session, project)
                if found is None:
                    raise
                return found

    @staticmethod
    def _find(session: Session, project: str) -> bytes | None:
        found = session.scalar(select(ProjectKey.key).where(ProjectKey.project == project))
        return None if found is None else bytes(found)

    def __repr__(self) -> str:
        return f"KeyStore({self.engine.url.render_as_string(hide_password=True)!r})"
