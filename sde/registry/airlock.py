"""Registry tables of the airlock: release requests, their file groups and files, votes,
reviews and comments.

A request belongs to one project and one author and moves through the states of
:mod:`airlock.workflow`; ``turn`` counts its submissions (0 while a first draft). A file's
bytes live in the airlock's content-addressed store under their SHA-256; the row holds the
hash, the automatic checks' status and report. Votes and reviews are per turn, so a
resubmission is reviewed afresh. The rules are in :mod:`airlock.requests`.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from sde.registry.db import Base


class AirlockRequest(Base):
    __tablename__ = "airlock_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project: Mapped[str] = mapped_column(ForeignKey("projects.slug"), index=True)
    author: Mapped[str] = mapped_column(ForeignKey("users.username"), index=True)
    state: Mapped[str] = mapped_column(String(24), index=True)
    turn: Mapped[int] = mapped_column(Integer)
    #: Reviews a turn needs: 2, or 1 where the project allows it and every check passed.
    reviews_needed: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    state_changed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class AirlockGroup(Base):
    __tablename__ = "airlock_groups"
    __table_args__ = (UniqueConstraint("request_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("airlock_requests.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    #: What the files are and how they were made (needed before submission).
    context: Mapped[str] = mapped_column(Text)
    #: The disclosure controls applied (needed before submission).
    controls: Mapped[str] = mapped_column(Text)


class AirlockFile(Base):
    __tablename__ = "airlock_files"
    __table_args__ = (UniqueConstraint("group_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    group_id: Mapped[int] = mapped_column(
        ForeignKey("airlock_groups.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    #: ``output`` (to be released) or ``supporting`` (context for the checkers only).
    kind: Mapped[str] = mapped_column(String(16))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    added_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    #: ``pass``, ``fail``, ``review`` or ``none`` (not a table); set on submission.
    checks_status: Mapped[str] = mapped_column(String(16))
    #: The automatic checks' report (ACRO-shaped ``results.json``), JSON text.
    checks_report: Mapped[str | None] = mapped_column(Text, nullable=True)


class AirlockVote(Base):
    __tablename__ = "airlock_votes"
    __table_args__ = (UniqueConstraint("file_id", "turn", "reviewer"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    file_id: Mapped[int] = mapped_column(
        ForeignKey("airlock_files.id", ondelete="CASCADE"), index=True
    )
    turn: Mapped[int] = mapped_column(Integer)
    reviewer: Mapped[str] = mapped_column(ForeignKey("users.username"))
    #: ``approve`` or ``request_changes``.
    vote: Mapped[str] = mapped_column(String(24))
    voted_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class AirlockReview(Base):
    """A checker's submitted review of one turn (their votes become visible to others)."""

    __tablename__ = "airlock_reviews"

    request_id: Mapped[int] = mapped_column(
        ForeignKey("airlock_requests.id", ondelete="CASCADE"), primary_key=True
    )
    turn: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    reviewer: Mapped[str] = mapped_column(ForeignKey("users.username"), primary_key=True)
    submitted_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class AirlockComment(Base):
    __tablename__ = "airlock_comments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("airlock_requests.id", ondelete="CASCADE"), index=True
    )
    #: The file group it is about (None: the request as a whole).
    group_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    turn: Mapped[int] = mapped_column(Integer)
    author: Mapped[str] = mapped_column(ForeignKey("users.username"))
    text: Mapped[str] = mapped_column(Text)
    #: ``public`` (the author sees it once the turn ends) or ``private`` (checkers only).
    visibility: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
