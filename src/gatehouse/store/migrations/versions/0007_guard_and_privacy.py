"""Guard decisions in usage events, guard policies set through the admin API,
and whose data a stored response is (per-user export and deletion).

Revision ID: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("ledger_events", sa.Column("guard", sa.Text))
    op.add_column("responses", sa.Column("user", sa.String(200)))
    op.add_column("responses", sa.Column("end_user", sa.String(200)))
    op.create_index("ix_responses_user", "responses", ["user"])
    op.create_index("ix_responses_end_user", "responses", ["end_user"])
    op.create_table(
        "guard_policies",
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("entities", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("guard_policies")
    op.drop_index("ix_responses_end_user", "responses")
    op.drop_index("ix_responses_user", "responses")
    with op.batch_alter_table("responses") as batch:
        batch.drop_column("end_user")
        batch.drop_column("user")
    with op.batch_alter_table("ledger_events") as batch:
        batch.drop_column("guard")
