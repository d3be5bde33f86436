"""The airlock: release requests, file groups, files, votes, reviews and comments.

Revision ID: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TABLES = (
    "airlock_requests",
    "airlock_groups",
    "airlock_files",
    "airlock_votes",
    "airlock_reviews",
    "airlock_comments",
)


def _tz() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _cascade(target: str) -> sa.ForeignKey:
    return sa.ForeignKey(target, ondelete="CASCADE")


def _requests() -> None:
    op.create_table(
        "airlock_requests",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project", sa.String(64), sa.ForeignKey("projects.slug"), nullable=False),
        sa.Column("author", sa.String(64), sa.ForeignKey("users.username"), nullable=False),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("turn", sa.Integer, nullable=False),
        sa.Column("reviews_needed", sa.Integer, nullable=False),
        sa.Column("created_at", _tz(), nullable=False),
        sa.Column("state_changed_at", _tz(), nullable=False),
    )
    for column in ("project", "author", "state"):
        op.create_index(f"ix_airlock_requests_{column}", "airlock_requests", [column])
    op.create_table(
        "airlock_groups",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.Integer, _cascade("airlock_requests.id"), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("context", sa.Text, nullable=False),
        sa.Column("controls", sa.Text, nullable=False),
        sa.UniqueConstraint("request_id", "name"),
    )
    op.create_index("ix_airlock_groups_request_id", "airlock_groups", ["request_id"])


def _files() -> None:
    op.create_table(
        "airlock_files",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("group_id", sa.Integer, _cascade("airlock_groups.id"), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("added_at", _tz(), nullable=False),
        sa.Column("checks_status", sa.String(16), nullable=False),
        sa.Column("checks_report", sa.Text),
        sa.UniqueConstraint("group_id", "name"),
    )
    op.create_index("ix_airlock_files_group_id", "airlock_files", ["group_id"])


def _reviews() -> None:
    op.create_table(
        "airlock_votes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("file_id", sa.Integer, _cascade("airlock_files.id"), nullable=False),
        sa.Column("turn", sa.Integer, nullable=False),
        sa.Column("reviewer", sa.String(64), sa.ForeignKey("users.username"), nullable=False),
        sa.Column("vote", sa.String(24), nullable=False),
        sa.Column("voted_at", _tz(), nullable=False),
        sa.UniqueConstraint("file_id", "turn", "reviewer"),
    )
    op.create_index("ix_airlock_votes_file_id", "airlock_votes", ["file_id"])
    op.create_table(
        "airlock_reviews",
        sa.Column("request_id", sa.Integer, _cascade("airlock_requests.id"), primary_key=True),
        sa.Column("turn", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("reviewer", sa.String(64), sa.ForeignKey("users.username"), primary_key=True),
        sa.Column("submitted_at", _tz(), nullable=False),
    )
    op.create_table(
        "airlock_comments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.Integer, _cascade("airlock_requests.id"), nullable=False),
        sa.Column("group_name", sa.String(100)),
        sa.Column("turn", sa.Integer, nullable=False),
        sa.Column("author", sa.String(64), sa.ForeignKey("users.username"), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("visibility", sa.String(8), nullable=False),
        sa.Column("created_at", _tz(), nullable=False),
    )
    op.create_index("ix_airlock_comments_request_id", "airlock_comments", ["request_id"])


def upgrade() -> None:
    _requests()
    _files()
    _reviews()


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
