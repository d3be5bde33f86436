"""Registry tables of people: ``users``, ``user_roles`` and ``node_custodians``.

A user is one person with one login (their username is their JupyterHub name). The
table holds what decides whether they may log in: an argon2 password hash, a TOTP
secret encrypted at rest (a Fernet token; the key is derived from ``SDE_SECRET_KEY``,
never stored), the last TOTP time step accepted (a code is good once), the failed-login
counter and lock, safe-researcher accreditation with its expiry, and the data access
agreement. The rules that read them are in :mod:`sde.accounts`.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Date, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from sde.registry.db import Base


class User(Base):
    __tablename__ = "users"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    organisation: Mapped[str] = mapped_column(String(200))
    #: argon2id hash (``$argon2id$...``); None until a password is set.
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    #: The TOTP secret as a Fernet token; None until enrolled. Never the secret itself.
    totp_secret: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: The newest TOTP time step (unix time // 30) accepted: older and equal ones are refused.
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    #: Safe-researcher accreditation: valid through this date (inclusive).
    accredited_until: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    #: The accrediting body's reference (e.g. ``ONS-SRS 2024/123``).
    accreditation_ref: Mapped[str | None] = mapped_column(String(200), nullable=True)
    daa_signed_at: Mapped[dt.datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    daa_version: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:  # never show the hash or the secret
        return f"User(username={self.username!r})"


class UserRole(Base):
    __tablename__ = "user_roles"

    username: Mapped[str] = mapped_column(
        ForeignKey("users.username", ondelete="CASCADE"), primary_key=True
    )
    #: ``researcher``, ``output-checker``, ``committee``, ``custodian`` or ``admin``.
    role: Mapped[str] = mapped_column(String(32), primary_key=True)


class NodeCustodian(Base):
    """A node's custodian: decides for that node in the committee's workflow."""

    __tablename__ = "node_custodians"

    node: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(
        ForeignKey("users.username", ondelete="CASCADE"), primary_key=True, index=True
    )
