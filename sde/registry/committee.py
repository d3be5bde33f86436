"""Registry tables of the data access committee: applications, conflict declarations,
votes and each node custodian's decision.

An application's body (everything the applicant typed: the scope they ask for and the
project's description) is kept as JSON exactly as given, so a refusal never loses it; it
is validated when submitted and compiled into a scope when approved (:mod:`access_committee`).
Votes and decisions belong to a round: a deferred application that is resubmitted is
reviewed afresh.

:data:`TEXT_LIMITS` is the one place for how much free text each field of the committee
holds (the JSON API's models, the pages and the services read it), and
:func:`text_problem` what stops a text from being stored: more characters than the column
where it lands takes (a project's slug and title, a user name, an accreditation
reference), or a control character (PostgreSQL refuses NUL in text; only newlines and
tabs belong in a field).

>>> text_problem("COPD\\x00", TEXT_LIMITS["title"])
'holds a control character (U+0000): only newlines and tabs are taken'
>>> text_problem("T" * 301, TEXT_LIMITS["title"])
'at most 300 characters (301 given)'
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from sde.registry.db import Base
from sde.registry.people import User
from sde.registry.projects import Project


def column_length(column: Any) -> int:
    """The length of a ``String(n)`` column (``Project.title``: 300)."""
    length = getattr(column.type, "length", None)
    if not isinstance(length, int):  # pragma: no cover (a programming error)
        raise TypeError(f"{column} has no length")
    return length


#: Longest text of the application's own words (kept in the application's JSON body).
MAX_WORDS = 20_000
#: The most characters each free-text field holds. Where a field is copied into a column
#: of its own, the column's length decides; text columns take a bound of our choosing.
TEXT_LIMITS: dict[str, int] = {
    # an application: the slug asked for (SLUG: 63; applications.project is 64) ...
    "project": 63,
    # ... its title, which approval copies into projects.title ...
    "title": column_length(Project.title),
    # ... its own words, kept in its JSON body ...
    **dict.fromkeys(
        ("lay_summary", "purpose", "public_benefit", "legal_basis", "ethics_ref"), MAX_WORDS
    ),
    # ... and the people it names (users.username)
    "pi": column_length(User.username),
    "member": column_length(User.username),
    "node": 64,  # application_node_decisions.node
    # the review: a conflict note, a custodian's reason, a vote's conditions and comment
    "note": 5_000,
    "reason": 5_000,
    "conditions": 10_000,
    "comment": 10_000,
    # administrators: an accreditation reference (users.accreditation_ref) and the reason
    # a project's status changes
    "ref": column_length(User.accreditation_ref),
    "status_reason": 5_000,
}
#: The most items a list field of an application holds.
LIST_LIMITS: dict[str, int] = {"members": 200, "nodes": 50}
#: Characters no field takes: C0 and C1 controls but tab, newline and carriage return (a
#: browser sends a textarea's newlines as CR LF), and lone surrogates (not text at all).
CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def text_problem(value: str, limit: int) -> str | None:
    """Why ``value`` cannot be stored in a field of at most ``limit`` characters, or None."""
    if len(value) > limit:
        return f"at most {limit:,} characters ({len(value):,} given)"
    bad = CONTROL_CHARACTERS.search(value)
    if bad is not None:
        return (
            f"holds a control character (U+{ord(bad.group()):04X}): "
            "only newlines and tabs are taken"
        )
    return None


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
