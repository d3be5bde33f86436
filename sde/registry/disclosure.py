"""Registry table ``sdc_releases``: the differencing ledger, one row per released table.

Cells are stored as JSON (their descriptions and true unit counts): the
registry lives inside the TRE, and the true counts are what differencing must
be checked against.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from sde.registry.db import Base


class SdcRelease(Base):
    """A table released from a project (through the airlock or in ``aggregates`` mode)."""

    __tablename__ = "sdc_releases"
    __table_args__ = (Index("ix_sdc_releases_project_population", "project", "population"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project: Mapped[str] = mapped_column(String(200))
    #: A name people recognise ("table 2 of release request 14", "aggregates query 31").
    name: Mapped[str] = mapped_column(String(500))
    #: What the counts are counted over (cohort or dataset description); only
    #: releases over the same population and the same units are compared.
    population: Mapped[str] = mapped_column(String(500))
    units: Mapped[str] = mapped_column(String(20))
    #: JSON list of ``{"constraints": {...}, "count": int, "published": bool}``.
    cells: Mapped[str] = mapped_column(Text)
    released_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=lambda: datetime.now(UTC)
    )
