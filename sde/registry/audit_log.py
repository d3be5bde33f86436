"""Registry table ``audit_log``: one hash-chained row per query or workflow event."""

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
    #: What a workflow event touched (``request:14``, ``application:3``); None for queries.
    object: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    #: A workflow event's details as canonical JSON; None for queries.
    details: Mapped[str | None] = mapped_column(Text, nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64))
