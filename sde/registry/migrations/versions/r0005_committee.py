"""The data access committee: applications, conflicts, votes, node custodians' decisions.

Revision ID: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TABLES = (
    "applications",
    "application_conflicts",
    "application_votes",
    "application_node_decisions",
)


def _tz() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _application() -> sa.Column:
    return sa.Column(
        "application_id",
        sa.Integer,
        sa.ForeignKey("applications.id", ondelete="CASCADE"),
        primary_key=True,
    )


def _user(name: str, *, key: bool = False) -> sa.Column:
    fk = sa.ForeignKey("users.username")
    return sa.Column(name, sa.String(64), fk, primary_key=key, nullable=False)


def upgrade() -> None:
    op.create_table(
        "applications",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("project", sa.String(64), nullable=False),
        _user("applicant"),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("conditions", sa.Text),
        sa.Column("version", sa.Integer),
        sa.Column("based_on", sa.Integer),
        sa.Column("created_at", _tz(), nullable=False),
        sa.Column("state_changed_at", _tz(), nullable=False),
        sa.Column("submitted_at", _tz()),
        sa.Column("decided_at", _tz()),
    )
    for column in ("project", "applicant", "state"):
        op.create_index(f"ix_applications_{column}", "applications", [column])
    op.create_table(
        "application_conflicts",
        _application(),
        sa.Column("round", sa.Integer, primary_key=True, autoincrement=False),
        _user("member", key=True),
        sa.Column("conflict", sa.Boolean, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("declared_at", _tz(), nullable=False),
    )
    op.create_table(
        "application_votes",
        _application(),
        sa.Column("round", sa.Integer, primary_key=True, autoincrement=False),
        _user("member", key=True),
        sa.Column("vote", sa.String(32), nullable=False),
        sa.Column("conditions", sa.Text),
        sa.Column("comment", sa.Text),
        sa.Column("voted_at", _tz(), nullable=False),
    )
    op.create_table(
        "application_node_decisions",
        _application(),
        sa.Column("round", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("node", sa.String(64), primary_key=True),
        _user("custodian"),
        sa.Column("agree", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("decided_at", _tz(), nullable=False),
    )


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
