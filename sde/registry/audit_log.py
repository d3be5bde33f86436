"""Registry table ``audit_log``: one hash-chained row per query (see :mod:`sde.audit`)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from sde.registry.db import Base


class AuditEntry(Base):
    __tablename__ = "audit_log"

    #: Position in the chain, 1, 2, 3... without gaps (a gap is a deleted entry).
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    at: Mapped[str] = mapped_column(String(40))
    user: Mapped[str] = mapped_column(String(200))
    project: Mapped[str] = mapped_column(String(64), index=True)
    scope_version: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(40))
    sql: Mapped[str] = mapped_column(Text)
    rewritten_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    outcome: Mapped[str] = mapped_column(String(20))
    rule: Mapped[str | None] = mapped_column(String(80), nullable=True)
    #: The engine's own message: may carry data values, so it is kept here only.
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    rows: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    duration_ms: Mapped[float] = mapped_column(Float)
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64))
