"""Registry tables of projects: ``projects``, ``approval_versions`` and ``memberships``.

A project is a slug with a status (``active``, ``suspended``, ``revoked``, ``expired``)
and an expiry. Each approval (the first, then every approved amendment) is a numbered
version holding the compiled scope file as canonical JSON; the newest version is the
project's scope and budget in hosted mode. Memberships say who works on it. The rules
are in :mod:`sde.accounts.projects`.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from sde.registry.db import Base


class Project(Base):
    __tablename__ = "projects"

    slug: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(16))
    #: Why the status last changed (the admin's reason); None while never changed.
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    status_changed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    #: The last day the project may be used (the newest approval's ``expires``).
    expires: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(64))


class ApprovalVersion(Base):
    __tablename__ = "approval_versions"

    project: Mapped[str] = mapped_column(
        ForeignKey("projects.slug", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    #: The compiled scope file (``Scope.to_dict()``) as canonical JSON.
    scope: Mapped[str] = mapped_column(Text)
    #: ``Scope.version``: the SHA-256 of the canonical scope, as audit records name it.
    scope_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(64))
    #: Where the approval came from (``application:3``) or an admin's note.
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


class Membership(Base):
    __tablename__ = "memberships"

    project: Mapped[str] = mapped_column(
        ForeignKey("projects.slug", ondelete="CASCADE"), primary_key=True
    )
    username: Mapped[str] = mapped_column(
        ForeignKey("users.username", ondelete="CASCADE"), primary_key=True, index=True
    )
    #: ``pi`` (the principal investigator) or ``member``.
    role: Mapped[str] = mapped_column(String(16))
    added_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    added_by: Mapped[str] = mapped_column(String(64))
