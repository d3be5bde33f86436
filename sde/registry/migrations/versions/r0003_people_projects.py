"""People and projects: users, roles, node custodians, projects, approval versions, memberships.

Revision ID: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = (
    "users",
    "user_roles",
    "node_custodians",
    "projects",
    "approval_versions",
    "memberships",
)


def _tz() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _user_fk() -> sa.ForeignKey:
    return sa.ForeignKey("users.username", ondelete="CASCADE")


def _project_fk() -> sa.ForeignKey:
    return sa.ForeignKey("projects.slug", ondelete="CASCADE")


def _people() -> None:
    op.create_table(
        "users",
        sa.Column("username", sa.String(64), primary_key=True),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("organisation", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.String(255)),
        sa.Column("totp_secret", sa.Text),
        sa.Column("totp_last_step", sa.BigInteger),
        sa.Column("failed_logins", sa.Integer, nullable=False),
        sa.Column("locked_until", _tz()),
        sa.Column("last_login_at", _tz()),
        sa.Column("accredited_until", sa.Date),
        sa.Column("accreditation_ref", sa.String(200)),
        sa.Column("daa_signed_at", _tz()),
        sa.Column("daa_version", sa.String(40)),
        sa.Column("created_at", _tz(), nullable=False),
    )
    op.create_table(
        "user_roles",
        sa.Column("username", sa.String(64), _user_fk(), primary_key=True),
        sa.Column("role", sa.String(32), primary_key=True),
    )
    op.create_table(
        "node_custodians",
        sa.Column("node", sa.String(64), primary_key=True),
        sa.Column("username", sa.String(64), _user_fk(), primary_key=True),
    )
    op.create_index("ix_node_custodians_username", "node_custodians", ["username"])


def _projects() -> None:
    op.create_table(
        "projects",
        sa.Column("slug", sa.String(64), primary_key=True),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_reason", sa.Text),
        sa.Column("status_changed_at", _tz(), nullable=False),
        sa.Column("expires", sa.Date),
        sa.Column("created_at", _tz(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
    )
    op.create_table(
        "approval_versions",
        sa.Column("project", sa.String(64), _project_fk(), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("scope_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", _tz(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("note", sa.Text),
    )
    op.create_table(
        "memberships",
        sa.Column("project", sa.String(64), _project_fk(), primary_key=True),
        sa.Column("username", sa.String(64), _user_fk(), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("added_at", _tz(), nullable=False),
        sa.Column("added_by", sa.String(64), nullable=False),
    )
    op.create_index("ix_memberships_username", "memberships", ["username"])


def upgrade() -> None:
    _people()
    _projects()


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
