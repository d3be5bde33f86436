"""Registry tables of the privacy budget: ``dp_budget`` (a project's totals and running
spend, in integer units) and ``dp_release`` (every answered query with its cost and the
released noisy result). The accounting itself is :mod:`sde.dp.ledger`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from sde.registry.db import Base


class DPBudget(Base):
    __tablename__ = "dp_budget"

    project: Mapped[str] = mapped_column(String(200), primary_key=True)
    epsilon_total: Mapped[int] = mapped_column(BigInteger)
    delta_total: Mapped[int] = mapped_column(BigInteger)
    epsilon_spent: Mapped[int] = mapped_column(BigInteger, default=0)
    delta_spent: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DPRelease(Base):
    __tablename__ = "dp_release"
    __table_args__ = (UniqueConstraint("project", "query_hash", name="uq_dp_release_query"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project: Mapped[str] = mapped_column(ForeignKey("dp_budget.project"), index=True)
    query_hash: Mapped[str] = mapped_column(String(64))
    user: Mapped[str] = mapped_column(String(200))
    sql: Mapped[str] = mapped_column(Text)
    epsilon: Mapped[int] = mapped_column(BigInteger)
    delta: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: The released noisy result (JSON): answers are rebuilt from it, never from memory.
    result: Mapped[str] = mapped_column(Text)
