"""The registry as the first milestone left it: keys, audit log, DP ledger, SDC releases.

A registry made by that code (tables, no ``alembic_version``) is recognised by
:func:`sde.registry.migrate.upgrade` and stamped at this revision instead of being
created again.

Revision ID: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

#: The tables this revision creates (how a pre-Alembic registry is recognised).
TABLES = ("project_keys", "audit_log", "dp_budget", "dp_release", "sdc_releases")


def upgrade() -> None:
    op.create_table(
        "project_keys",
        sa.Column("project", sa.String(64), primary_key=True),
        sa.Column("key", sa.LargeBinary(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "audit_log",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("user", sa.String(200), nullable=False),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("scope_version", sa.String(64), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("sql", sa.Text, nullable=False),
        sa.Column("rewritten_sha256", sa.String(64)),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("rule", sa.String(80)),
        sa.Column("detail", sa.Text),
        sa.Column("rows", sa.BigInteger),
        sa.Column("duration_ms", sa.Float, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_log_project", "audit_log", ["project"])
    op.create_table(
        "dp_budget",
        sa.Column("project", sa.String(200), primary_key=True),
        sa.Column("epsilon_total", sa.BigInteger, nullable=False),
        sa.Column("delta_total", sa.BigInteger, nullable=False),
        sa.Column("epsilon_spent", sa.BigInteger, nullable=False),
        sa.Column("delta_spent", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "dp_release",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project", sa.String(200), sa.ForeignKey("dp_budget.project"), nullable=False),
        sa.Column("query_hash", sa.String(64), nullable=False),
        sa.Column("user", sa.String(200), nullable=False),
        sa.Column("sql", sa.Text, nullable=False),
        sa.Column("epsilon", sa.BigInteger, nullable=False),
        sa.Column("delta", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("result", sa.Text, nullable=False),
        sa.UniqueConstraint("project", "query_hash", name="uq_dp_release_query"),
    )
    op.create_index("ix_dp_release_project", "dp_release", ["project"])
    op.create_table(
        "sdc_releases",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("population", sa.String(500), nullable=False),
        sa.Column("units", sa.String(20), nullable=False),
        sa.Column("cells", sa.Text, nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_sdc_releases_project_population", "sdc_releases", ["project", "population"])


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
