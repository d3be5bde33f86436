"""The audit log holds workflow events as well as queries: an object and JSON details.

A query's entry is unchanged (``user`` runs ``action`` on ``project``); a workflow event
says which object it touched (``request:14``, ``application:3``, ``project:htn``) and
carries its details as canonical JSON. Both are covered by the entry's hash when set, so
entries written before this revision verify as they did.

Revision ID: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("object", sa.String(200), nullable=True))
        batch.add_column(sa.Column("details", sa.Text, nullable=True))
        batch.create_index("ix_audit_log_object", ["object"])


def downgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_index("ix_audit_log_object")
        batch.drop_column("details")
        batch.drop_column("object")
