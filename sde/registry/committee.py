"""Registry tables of the data access committee: applications, conflict declarations,
votes and each node custodian's decision.

An application's body (everything the applicant typed: the scope they ask for and the
project's description) is kept as JSON exactly as given, so a refusal never loses it; it
is validated when submitted and compiled into a scope when approved (:mod:`access_committee`).
Votes and decisions belong to a round: a deferred application that is resubmitted is
reviewed afresh.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from sde.registry.db import Base


class Application(Base):
    __tablename__ = "applications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: ``new`` (a project to create) or ``amendment`` (a new version of one).
    kind: Mapped[str] = mapped_column(String(16))
    #: The project slug asked for (or amended).
    project: Mapped[str] = mapped_column(String(64), index=True)
    applicant: Mapped[str] = mapped_column(ForeignKey("users.username"), index=True)
    state: Mapped[str] = mapped_column(String(32), index=True)
    #: Counts submissions: votes, conflicts and node decisions belong to a round.
    round: Mapped[int] = mapped_column(Integer)
    #: The application's fields as JSON, as the applicant gave them.
    body: Mapped[str] = mapped_column(Text)
    #: The committee's conditions, when approved with conditions.
    conditions: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: The approval version it became, once approved.
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: An amendment's starting point: the project's version when it was drafted.
    based_on: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    state_changed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    submitted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    decided_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ConflictDeclaration(Base):
    __tablename__ = "application_conflicts"

    application_id: Mapped[int] = mapped_column(
        ForeignKey("applications.id", ondelete="CASCADE"), primary_key=True
    )
    round: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    member: Mapped[str] = mapped_column(ForeignKey("users.username"), primary_key=True)
    conflict: Mapped[bool] = mapped_column(Boolean)
    note: Mapped[str] = mapped_column(Text)
    declared_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class CommitteeVote(Base):
    __tablename__ = "application_votes"

    application_id: Mapped[int] = mapped_column(
        ForeignKey("applications.id", ondelete="CASCADE"), primary_key=True
    )
    round: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    member: Mapped[str] = mapped_column(ForeignKey("users.username"), primary_key=True)
    #: ``approve``, ``approve_with_conditions``, ``defer`` or ``reject``.
    vote: Mapped[str] = mapped_column(String(32))
    conditions: Mapped[str | None] = mapped_column(Text, nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    voted_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class NodeDecision(Base):
    __tablename__ = "application_node_decisions"

    application_id: Mapped[int] = mapped_column(
        ForeignKey("applications.id", ondelete="CASCADE"), primary_key=True
    )
    round: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    node: Mapped[str] = mapped_column(String(64), primary_key=True)
    custodian: Mapped[str] = mapped_column(ForeignKey("users.username"))
    agree: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(Text)
    decided_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
