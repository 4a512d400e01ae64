"""Organisations: keys and usage events name the organisation they belong to.

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
    op.add_column("keys", sa.Column("org", sa.String(200)))
    op.add_column("ledger_events", sa.Column("org", sa.String(200)))
    op.create_index("ix_ledger_org_created", "ledger_events", ["org", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_ledger_org_created", "ledger_events")
    with op.batch_alter_table("ledger_events") as batch:
        batch.drop_column("org")
    with op.batch_alter_table("keys") as batch:
        batch.drop_column("org")
